"""The DFF object scripts use (DataFlux Func's dialect, docs/dff-compat.md).

Scripts get `DFF` as a builtin, as in DataFlux Func; `import DFF` and
`from tandem_dff import DFF` give the same object. Redis and MariaDB are
reached through `_tandem`, the C module the worker registers before the
interpreter starts (src/worker/worker_py.c). Per-task state (the task's
ids, call chain, print lines, loaded env variables) lives in `_task`, reset
by tandem_runtime around every run.
"""
import base64
import builtins
import concurrent.futures
import datetime
import decimal
import hashlib
import json
import math
import os
import pprint
import re
import sys
import time
import urllib.parse

try:
    import _tandem
except ImportError:  # imported outside the worker (docs, linters)
    _tandem = None

__all__ = ['DFF']

# DFF's limits (its config.yaml): call chain, queues, timeouts, expiry.
CALL_CHAIN_LIMIT = 5
QUEUE_COUNT = 10
TIMEOUT_MIN, TIMEOUT_MAX = 1, 3600
EXPIRES_MIN, EXPIRES_MAX = 1, 86400
EXPIRES_DEFAULT = 900
STORE_KEY_MAX = 256

# Set by tandem_runtime.setup(): redis prefix, node, ...
_cfg = {'prefix': 'tandem:', 'node': '', 'task_ttl': 86400, 'default_timeout': 30}


class _Task(object):
    """What the running task knows about itself (DFF's _DFF_* variables)."""

    def __init__(self, task=None, func_id='', script_id='', debug=False):
        task = task or {}
        now = time.time()
        self.task_id = task.get('id') or ''
        self.func_id = func_id
        self.script_id = script_id
        self.func_name = func_id.rsplit('.', 1)[-1] if '.' in func_id else ''
        self.script_set_id = script_id.split('__', 1)[0] if '__' in script_id else ''
        self.origin = task.get('origin') or ''
        self.origin_id = task.get('origin_id') or ''
        self.queue = task.get('queue') or ''
        self.debug = debug
        enq = task.get('enq') or 0
        nominal = task.get('nominal') or 0
        trig = float(nominal) if nominal else (enq / 1000.0 if enq else now)
        self.trigger_time = trig
        self.start_time = now
        self.eta = task.get('eta')
        self.delay = task.get('delay') or 0
        self.cron_expr = task.get('cron_expr')
        self.http_request = task.get('http_request') or {}  # DFF: {} when not an API call
        self.cron_job_delay = task.get('cron_job_delay') or 0
        self.root_task_id = self.task_id
        self.chain = []
        self.lines = None        # set by the runtime's capture
        self.masks = set()       # password env values seen by this task
        self.ctx = {}            # DFF.CTX
        self.env = {}            # env variables loaded by this task

    def variables(self):
        return {
            '_DFF_DEBUG': self.debug,
            '_DFF_TASK_ID': self.task_id,
            '_DFF_ROOT_TASK_ID': self.root_task_id,
            '_DFF_SCRIPT_SET_ID': self.script_set_id,
            '_DFF_SCRIPT_ID': self.script_id,
            '_DFF_FUNC_ID': self.func_id,
            '_DFF_FUNC_NAME': self.func_name,
            '_DFF_FUNC_CHAIN': list(self.chain),
            '_DFF_ORIGIN': self.origin,
            '_DFF_ORIGIN_ID': self.origin_id,
            '_DFF_TRIGGER_TIME': int(self.trigger_time),
            '_DFF_TRIGGER_TIME_MS': int(self.trigger_time * 1000),
            '_DFF_START_TIME': int(self.start_time),
            '_DFF_START_TIME_MS': int(self.start_time * 1000),
            '_DFF_ETA': self.eta,
            '_DFF_DELAY': self.delay,
            '_DFF_CRON_EXPR': self.cron_expr,
            '_DFF_CRON_JOB_DELAY': self.cron_job_delay,
            '_DFF_CRON_JOB_EXEC_MODE': None,
            '_DFF_QUEUE': _queue_number(self.queue),
            '_DFF_HTTP_REQUEST': self.http_request,
            '_DFF_CRONTAB': self.cron_expr,
            '_DFF_CRONTAB_DELAY': self.cron_job_delay,
            '_DFF_CRONTAB_EXEC_MODE': None,
        }


_task = _Task()
_env_cache = None


def _queue_number(q):
    """DFF's queue number for a Tandem stream name (DFF: 1 sync, 2 cron, 3 async)."""
    if isinstance(q, str) and q.isdigit():
        return int(q)
    return {'sync': 1, 'cron': 2, 'async': 3}.get(q)


def _need_worker(what):
    if _tandem is None:
        raise RuntimeError('DFF.%s is only available inside tandem-worker' % what)


def _invalidate():
    """Called when <prefix>gen changed: env variables may have changed."""
    global _env_cache
    _env_cache = None


# ---- DFF's exceptions (worker/tasks/func/__init__.py names them) ----------

class DataFluxFuncBaseException(Exception):
    pass


class EntityNotFound(DataFluxFuncBaseException):
    pass


class FuncCircularCall(DataFluxFuncBaseException):
    pass


class FuncCallChainTooLong(DataFluxFuncBaseException):
    pass


class ConnectorNotSupport(DataFluxFuncBaseException):
    pass


class InvalidConnectorConfig(DataFluxFuncBaseException):
    pass


class InvalidAPIOption(DataFluxFuncBaseException):
    pass


class InvalidEnvVariable(DataFluxFuncBaseException):
    pass


# ---- JSON as DFF's toolkit gives it ----------------------------------------

