# A DataFlux Func script using the DFF members (tests/integration/test_dff_runtime.py).
import datetime
import time


@DFF.API('Env typed')
def env_typed():
    names = ['s_str', 's_pw', 's_int', 's_float', 's_bool', 's_json', 's_arr']
    out = {n: DFF.ENV(n) for n in names}
    out['get'] = DFF.ENV.get('s_int')
    out['missing'] = DFF.ENV.get('nope')
    out['keys'] = [k for k in DFF.ENV.keys() if k.startswith('s_')]
    print('the password is', DFF.ENV('s_pw'))
    return out


@DFF.API('Env bad type')
def env_bad():
    return DFF.ENV('s_bad_int')


@DFF.API('Cache strings')
def cache_strings():
    c = DFF.CACHE
    c.set('n', 1)
    out = {'get': c.get('n'), 'incr': c.incr('n'), 'incr5': c.incr('n', 5)}
    c.set('k', 'v', 'other_scope')  # scope positional, as in DFF
    out['scoped'] = c.get('k', 'other_scope')
    out['unscoped'] = c.get('k')
    out['getset'] = c.getset('n', 'x')
    out['exists'] = c.exists('n')
    out['expire'] = c.expire('n', 30)
    out['ttl_ok'] = 0 < c.ttl('n') <= 30
    out['type'] = c.type('n')
    out['delete'] = c.delete('n')
    out['type_gone'] = c.type('n')
    c.set('nx', 'a', not_exists=True)
    out['nx_again'] = c.set('nx', 'b', not_exists=True)
    out['nx'] = c.get('nx')
    out['keys'] = sorted(c.keys('n*'))
    return out


@DFF.API('Cache hash and list')
def cache_hl():
    c = DFF.CACHE
    c.delete(['h', 'l', 'l2'])
    c.hset('h', 'a', 1)
    c.hmset('h', {'b': 'two', 'c': 3.5})
    out = {'hget': c.hget('h', 'a'), 'hgetall': c.hgetall('h'), 'hmget': c.hmget('h', ['a', 'b']),
           'hincr': c.hincr('h', 'a'), 'hkeys': sorted(c.hkeys('h')), 'hdel': c.hdel('h', 'c')}
    c.push('l', 'x')
    c.lpush('l', ['y', 'z'])
    c.rpush('l', 'w')
    out['llen'] = c.llen('l')
    out['lrange'] = c.lrange('l')
    out['pop'] = c.pop('l')
    out['rpoplpush'] = c.rpoplpush('l', 'l2')
    out['l2'] = c.lrange('l2')
    out['lpop'] = c.lpop('l')
    return out


@DFF.API('Cache bad value')
def cache_bad():
    DFF.CACHE.set('d', {'a': 1})


@DFF.API('Cache long key and result scope')
def cache_keys(n=2000):
    key = 'k' * n
    DFF.CACHE.set(key, 'long')
    DFF.CACHE.set(key[:1024], 'short')
    DFF.CACHE.set('x', 'mine', scope='result')
    return [DFF.CACHE.get(key), DFF.CACHE.get(key[:1024]), DFF.CACHE.get('x', 'result')]


@DFF.API('Store')
def store():
    s = DFF.STORE
    s.set('a', {'x': [1, 2]})
    s.set('b', 'bee', scope='sc')
    s.set('gone', 1, expires=1)
    s.set('a2', 5, not_exists=True)
    s.set('a2', 6, not_exists=True)
    time.sleep(1.2)
    out = {'a': s.get('a'), 'b': s.get('b', 'sc'), 'b_default_scope': s.get('b'),
           'gone': s.get('gone'), 'a2': s.get('a2'), 'keys': sorted(s.keys('a*'))}
    s.delete('a')
    out['a_deleted'] = s.get('a')
    return out


@DFF.API('Vars')
def variables():
    return {k: globals()[k] for k in ('_DFF_TASK_ID', '_DFF_ROOT_TASK_ID', '_DFF_SCRIPT_SET_ID',
                                      '_DFF_SCRIPT_ID', '_DFF_FUNC_ID', '_DFF_FUNC_NAME',
                                      '_DFF_ORIGIN', '_DFF_QUEUE', '_DFF_FUNC_CHAIN',
                                      '_DFF_TRIGGER_TIME', '_DFF_TRIGGER_TIME_MS',
                                      '_DFF_START_TIME', '_DFF_START_TIME_MS', '_DFF_DEBUG')}


@DFF.API('Cron variables')
def cron_vars():
    return [_DFF_ORIGIN, _DFF_ORIGIN_ID, _DFF_CRON_EXPR, _DFF_CRONTAB, _DFF_QUEUE,
            _DFF_TRIGGER_TIME == _DFF_START_TIME or _DFF_TRIGGER_TIME <= _DFF_START_TIME]


@DFF.API('Print')
def printing():
    print('hello', 'world', sep='-')
    DFF.LOG('via LOG')
    DFF.log('via log')
    print_var(42)
    print('x' * 4000)
    return 'printed'


@DFF.API('Ctx and thread')
def ctx_thread():
    DFF.CTX.set('a', 1)

    def work(i):
        return i * i
    for i in range(4):
        DFF.THREAD.submit(work, i, key='k%d' % i)
    DFF.THREAD.wait_all_finished()
    res = sorted(r.value for r in DFF.THREAD.get_all_results())
    return {'ctx': DFF.CTX.get('a'), 'has': DFF.CTX.has('a'), 'threads': res,
            'lower': dff.ctx.get('a'), 'alias': DFF.cache is DFF.CACHE}


@DFF.API('Config')
def config():
    return {'x': DFF.CONFIG.get('greeting'), 'prefixed': DFF.CONFIG.get('CUSTOM_GREETING'),
            'masked': DFF.CONFIG.get('api_password'),
            'unmasked': DFF.CONFIG.get('api_password', unmask=True),
            'missing': DFF.CONFIG.get('nope', 'dflt')}


@DFF.API('Resp')
def resp():
    return DFF.RESP('<b>hi</b>', status_code=201, content_type='html', headers={'X-A': '1'})


@DFF.API('Resp large')
def resp_large():
    return DFF.RESP_LARGE_DATA({'rows': [1, 2, 3]})


@DFF.API('Redirect')
def redirect():
    return DFF.REDIRECT('https://example.com/a b')


@DFF.API('Resp file')
def resp_file(path):
    return DFF.RESP_FILE(path)


@DFF.API('Seal for the test')
def seal(plain):
    import _tandem
    return _tandem.secret_seal(plain)
