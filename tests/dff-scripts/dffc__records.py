# DFF's request, eta/delay and cron-delay variables, and what a task record
# keeps (kwargs, return value, call chain, root task, trigger time).

@DFF.API('Request info')
def req_info(x=None, **more):
    return {'x': x, 'req': _DFF_HTTP_REQUEST, 'eta': _DFF_ETA, 'delay': _DFF_DELAY,
            'trigger_ms': _DFF_TRIGGER_TIME_MS}


@DFF.API('Delayed cron runs', delayed_cron_job=[0, 2])
def tick_at_and_after():
    return {'delay': _DFF_DELAY, 'cron_job_delay': _DFF_CRON_JOB_DELAY,
            'crontab_delay': _DFF_CRONTAB_DELAY, 'trigger': _DFF_TRIGGER_TIME}


@DFF.API('Delayed cron runs only', delayed_crontab=[1, 2])
def tick_after():
    return {'delay': _DFF_DELAY, 'cron_job_delay': _DFF_CRON_JOB_DELAY,
            'trigger': _DFF_TRIGGER_TIME}


@DFF.API('Chain root')
def chain_root(n=1):
    DFF.FUNC('dffc__records.chain_leaf', kwargs={'n': n, 'who': 'root'})
    return 'called'


@DFF.API('Chain leaf')
def chain_leaf(n, who):
    return {'n': n, 'who': who, 'root': _DFF_ROOT_TASK_ID}


@DFF.API('Big')
def big(n):
    return 'v' * n


@DFF.API('Too slow', timeout=1)
def too_slow(n):
    import time
    time.sleep(5)
    return n