def to_jsonable(v, _depth=0):
    """DFF's toolkit.json_dumps semantics as a plain JSON value: datetime ->
    ISO 8601 (naive taken as UTC, as arrow does), Decimal -> number,
    NaN/Infinity -> null, bytes -> text, tuple -> list, anything else ->
    its repr (pprint.saferepr, DFF's fallback)."""
    if _depth > 200:  # saferepr itself would recurse too deep here
        return '<%s nested deeper than 200 levels>' % type(v).__name__
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return None if (math.isnan(v) or math.isinf(v)) else float(v)
    if isinstance(v, decimal.Decimal):
        if not v.is_finite():
            return None
        return int(v) if v == v.to_integral_value() and v.as_tuple().exponent >= 0 else float(v)
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if isinstance(k, str):
                pass
            elif k is None:
                k = 'null'
            elif isinstance(k, bool):
                k = 'true' if k else 'false'
            elif isinstance(k, (int, float)):
                k = json.dumps(k)
            else:
                k = pprint.saferepr(k)
            out[k] = to_jsonable(x, _depth + 1)
        return out
    if isinstance(v, (list, tuple)):
        return [to_jsonable(x, _depth + 1) for x in v]
    if isinstance(v, datetime.datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=datetime.timezone.utc)
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        try:
            return bytes(v).decode('utf-8')
        except UnicodeDecodeError:
            return pprint.saferepr(v)
    return pprint.saferepr(v)


def json_dumps(v):
    return json.dumps(to_jsonable(v), ensure_ascii=False, allow_nan=False,
                      separators=(',', ':'))


def to_boolean(o):
    """DFF's toolkit.to_boolean: None for what is neither."""
    if isinstance(o, bool):
        return o
    if isinstance(o, (int, float)):
        return o > 0
    if isinstance(o, str):
        if o.lower() in ('true', '1', 'o', 'y', 'yes', 'ok', 'on'):
            return True
        if o.lower() in ('false', '0', 'x', 'n', 'no', 'ng', 'off'):
            return False
    return None


# ---- @DFF.API options: one table (name, aliases, check, honoured) ----------

_INTEGRATIONS = {'signin': 'signIn', 'sign_in': 'signIn', 'login': 'signIn', 'log_in': 'signIn',
                 'autorun': 'autoRun', 'auto_run': 'autoRun'}
_INTEGRATION_CONFIG = {'cronexpr': 'cronExpr', 'cron_expr': 'cronExpr', 'crontab': 'cronExpr',
                       'onsystemlaunch': 'onSystemLaunch', 'on_system_launch': 'onSystemLaunch',
                       'onlaunch': 'onSystemLaunch', 'on_launch': 'onSystemLaunch',
                       'onscriptpublish': 'onScriptPublish',
                       'on_script_publish': 'onScriptPublish', 'onpublish': 'onScriptPublish',
                       'on_publish': 'onScriptPublish'}


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _opt_cron(name, v):
    if not isinstance(v, str) or not v.strip():
        raise InvalidAPIOption('`%s` should be a cron expression string, got %r' % (name, v))
    n = len(v.split())
    if n not in (5, 6):
        raise InvalidAPIOption('`%s` is not a valid cron expression (%d fields; 5, or 6 with '
                               'seconds first as Tandem allows)' % (name, n))
    return v.strip()


# Delayed cron runs (DFF's delayed_cron_job): each is a task waiting in
# <prefix>delayed, so Tandem bounds how many and how far (DFF does not).
DELAYED_RUNS_MAX = 60
DELAYED_RUN_MAX_S = 86400


def _opt_delayed(name, v):
    vals = v if isinstance(v, (list, tuple)) else [v]
    for d in vals:
        if not _is_int(d):
            raise InvalidAPIOption('All elements of `%s` should be int' % name)
        if not 0 <= d <= DELAYED_RUN_MAX_S:
            raise InvalidAPIOption('Elements of `%s` are delays in seconds, 0..%d; got %d'
                                   % (name, DELAYED_RUN_MAX_S, d))
    vals = sorted(set(vals))
    if len(vals) > DELAYED_RUNS_MAX:
        raise InvalidAPIOption('`%s` has %d delays; Tandem runs at most %d per cron slot'
                               % (name, len(vals), DELAYED_RUNS_MAX))
    return vals


def _opt_range(lo, hi):
    def check(name, v):
        if not _is_int(v):
            raise InvalidAPIOption('`%s` should be an integer, got %r' % (name, v))
        if not lo <= v <= hi:
            raise InvalidAPIOption('`%s` should be between `%d` and `%d` (%d..%d seconds), '
                                   'got %d' % (name, lo, hi, lo, hi, v))
        return v
    return check


