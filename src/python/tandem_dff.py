"""The DFF object scripts use (DataFlux Func's dialect).

Scripts get `DFF` as a builtin, as in DataFlux Func; `from tandem_dff import
DFF` works too. Redis- and MariaDB-backed calls go through `_tandem`, the C
module the worker registers before the interpreter starts.
"""
import json
import sys

try:
    import _tandem
except ImportError:  # imported outside the worker (docs, linters)
    _tandem = None

__all__ = ['DFF']

# Set by tandem_runtime around each call: {'task_id': ..., 'func_id': ...}.
_current = {'task_id': '', 'func_id': ''}

# @DFF.API keywords DataFlux Func documents; others are accepted and kept in
# "extra" too, so a script written for a newer DFF still publishes.
_API_KNOWN = ('category', 'tags', 'timeout', 'cache_result', 'fixed_cron_expr',
              'delayed_cron_job', 'is_hidden', 'expires', 'queue', 'integration')

_env_cache = None


def _need_worker(what):
    if _tandem is None:
        raise RuntimeError('DFF.%s is only available inside tandem-worker' % what)


def _invalidate():
    """Called when <prefix>gen changed: env variables may have changed."""
    global _env_cache
    _env_cache = None


class _Cache(object):
    """DFF.CACHE: JSON values in Redis under <prefix>cache:<scope>:<key>.

    The scope defaults to the calling script ("<set>__<name>"), as in DataFlux
    Func, so the functions of one script share their cache; pass scope= to
    share across scripts."""

    @staticmethod
    def _scope(scope):
        if scope is None:
            return _current['func_id'].rsplit('.', 1)[0]
        if not isinstance(scope, str) or not scope:
            raise ValueError('DFF.CACHE scope must be a non-empty string, got %r' % (scope,))
        return scope

    @staticmethod
    def _key(key):
        if not isinstance(key, str) or not key:
            raise ValueError('DFF.CACHE key must be a non-empty string, got %r' % (key,))
        return key

    def set(self, key, value, expires=None, scope=None):
        _need_worker('CACHE')
        if expires is not None:
            if isinstance(expires, bool) or not isinstance(expires, int) or expires <= 0:
                raise ValueError('DFF.CACHE.set expires must be a positive int (seconds), got %r'
                                 % (expires,))
        data = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(',', ':'))
        _tandem.cache_set(self._scope(scope), self._key(key), data, expires or 0)

    def get(self, key, default=None, scope=None):
        _need_worker('CACHE')
        data = _tandem.cache_get(self._scope(scope), self._key(key))
        if data is None:
            return default
        try:
            return json.loads(data)
        except ValueError:
            return data  # written by something else as plain text

    def delete(self, key, scope=None):
        _need_worker('CACHE')
        return _tandem.cache_delete(self._scope(scope), self._key(key))


class _DFF(object):
    CACHE = _Cache()

    def API(self, title, **options):
        """Marks a function callable: @DFF.API('Title', timeout=10, ...)."""
        if not isinstance(title, str):
            raise TypeError('DFF.API title must be a string, got %r' % (title,))

        def deco(fn):
            if not callable(fn):
                raise TypeError('@DFF.API must decorate a function, got %r' % (fn,))
            fn.__tandem_api__ = dict(options, title=title)
            return fn
        return deco

    def ENV(self, name, default=None):
        """Value of env variable `name` (admin-managed), else default (None)."""
        global _env_cache
        _need_worker('ENV')
        if _env_cache is None:
            _env_cache = _tandem.env_all()
        return _env_cache.get(name, default)

    def FUNC(self, func_id, kwargs=None, timeout=None):
        """Enqueue func_id as a new async task (origin "subtask"); its task id."""
        _need_worker('FUNC')
        if not isinstance(func_id, str) or not func_id:
            raise ValueError('DFF.FUNC func_id must be a non-empty string, got %r' % (func_id,))
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise TypeError('DFF.FUNC kwargs must be a dict, got %s' % type(kwargs).__name__)
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int)
                                    or not 1 <= timeout <= 3600):
            raise ValueError('DFF.FUNC timeout must be an int 1..3600, got %r' % (timeout,))
        data = json.dumps(kwargs, ensure_ascii=False, allow_nan=False, separators=(',', ':'))
        return _tandem.func_call(func_id, data, timeout or 0, _current['task_id'])

    def log(self, *args, **kwargs):
        """Like print(): goes to the task's captured output."""
        kwargs.pop('file', None)
        print(*args, file=sys.stdout, **kwargs)

    print = log

    def RESP(self, data=None, **_ignored):
        """DataFlux Func's custom response: Tandem answers the data as is."""
        return data

    @property
    def task_id(self):
        return _current['task_id']


DFF = _DFF()
