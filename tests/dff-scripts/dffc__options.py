# @DFF.API options with DataFlux Func's spellings and aliases.

@DFF.API('Aliases', api_timeout=20, expires=60, cache_result=1.5, queue=7,
         category='ops', tags=['b', 'a', 'b'], is_hidden=True)
def aliased(x=1):
    return x


@DFF.API('Old cron spelling', fixed_crontab='*/5 * * * *')
def old_cron():
    return 'tick'


@DFF.API('Auto run', integration='autoRun', integration_config={'crontab': '0 * * * *'})
def auto_run():
    return 'auto'


@DFF.API('Cached float', cache_result=0.5)
def cached_float(x):
    import time
    return [x, time.time()]