def _opt_cache_result(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or v < 0:
        raise InvalidAPIOption('`%s` should be an int or a float (seconds), got %r' % (name, v))
    return v


def _opt_queue(name, v):
    if not _is_int(v):
        raise InvalidAPIOption('`%s` should be an integer, got %r' % (name, v))
    if v == 0:
        raise InvalidAPIOption("`%s` can't be 0 because the #0 queue is a system queue" % name)
    if not 0 <= v < QUEUE_COUNT:
        raise InvalidAPIOption('`%s` should be one of %s, got %d'
                               % (name, list(range(1, QUEUE_COUNT)), v))
    return v


def _opt_str(name, v):
    if not isinstance(v, str):
        raise InvalidAPIOption('`%s` should be a string, got %r' % (name, v))
    return v


def _opt_tags(name, v):
    if not isinstance(v, (list, tuple)):
        raise InvalidAPIOption('`%s` should be a tuple or a list, got %r' % (name, v))
    for t in v:
        if not isinstance(t, str):
            raise InvalidAPIOption('Element of `%s` should be a string, got %r' % (name, t))
    return sorted(set(v))


def _opt_integration(name, v):
    if not isinstance(v, str):
        raise InvalidAPIOption('`%s` should be a string, got %r' % (name, v))
    if v.lower() not in _INTEGRATIONS:
        raise InvalidAPIOption('Unsupported `%s` value: %s' % (name, v))
    return _INTEGRATIONS[v.lower()]


def _opt_integration_config(name, v):
    if not isinstance(v, dict):
        raise InvalidAPIOption('`%s` should be a dict, got %r' % (name, v))
    out = {}
    for k, x in v.items():
        if not isinstance(k, str) or k.lower() not in _INTEGRATION_CONFIG:
            raise InvalidAPIOption('Unsupported `%s` name: %s' % (name, k))
        out[_INTEGRATION_CONFIG[k.lower()]] = x
    return out


def _opt_bool(name, v):
    if not isinstance(v, bool):
        raise InvalidAPIOption('`%s` should be True or False, got %r' % (name, v))
    return v


# name, aliases (DFF's older spellings), check, DFF's extraConfig key, and
# why Tandem cannot honour it yet (None = honoured). docs/dff-compat.md and
# the runtime test walk this table.
API_OPTIONS = (
    ('fixed_cron_expr', ('fixed_crontab',), _opt_cron, 'fixedCronExpr', None),
    ('delayed_cron_job', ('delayed_crontab',), _opt_delayed, 'delayedCronJob', None),
    ('timeout', ('api_timeout',), _opt_range(TIMEOUT_MIN, TIMEOUT_MAX), 'timeout', None),
    ('expires', (), _opt_range(EXPIRES_MIN, EXPIRES_MAX), 'expires', None),
    ('cache_result', (), _opt_cache_result, 'cacheResult', None),
    ('queue', (), _opt_queue, 'queue', None),
    ('category', (), _opt_str, 'category', None),
    ('tags', (), _opt_tags, 'tags', None),
    ('integration', (), _opt_integration, 'integration', None),
    ('integration_config', (), _opt_integration_config, 'integrationConfig', None),
    ('is_hidden', (), _opt_bool, 'isHidden', None),
)
_OPT_BY_NAME = {}
for _row in API_OPTIONS:
    _OPT_BY_NAME[_row[0]] = _row
    for _a in _row[1]:
        _OPT_BY_NAME[_a] = _row

# Integrations Tandem runs; the others are refused at publish.
_INTEGRATION_HONOURED = {'autoRun': ('cronExpr',)}


def api_options(options):
    """Validate @DFF.API keyword options the way DFF does; returns
    {canonical name: normalised value}. Raises InvalidAPIOption naming the
    option for a bad value, an unknown option, or one Tandem cannot honour."""
    out = {}
    for k, v in options.items():
        row = _OPT_BY_NAME.get(k)
        if row is None:
            raise InvalidAPIOption('unknown @DFF.API option `%s` (DFF has: %s)'
                                   % (k, ', '.join(sorted(_OPT_BY_NAME))))
        if v is None:
            continue
        name = row[0]
        # DFF: `fixed_cron_expr or fixed_crontab`, `timeout or api_timeout`
        if name in out and k != name:
            continue
        out[name] = row[2](k, v)
        if row[4] is not None:
            raise InvalidAPIOption('@DFF.API option `%s` is not supported by Tandem: %s'
                                   % (k, row[4]))
    integ = out.get('integration')
    if integ is not None:
        allowed = _INTEGRATION_HONOURED.get(integ)
        if allowed is None:
            raise InvalidAPIOption('@DFF.API integration `%s` is not supported by Tandem '
                                   '(supported: %s)' % (integ, ', '.join(_INTEGRATION_HONOURED)))
        for ck in out.get('integration_config') or {}:
            if ck not in allowed:
                raise InvalidAPIOption('@DFF.API integration_config `%s` is not supported by '
                                       'Tandem (supported: %s)' % (ck, ', '.join(allowed)))
    elif 'integration_config' in out:
        raise InvalidAPIOption('`integration_config` needs `integration`')
    return out


# ---- print / log -----------------------------------------------------------

def _print(*args, **kwargs):
    """DFF's print: one log line per call, args joined by sep; end and file
    are not used (DFF keeps its own lines)."""
    sep = kwargs.get('sep') or ' '
    msg = sep.join('%s' % (a,) for a in args)
    lines = _task.lines
    if lines is None:
        builtins.print(msg)
    else:
        lines.entry(msg)


def _obj_size(v):
    try:
        return sys.getsizeof(v)
    except Exception:
        return None


def _print_var(*args, **kwargs):
    for v in args:
        _print('[VAR] type=`%s`, value=`%s`, obj_size=`%s`' % (type(v), v, _obj_size(v)))
    for name, v in kwargs.items():
        _print('[VAR] %s: type=`%s`, value=`%s`, obj_size=`%s`' % (name, type(v), v, _obj_size(v)))


# ---- DFF.ENV ---------------------------------------------------------------

def _cast_env(name, value, vtype):
    try:
        if vtype == 'string':
            return value
        if vtype == 'password':
            if _tandem is not None and value.startswith('sealed:'):
                value = _tandem.secret_open(value)
            _task.masks.add(value)
            return value
        if vtype == 'integer':
            return int(value)
        if vtype == 'float':
            return float(value)
        if vtype == 'boolean':
            return to_boolean(value)
        if vtype == 'json':
            return json.loads(value)
        if vtype == 'commaArray':
            return value.split(',')
    except (ValueError, TypeError) as e:
        raise InvalidEnvVariable('env variable `%s` (type %s) cannot be read: %s'
                                 % (name, vtype, e)) from None
    raise InvalidEnvVariable('env variable `%s` has an unknown type `%s` (string, password, '
                             'integer, float, boolean, json, commaArray)' % (name, vtype))


class _EnvHelper(object):
    """DFF.ENV(name), DFF.ENV.get(name), DFF.ENV.keys(); typed values."""

    def _all(self):
        global _env_cache
        _need_worker('ENV')
        if _env_cache is None:
            _env_cache = _tandem.env_all()
        return _env_cache

    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)

    def keys(self):
        return sorted(self._all())

    def get(self, env_variable_id, default=None):
        if env_variable_id in _task.env:
            return json.loads(json.dumps(_task.env[env_variable_id]))
        row = self._all().get(env_variable_id)
        if row is None:
            return default
        value, vtype = row if isinstance(row, tuple) else (row, 'string')
        v = _cast_env(env_variable_id, value, vtype)
        _task.env[env_variable_id] = v
        return json.loads(json.dumps(v))


