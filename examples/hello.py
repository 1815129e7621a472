# An example Tandem script: publish it as demo__hello, then call
#   POST /api/v1/func/demo__hello.greet  {"kwargs": {"name": "ops"}}
import logging


@DFF.API('Greet someone', timeout=10)
def greet(name='world'):
    logging.info('greeting %s', name)
    return {'greeting': 'hello, %s' % name}


@DFF.API('Add two numbers')
def add(x, y):
    return x + y


# integration='autoRun' (DFF) creates the cron job on publish; the leading
# seconds field is Tandem's extension: every second
@DFF.API('Count calls per second', integration='autoRun',
         integration_config={'crontab': '* * * * * *'})
def tick():
    # DFF.CACHE is Redis with DFF's semantics: values come back as strings
    n = DFF.CACHE.incr('ticks')
    DFF.CACHE.expire('ticks', 3600)
    return n