# ---- DFF.CACHE: DFF's method set over the worker's Redis -------------------

def _s(v):
    """DFF's _convert_result: bytes -> str, recursively."""
    if isinstance(v, bytes):
        return v.decode('utf-8', 'replace')
    if isinstance(v, (list, tuple, set)):
        return [_s(x) for x in v]
    if isinstance(v, dict):
        return {_s(k): _s(x) for k, x in v.items()}
    return v


def _pairs(v):
    """A flat [k, v, k, v] reply as a dict (redis-py's HGETALL)."""
    v = _s(v) or []
    return dict(zip(v[0::2], v[1::2]))


def _redis_value(what, v):
    """Values redis-py accepts (DFF passes them through): str, bytes, int,
    float. Anything else is refused as redis-py refuses it."""
    if isinstance(v, bool) or not isinstance(v, (str, bytes, int, float)):
        raise TypeError('%s: invalid input of type %s; convert to str, bytes, int or float '
                        'first (e.g. json.dumps)' % (what, type(v).__name__))
    return v


class RedisCommands(object):
    """DFF's redis helper methods over a raw command runner `_cmd(*args)`
    (reply as bytes/int/list/None) and a key mapper `_k(key, scope)`. Used by
    DFF.CACHE (the worker's Redis, keys scoped) and by DFF.CONN for a redis
    connector (keys as given)."""

    def _k(self, key, scope=None):
        return key

    def _unk(self, full, scope=None):
        return full

    def _cmd(self, *args):
        raise NotImplementedError

    # generic
    def run(self, cmd, key, *args, **kwargs):
        scope = kwargs.pop('scope', None)
        return _s(self._cmd(cmd, self._k(key, scope), *args))

    def type(self, key, scope=None):
        t = _s(self._cmd('TYPE', self._k(key, scope)))
        return None if t == 'none' else t

    def keys(self, pattern='*', scope=None):
        found, cursor = set(), '0'
        match = self._k(pattern, scope)
        while True:
            cursor, ks = self._cmd('SCAN', cursor, 'MATCH', match, 'COUNT', 1000)
            for k in ks:
                found.add(self._unk(_s(k), scope))
            cursor = _s(cursor)
            if cursor == '0':
                break
        return list(found)

    def exists(self, key, scope=None):
        return bool(self._cmd('EXISTS', self._k(key, scope)))

    def expire(self, key, expires=None, scope=None, expire=None):
        expires = expires or expire
        if expires is None or expires <= 0:
            expires = 1
        return bool(self._cmd('EXPIRE', self._k(key, scope), int(expires)))

    def expireat(self, key, timestamp, scope=None):
        return bool(self._cmd('EXPIREAT', self._k(key, scope), int(timestamp)))

    def ttl(self, key, scope=None):
        return self._cmd('TTL', self._k(key, scope))

    def pttl(self, key, scope=None):
        return self._cmd('PTTL', self._k(key, scope))

    def delete(self, key, scope=None):
        keys = key if isinstance(key, (list, tuple)) else [key]
        if not keys:
            return 0
        return self._cmd('DEL', *[self._k(k, scope) for k in keys])

    # string
    def set(self, key, value, scope=None, expires=None, not_exists=False, exists=False,
            expire=None):
        expires = expires or expire
        args = ['SET', self._k(key, scope), _redis_value('set', value)]
        if expires:
            args += ['EX', int(expires)]
        if not_exists:
            args.append('NX')
        if exists:
            args.append('XX')
        return True if self._cmd(*args) == b'OK' else None

    def mset(self, key_values, scope=None):
        if not key_values:
            return False
        args = ['MSET']
        for k, v in key_values.items():
            args += [self._k(k, scope), _redis_value('mset', v)]
        return self._cmd(*args) == b'OK'

    def get(self, key, scope=None):
        return _s(self._cmd('GET', self._k(key, scope)))

    def mget(self, keys, scope=None):
        keys = keys if isinstance(keys, (list, tuple)) else [keys]
        if not keys:
            return {}
        res = _s(self._cmd('MGET', *[self._k(k, scope) for k in keys]))
        return dict(zip(keys, res))

    def getset(self, key, value, scope=None):
        return _s(self._cmd('GETSET', self._k(key, scope), _redis_value('getset', value)))

    def incr(self, key, step=1, scope=None):
        return self._cmd('INCRBY', self._k(key, scope), int(step))

    def incrby(self, key, step=1, scope=None):
        return self._cmd('INCRBY', self._k(key, scope), int(step))

    # hash
    def hkeys(self, key, pattern='*', scope=None, with_values=False):
        result, cursor = {}, '0'
        k = self._k(key, scope)
        while True:
            cursor, flat = self._cmd('HSCAN', k, cursor, 'MATCH', pattern, 'COUNT', 1000)
            result.update(_pairs(flat))
            if _s(cursor) == '0':
                break
        return result if with_values else list(result.keys())

    def hset(self, key, field, value, scope=None, not_exists=False):
        cmd = 'HSETNX' if not_exists else 'HSET'
        return self._cmd(cmd, self._k(key, scope), field, _redis_value('hset', value))

    def hmset(self, key, field_values, scope=None):
        if not field_values:
            return False
        args = ['HSET', self._k(key, scope)]
        for f, v in field_values.items():
            args += [f, _redis_value('hmset', v)]
        self._cmd(*args)
        return True

    def hsetnx(self, key, field, value, scope=None):
        return self._cmd('HSETNX', self._k(key, scope), field, _redis_value('hsetnx', value))

    def hget(self, key, field=None, scope=None):
        return _s(self._cmd('HGET', self._k(key, scope), field))

    def hmget(self, key, fields, scope=None):
        fields = fields if isinstance(fields, (list, tuple)) else [fields]
        if not fields:
            return {}
        return dict(zip(fields, _s(self._cmd('HMGET', self._k(key, scope), *fields))))

    def hgetall(self, key, scope=None):
        return _pairs(self._cmd('HGETALL', self._k(key, scope)))

    def hincr(self, key, field, scope=None):
        return self._cmd('HINCRBY', self._k(key, scope), field, 1)

    def hincrby(self, key, field, amount=1, scope=None):
        return self._cmd('HINCRBY', self._k(key, scope), field, int(amount))

    def hdel(self, key, field, scope=None):
        fields = field if isinstance(field, (list, tuple)) else [field]
        if not fields:
            return 0
        return self._cmd('HDEL', self._k(key, scope), *fields)

    # list
    def _push(self, cmd, key, value, scope):
        values = value if isinstance(value, (list, tuple)) else [value]
        if not values:
            return 0
        return self._cmd(cmd, self._k(key, scope), *[_redis_value(cmd.lower(), v) for v in values])

    def lpush(self, key, value, scope=None):
        return self._push('LPUSH', key, value, scope)

    def rpush(self, key, value, scope=None):
        return self._push('RPUSH', key, value, scope)

    def lpop(self, key, scope=None):
        return _s(self._cmd('LPOP', self._k(key, scope)))

    def rpop(self, key, scope=None):
        return _s(self._cmd('RPOP', self._k(key, scope)))

    def _bpop(self, cmd, key, timeout, scope):
        keys = key if isinstance(key, (list, tuple)) else [key]
        r = self._cmd(cmd, *[self._k(k, scope) for k in keys], int(timeout))
        if r is None:
            return None
        return [self._unk(_s(r[0]), scope), _s(r[1])]

    def blpop(self, key, timeout=0, scope=None):
        return self._bpop('BLPOP', key, timeout, scope)

    def brpop(self, key, timeout=0, scope=None):
        return self._bpop('BRPOP', key, timeout, scope)

    def rpoplpush(self, key, dest_key=None, scope=None, dest_scope=None):
        dest_key = dest_key or key
        dest_scope = dest_scope or scope
        return _s(self._cmd('RPOPLPUSH', self._k(key, scope), self._k(dest_key, dest_scope)))

    def llen(self, key, scope=None):
        return self._cmd('LLEN', self._k(key, scope))

    def lrange(self, key, start=0, stop=-1, scope=None):
        return _s(self._cmd('LRANGE', self._k(key, scope), int(start), int(stop)))

    def ltrim(self, key, start, stop, scope=None):
        return self._cmd('LTRIM', self._k(key, scope), int(start), int(stop)) == b'OK'

    def push(self, *args, **kwargs):
        return self.lpush(*args, **kwargs)

    def pop(self, *args, **kwargs):
        return self.rpop(*args, **kwargs)

    def bpop(self, *args, **kwargs):
        return self.brpop(*args, **kwargs)

    # set
    def sadd(self, key, member, scope=None):
        return self._push('SADD', key, member, scope)

    def srem(self, key, member, scope=None):
        return self._push('SREM', key, member, scope)

    def scard(self, key, scope=None):
        return self._cmd('SCARD', self._k(key, scope))

    def smembers(self, key, scope=None):
        return _s(self._cmd('SMEMBERS', self._k(key, scope)))

    def sismember(self, key, member, scope=None):
        return bool(self._cmd('SISMEMBER', self._k(key, scope), member))

    # sorted set
    def zadd(self, key, member_scores, scope=None):
        args = ['ZADD', self._k(key, scope)]
        for m, sc in member_scores.items():
            args += [sc, m]
        return self._cmd(*args)

    def zrem(self, key, member, scope=None):
        return self._push('ZREM', key, member, scope)

    def zcard(self, key, scope=None):
        return self._cmd('ZCARD', self._k(key, scope))

    def zrange(self, key, start=0, stop=-1, reverse=False, with_scores=False, scope=None):
        args = ['ZRANGE', self._k(key, scope), int(start), int(stop)]
        if reverse:
            args.append('REV')
        if with_scores:
            args.append('WITHSCORES')
            flat = _s(self._cmd(*args))
            return [[m, float(sc)] for m, sc in zip(flat[0::2], flat[1::2])]
        return _s(self._cmd(*args))

    # pub
    def publish(self, topic, message, scope=None):
        return self._cmd('PUBLISH', self._k(topic, scope), _redis_value('publish', message))

    # DFF's extensions
    def get_pattern(self, pattern='*', scope=None):
        keys = self.keys(pattern, scope)
        if not keys:
            return {}
        return self.mget(keys, scope)

    def delete_pattern(self, pattern='*', scope=None):
        keys = self.keys(pattern, scope)
        return self.delete(keys, scope) if keys else 0


class _CacheHelper(RedisCommands):
    """DFF.CACHE. Keys live under <prefix>ucache:<len(scope)>:<scope>:<key>:
    never under <prefix>cache:result: (cache_result's keys, so scope
    'result' cannot read or clobber them), and the scope's length makes
    (scope 'a:b', key 'c') and (scope 'a', key 'b:c') distinct. Keys are
    built here, whole: no length limit, nothing cut. The default scope is
    the calling script, as in DFF."""

    def _scope(self, scope):
        if scope is None:
            scope = _task.script_id or '_'
        if not isinstance(scope, str) or not scope:
            raise ValueError('DFF.CACHE scope must be a non-empty string, got %r' % (scope,))
        return scope

    def _k(self, key, scope=None):
        if isinstance(key, bytes):
            key = key.decode('utf-8')
        if not isinstance(key, str) or not key:
            raise ValueError('DFF.CACHE key must be a non-empty string, got %r' % (key,))
        sc = self._scope(scope)
        return '%sucache:%d:%s:%s' % (_cfg['prefix'], len(sc), sc, key)

    def _unk(self, full, scope=None):
        sc = self._scope(scope)
        return full[len('%sucache:%d:%s:' % (_cfg['prefix'], len(sc), sc)):]

    def _cmd(self, *args):
        _need_worker('CACHE')
        return _tandem.redis(*args)

    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)


# ---- DFF.STORE: MariaDB table func_store (migration 002) --------------------

class _StoreHelper(object):
    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)

    def _scope(self, scope):
        if scope is None:
            scope = _task.script_id or '_'
        if not isinstance(scope, str):
            raise ValueError('DFF.STORE scope must be a string, got %r' % (scope,))
        if len(scope) > STORE_KEY_MAX:
            raise ValueError('`scope` is too long. Length of `scope` should be less then %d'
                             % STORE_KEY_MAX)
        return scope

    @staticmethod
    def _id(key, scope):
        if not isinstance(key, str):
            raise ValueError('DFF.STORE key must be a string, got %r' % (key,))
        if len(key) > STORE_KEY_MAX:
            raise ValueError('`key` is too long. Length of `key` should be less then %d'
                             % STORE_KEY_MAX)
        return 'fnst-' + hashlib.md5(('%s-%s' % (key, scope)).encode('utf-8')).hexdigest()

    @staticmethod
    def _sql(q, params=()):
        _need_worker('STORE')
        return _tandem.sql(q, list(params))

    _LIVE = '(expire_at IS NULL OR expire_at > UNIX_TIMESTAMP())'

    def set(self, key, value, scope=None, expires=None, not_exists=False, expire=None):
        expires = expires or expire
        scope = self._scope(scope)
        sid = self._id(key, scope)
        vj = json_dumps(value)
        exp = None if not expires else int(time.time()) + int(expires)
        if not_exists:
            # an expired row counts as absent
            self._sql('DELETE FROM func_store WHERE id = ? AND NOT ' + self._LIVE, [sid])
            self._sql('INSERT IGNORE INTO func_store (id, scope, store_key, value_json, expire_at)'
                      ' VALUES (?, ?, ?, ?, ?)', [sid, scope, key, vj, exp])
            return
        self._sql('INSERT INTO func_store (id, scope, store_key, value_json, expire_at) '
                  'VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE value_json = VALUES(value_json),'
                  ' expire_at = VALUES(expire_at), updated_at = CURRENT_TIMESTAMP(3)',
                  [sid, scope, key, vj, exp])

    def mset(self, key_values, scope=None, expires=None, not_exists=False, expire=None):
        for k, v in key_values.items():
            self.set(k, v, scope=scope, expires=expires, not_exists=not_exists, expire=expire)

    def get(self, key, scope=None):
        scope = self._scope(scope)
        _, rows, _, _ = self._sql('SELECT value_json FROM func_store WHERE id = ? AND '
                                  + self._LIVE, [self._id(key, scope)])
        return json.loads(rows[0][0]) if rows else None

    def mget(self, keys, scope=None):
        return {k: self.get(k, scope) for k in keys}

    @staticmethod
    def _like(pattern):
        return (pattern.replace('\\', '\\\\').replace('%', '\\%').replace('_', '\\_')
                .replace('*', '%').replace('?', '_'))

    def keys(self, pattern='*', scope=None):
        scope = self._scope(scope)
        _, rows, _, _ = self._sql('SELECT store_key FROM func_store WHERE scope = ? AND '
                                  'store_key LIKE ? AND ' + self._LIVE,
                                  [scope, self._like(pattern)])
        return [r[0] for r in rows]

    def getall(self, scope=None):
        return self.get_pattern('*', scope)

    def get_pattern(self, pattern='*', scope=None):
        scope = self._scope(scope)
        _, rows, _, _ = self._sql('SELECT store_key, value_json FROM func_store WHERE scope = ? '
                                  'AND store_key LIKE ? AND ' + self._LIVE,
                                  [scope, self._like(pattern)])
        return {r[0]: json.loads(r[1]) for r in rows}

    def delete(self, key, scope=None):
        scope = self._scope(scope)
        self._sql('DELETE FROM func_store WHERE id = ?', [self._id(key, scope)])


# ---- DFF.RESP and friends: the outcome's "resp" object ----------------------

class BaseFuncResponse(object):
    """Response control for Sync/Async APIs (docs/INTERNALS.md "resp")."""

    def __init__(self, data=None, status_code=None, content_type=None, headers=None,
                 allow_304=False, download=False):
        if status_code is not None and (not _is_int(status_code) or not 100 <= status_code <= 599):
            raise ValueError('status_code should be an int 100..599, got %r' % (status_code,))
        if headers is not None and not isinstance(headers, dict):
            raise TypeError('headers should be a dict, got %s' % type(headers).__name__)
        self.data = data
        self.status_code = status_code
        self.content_type = content_type
        self.headers = dict(headers or {})
        self.allow_304 = bool(allow_304)
        self.download = download
        self.file_base64 = None
        self.large_data = False

    def resp(self):
        dl = self.download
        if dl is True:
            dl = self.data if isinstance(self.data, str) and self.file_base64 else None
        elif not isinstance(dl, str) or not dl:
            dl = None
        out = {'status_code': self.status_code, 'content_type': self.content_type,
               'headers': {str(k): str(v) for k, v in self.headers.items()} or None,
               'download': dl, 'allow_304': self.allow_304, 'large_data': self.large_data}
        if self.file_base64 is not None:
            out['file_base64'] = self.file_base64
        return out


class FuncResponse(BaseFuncResponse):
    def __init__(self, data, status_code=None, content_type=None, headers=None, allow_304=False,
                 download=False):
        BaseFuncResponse.__init__(self, data, status_code, content_type, headers, allow_304,
                                  download)


RESP_FILE_MAX = 8 * 1024 * 1024


def _resource_root():
    return os.environ.get('TANDEM_RESOURCES') or '/var/lib/tandem/resources'


class FuncResponseFile(BaseFuncResponse):
    """DFF.RESP_FILE(file_path): a file of the resource folder (relative
    paths), or an absolute path; answered as a download by default."""

    def __init__(self, file_path, status_code=None, headers=None, allow_304=False,
                 auto_delete=False, download=True):
        path = file_path if os.path.isabs(file_path) else os.path.join(_resource_root(), file_path)
        if not os.path.isfile(path):
            raise Exception('No such file in Resource folder: %s' % file_path)
        size = os.path.getsize(path)
        if size > RESP_FILE_MAX:
            raise Exception('DFF.RESP_FILE %s: %d bytes is over the %d-byte limit'
                            % (file_path, size, RESP_FILE_MAX))
        with open(path, 'rb') as f:
            body = f.read()
        if auto_delete:
            os.unlink(path)
        name = os.path.basename(path)
        BaseFuncResponse.__init__(self, name, status_code, None, headers, allow_304,
                                  name if download is True else download)
        ext = os.path.splitext(name)[1].lstrip('.').lower()
        self.content_type = ext or None
        self.file_base64 = base64.b64encode(body).decode('ascii')


class FuncResponseLargeData(BaseFuncResponse):
    def __init__(self, data, content_type=None):
        if not content_type:
            content_type = 'json' if isinstance(data, (dict, list, tuple)) else 'txt'
        if not isinstance(data, str):
            data = json_dumps(data)
        BaseFuncResponse.__init__(self, data, None, content_type, None, False, False)
        self.large_data = True


class FuncRedirect(FuncResponse):
    def __init__(self, url):
        if not isinstance(url, str):
            raise TypeError('URL should be a str, not %s' % type(url))
        quoted = ''.join(c if len(c.encode('utf8')) == 1 else urllib.parse.quote(c) for c in url)
        FuncResponse.__init__(self, '<a href="%s">Redirect</a>' % quoted, status_code=302,
                              content_type='html', headers={'Location': quoted})


# ---- DFF.CONFIG, DFF.CTX, DFF.THREAD ---------------------------------------

_MASK_WORDS = ('password', 'secret', 'token', 'key')


class _ConfigHelper(object):
    """DFF.CONFIG: the `custom { ... }` group of tandem.conf. DFF names
    custom config CUSTOM_*: both `DFF.CONFIG.get('x')` and
    `DFF.CONFIG.get('CUSTOM_X')` find custom.x (and custom.X)."""

    _conf = None

    def _all(self):
        if self._conf is None:
            self._conf = _tandem.custom_config() if _tandem else {}
        out = {}
        for k, v in self._conf.items():
            out['CUSTOM_' + k.upper() if not k.upper().startswith('CUSTOM_') else k.upper()] = v
        return out

    def _find(self, config_id):
        conf = self._all()
        if self._conf and config_id in self._conf:
            return True, self._conf[config_id]
        cid = config_id.upper()
        if not cid.startswith('CUSTOM_'):
            cid = 'CUSTOM_' + cid
        if cid in conf:
            return True, conf[cid]
        return False, None

    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)

    def get(self, config_id, default=None, unmask=False):
        found, v = self._find(config_id)
        if not found:
            return json.loads(json.dumps(default))
        if not unmask and v and any(w in config_id.lower() for w in _MASK_WORDS):
            return '*****'
        return json.loads(json.dumps(v))

    def query(self, all_configs=False, list_output=False):
        res = {}
        for k, v in self._all().items():
            res[k] = '*****' if v and any(w in k.lower() for w in _MASK_WORDS) else v
        if list_output:
            return [{'key': k, 'value': v} for k, v in res.items()]
        return res


class _CtxHelper(object):
    """DFF.CTX: a per-task dict."""

    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)

    def has(self, key):
        return key in _task.ctx

    def get(self, key):
        return _task.ctx.get(key)

    def get_all(self):
        return dict(_task.ctx)

    def set(self, key, value):
        _task.ctx[key] = value

    def delete(self, key):
        _task.ctx.pop(key, None)

    def clear(self):
        _task.ctx.clear()


class DuplicatedThreadResultKey(DataFluxFuncBaseException):
    pass


class FuncThreadResult(object):
    def __init__(self, key, value, error=None):
        self.key = key
        self.value = value
        self.error = error


class _ThreadHelper(object):
    """DFF.THREAD: a thread pool for the task (DFF's default size 5)."""

    def __init__(self):
        self._pool = None
        self._size = 5
        self._results = {}

    def _reset(self):
        if self._pool is not None:
            # never wait: a stuck thread must not hold the child past its task
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._results = {}

    @property
    def is_all_finished(self):
        return all(f.done() for f in self._results.values())

    @property
    def pool_size(self):
        return self._size

    def set_pool_size(self, pool_size):
        if not _is_int(pool_size) or pool_size < 1:
            raise ValueError('pool_size should be a positive int, got %r' % (pool_size,))
        if self._pool is not None:
            raise RuntimeError('DFF.THREAD.set_pool_size: the pool is already running')
        self._size = pool_size

    def submit(self, fn, *args, **kwargs):
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self._size)
        key = kwargs.pop('key', None) or 'thread-%d' % len(self._results)
        if key in self._results:
            raise DuplicatedThreadResultKey(key)
        t = _task

        def run():
            global _task
            _task = t
            return fn(*args, **kwargs)
        self._results[key] = self._pool.submit(run)
        return key

    def _result(self, key, wait):
        f = self._results.get(key)
        if f is None:
            return None
        if not wait and not f.done():
            return None
        try:
            return FuncThreadResult(key, f.result())
        except Exception as e:
            return FuncThreadResult(key, None, e)

    def get_result(self, key, wait=True):
        return self._result(key, wait)

    def get_all_results(self, wait=True):
        return [r for r in (self._result(k, wait) for k in list(self._results)) if r is not None]

    def pop_result(self, wait=True):
        for k, f in list(self._results.items()):
            if f.done() or wait:
                r = self._result(k, True)
                self._results.pop(k, None)
                return r
        return None

    def wait_all_finished(self):
        concurrent.futures.wait(list(self._results.values()))


# ---- DFF.FUNC ----------------------------------------------------------------

def _func_call(func_id, kwargs=None, queue=None, timeout=None, expires=None):
    """DFF.FUNC: run func_id as a new task (origin "subtask"); returns its
    task id (DFF returns None). Chain depth and circular calls as DFF."""
    _need_worker('FUNC')
    if not isinstance(func_id, str) or not func_id:
        raise ValueError('DFF.FUNC func_id must be a non-empty string, got %r' % (func_id,))
    chain = list(_task.chain)
    info = ' -> '.join('`%s`' % x for x in chain)
    if len(chain) >= CALL_CHAIN_LIMIT:
        raise FuncCallChainTooLong('%s (at most %d calls deep)' % (info, CALL_CHAIN_LIMIT))
    if func_id in chain:
        raise FuncCircularCall('%s -> [%s]' % (info, func_id))
    if kwargs is None:
        kwargs = {}
    if not isinstance(kwargs, dict):
        raise TypeError('DFF.FUNC kwargs must be a dict, got %s' % type(kwargs).__name__)
    if queue is not None:
        _opt_queue('queue', queue)
    if timeout is not None:
        _opt_range(TIMEOUT_MIN, TIMEOUT_MAX)('timeout', timeout)
    if expires is not None:
        _opt_range(EXPIRES_MIN, EXPIRES_MAX)('expires', expires)
    _, rows, _, _ = _tandem.sql('SELECT extra_json FROM func WHERE id = ?', [func_id])
    if not rows:
        raise EntityNotFound('Function not found: `%s`' % func_id)
    try:
        extra = json.loads(rows[0][0] or '{}') or {}
    except ValueError:
        extra = {}
    if queue is None:
        queue = extra.get('queue')
    q = str(queue) if queue else (_task.queue if _task.queue.isdigit() else 'async')
    if expires is None:
        expires = extra.get('expires') or EXPIRES_DEFAULT
    data = json.dumps(to_jsonable(kwargs), ensure_ascii=False, separators=(',', ':'))
    link = json.dumps({'root': _task.root_task_id or _task.task_id, 'chain': chain})
    return _tandem.func_call(func_id, data, timeout or 0, _task.task_id, q, link, int(expires))


# ---- DFF.CONN ---------------------------------------------------------------

class _ConnHelper(object):
    """DFF.CONN(id) / DFF.SRC(id): a helper for a connector of table
    connector, its secret fields opened. Types: tandem_conn.HELPERS."""

    def __call__(self, *args, **kwargs):
        return self.get(*args, **kwargs)

    def get(self, connector_id, **helper_kwargs):
        _need_worker('CONN')
        import tandem_conn
        _, rows, _, _ = _tandem.sql('SELECT type, config_json FROM connector WHERE id = ?',
                                    [connector_id])
        if not rows:
            raise EntityNotFound('Connector not found: `%s`' % connector_id)
        ctype, cj = rows[0]
        try:
            config = json.loads(cj or '{}')
        except ValueError as e:
            raise InvalidConnectorConfig('connector `%s`: config_json is not JSON: %s'
                                         % (connector_id, e))
        config = tandem_conn.open_secrets(config, _tandem.secret_open)
        for f in tandem_conn.SECRET_FIELDS:
            if config.get(f):
                _task.masks.add(config[f])
        return tandem_conn.helper(connector_id, ctype, config, **helper_kwargs)

    def query(self, connector_type=None):
        _need_worker('CONN')
        q, p = 'SELECT id, type, title, description FROM connector', []
        if connector_type:
            q, p = q + ' WHERE type = ?', [connector_type]
        _, rows, _, _ = _tandem.sql(q + ' ORDER BY id', p)
        return [{'id': r[0], 'type': r[1], 'title': r[2], 'description': r[3]} for r in rows]


# ---- the object ---------------------------------------------------------------

class _DFF(object):
    """One DFF for all scripts; per-task state is in tandem_dff._task."""

    def __init__(self):
        self.ENV = _EnvHelper()
        self.CACHE = _CacheHelper()
        self.STORE = _StoreHelper()
        self.CONFIG = _ConfigHelper()
        self.CTX = _CtxHelper()
        self.THREAD = _ThreadHelper()
        self.CONN = _ConnHelper()
        self.SRC = self.CONN
        self.RESP = FuncResponse
        self.RESP_FILE = FuncResponseFile
        self.RESP_LARGE_DATA = FuncResponseLargeData
        self.REDIRECT = FuncRedirect
        self.LOG = _print
        self.log = _print
        self.VAR = _print_var
        self.print_var = _print_var
        self.FUNC = _func_call
        self.EVAL = eval
        self.EXEC = exec

    def API(self, title=None, **options):
        """@DFF.API('Title', timeout=10, ...): marks a function callable.
        Options are checked now, as DFF does: a bad one fails the publish."""
        if title is not None and not isinstance(title, str):
            raise InvalidAPIOption('`title` should be a string, got %r' % (title,))
        opts = api_options(options)

        def deco(fn):
            if not callable(fn):
                raise TypeError('@DFF.API must decorate a function, got %r' % (fn,))
            fn.__tandem_api__ = dict(opts, title=title if title is not None else fn.__name__)
            fn.__tandem_options__ = dict(options)
            return fn
        return deco

    @property
    def task_id(self):
        return _task.task_id

    # lowercase aliases (dff.cache, dff.env, ...)
    def __getattr__(self, name):
        up = name.upper()
        if up != name and up in self.__dict__:
            return self.__dict__[up]
        if up != name and hasattr(type(self), up):
            return getattr(self, up)
        raise AttributeError("DFF has no member %r" % name)


DFF = _DFF()
