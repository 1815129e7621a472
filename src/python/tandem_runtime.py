"""What the worker child calls: load published scripts, run a function,
inspect code for publishing. Everything here returns plain tuples; the C
side (src/worker/worker_py.c) turns them into outcomes.

Outcome tuple: (status, result_json, reason, message, traceback, output,
data_json, cache_result) — strings or None, cache_result an int.
"""
import builtins
import importlib.util
import json
import linecache
import logging
import re
import sys
import threading
import traceback
import types

import _tandem
import tandem_dff
from tandem_dff import DFF

builtins.DFF = DFF
sys.modules.setdefault('DFF', DFF)  # `import DFF` gives the same object

_cfg = {'default_timeout': 30, 'output_cap': 65536}

# script_id -> _Script
_scripts = {}


class _Script(object):
    __slots__ = ('ver', 'module', 'funcs', 'stale')

    def __init__(self, ver, module, funcs):
        self.ver = ver
        self.module = module
        self.funcs = funcs
        self.stale = False


class _Capture(object):
    """sys.stdout/sys.stderr during a task: keeps the first `cap` bytes.

    Only this task's output: threads that were already running when it
    started (left over from earlier tasks) print into nothing here, not
    into this task's output."""

    def __init__(self, cap):
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0
        self.strays = frozenset(sys._current_frames()) - {threading.get_ident()}

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        if self.strays and threading.get_ident() in self.strays:
            return len(s)  # an earlier task's thread: dropped
        if self.size >= self.cap:
            self.dropped += len(s) if s.isascii() else len(s.encode('utf-8', 'replace'))
            return len(s)
        b = s.encode('utf-8', 'replace')
        room = self.cap - self.size
        if len(b) <= room:
            self.parts.append(s)
            self.size += len(b)
        else:
            self.parts.append(b[:room].decode('utf-8', 'ignore'))
            self.size = self.cap
            self.dropped += len(b) - room
        return len(s)

    def writelines(self, lines):
        for s in lines:
            self.write(s)

    def flush(self):
        pass

    def isatty(self):
        return False

    def writable(self):
        return True

    @property
    def encoding(self):
        return 'utf-8'

    @property
    def buffer(self):
        """sys.stdout.buffer.write(b'...') lands in the same capture."""
        return _BytesView(self)

    def getvalue(self):
        out = ''.join(self.parts)
        if self.dropped:
            out += '\n...[truncated %d bytes]' % self.dropped
        return out


class _BytesView(object):
    def __init__(self, cap):
        self._cap = cap

    def write(self, b):
        self._cap.write(bytes(b).decode('utf-8', 'replace'))
        return len(b)

    def flush(self):
        pass


class _Handler(logging.Handler):
    """Root logging handler that writes to whatever sys.stderr is now."""

    def emit(self, record):
        try:
            sys.stderr.write(self.format(record) + '\n')
        except Exception:
            self.handleError(record)


def setup(default_timeout, output_cap):
    if not any(isinstance(f, _ScriptFinder) for f in sys.meta_path):
        sys.meta_path.append(_ScriptFinder())
    _cfg['default_timeout'] = int(default_timeout)
    _cfg['output_cap'] = int(output_cap)
    root = logging.getLogger()
    h = _Handler()
    h.setFormatter(logging.Formatter('[%(levelname)s] %(message)s'))
    root.handlers[:] = [h]
    root.setLevel(logging.INFO)
    logging.raiseExceptions = False


def invalidate():
    """<prefix>gen changed: re-check every script's version before its next use."""
    for s in _scripts.values():
        s.stale = True
    tandem_dff._invalidate()


def _filename(script_id):
    return '<script %s>' % script_id


def _new_module(script_id, code):
    """Compile and execute code as a fresh module. Raises what it raises."""
    filename = _filename(script_id)
    co = compile(code, filename, 'exec', dont_inherit=True)
    # Tracebacks show the script's source lines.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    mod = types.ModuleType(script_id)
    mod.__file__ = filename
    mod.DFF = DFF
    exec(co, mod.__dict__)
    return mod


def _api_funcs(mod):
    out = {}
    for name, obj in list(mod.__dict__.items()):
        meta = getattr(obj, '__tandem_api__', None)
        if isinstance(meta, dict) and callable(obj) and getattr(obj, '__module__', None) == mod.__name__:
            out[name] = obj
    return out


class _NotFound(Exception):
    pass


def _load(script_id, ver):
    """The script's module, (re)loaded from MariaDB when needed."""
    s = _scripts.get(script_id)
    if s is not None and not s.stale and ver <= s.ver:
        return s
    try:
        code, dbver = _tandem.script_fetch(script_id)
    except _tandem.BackendError:
        if s is not None:
            return s  # keep serving the version we have while the database is away
        raise
    if code is None:
        _scripts.pop(script_id, None)
        raise _NotFound('script %s is not published' % script_id)
    if s is not None and s.ver == dbver:
        s.stale = False
        return s
    mod = _new_module(script_id, code)
    sys.modules[script_id] = mod
    s = _Script(dbver, mod, _api_funcs(mod))
    _scripts[script_id] = s
    return s


class _ScriptFinder(object):
    """`import demo__other` in a script imports the published script
    demo__other (DataFlux Func scripts import each other by id). Last on
    sys.meta_path, so the standard library always wins."""

    _name = re.compile(r'^[A-Za-z0-9_]+__[A-Za-z0-9_]+$')

    def find_spec(self, name, path, target=None):
        if path is not None or not self._name.match(name) or name.startswith('__'):
            return None
        return importlib.util.spec_from_loader(name, self)

    def create_module(self, spec):
        try:
            return _load(spec.name, 0).module
        except _NotFound as e:
            raise ModuleNotFoundError('no published script %s (%s)' % (spec.name, e),
                                      name=spec.name)

    def exec_module(self, module):
        pass  # _load executed it already


def _tb_text(e):
    """Traceback without this module's own leading frames."""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None and \
            tb.tb_frame.f_globals.get('__name__') == __name__:
        tb = tb.tb_next
    return ''.join(traceback.format_exception(type(e), e, tb))


def _exc_msg(e):
    msg = str(e)
    return '%s: %s' % (type(e).__name__, msg) if msg else type(e).__name__


def _dumps(value):
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(',', ':'))


def _run(task_id, func_id, fn_body):
    """Run fn_body() with output captured; returns (value_or_exc, ok, output)."""
    cap = _Capture(_cfg['output_cap'])
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = cap
    tandem_dff._current = {'task_id': task_id, 'func_id': func_id}
    try:
        v = fn_body()
        ok = True
    except BaseException as e:  # SystemExit and KeyboardInterrupt too: the child keeps serving
        v = e
        ok = False
    finally:
        sys.stdout, sys.stderr = old
        tandem_dff._current = {'task_id': '', 'func_id': ''}
    return v, ok, cap.getvalue()


def call(task_id, func_id, script_id, func_name, kwargs_json, ver):
    state = {'cache_result': 0}

    def body():
        s = _load(script_id, ver)
        fn = s.funcs.get(func_name)
        if fn is None:
            raise _NotFound('func %s not found in script %s (version %d)'
                            % (func_name, script_id, s.ver))
        state['cache_result'] = int(fn.__tandem_api__.get('cache_result') or 0)
        kwargs = json.loads(kwargs_json) if kwargs_json else {}
        return fn(**kwargs)

    v, ok, output = _run(task_id, func_id, body)
    if not ok:
        if isinstance(v, _NotFound):
            return ('failure', None, 'EFuncNotFound', str(v), None, output, None, 0)
        if isinstance(v, _tandem.BackendError):
            return ('failure', None, 'EBackend', 'cannot load script %s: %s' % (script_id, v),
                    None, output, None, 0)
        if isinstance(v, SyntaxError) and v.filename == _filename(script_id):
            return ('failure', None, 'EScriptSyntaxError',
                    'SyntaxError at line %s: %s' % (v.lineno, v.msg), _tb_text(v), output,
                    _dumps({'line': v.lineno}), 0)
        return ('failure', None, 'EFuncFailed', _exc_msg(v), _tb_text(v), output, None, 0)
    try:
        result = _dumps(v)
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        return ('failure', None, 'EFuncResultParsingFailed',
                'result of %s is not JSON-serialisable: %s' % (func_id, _exc_msg(e)), None,
                output, None, 0)
    return ('success', result, None, None, None, output, None, state['cache_result'])


def _inspect_funcs(mod):
    import inspect  # only publishing needs it; keeps idle children small
    funcs = []
    for name, fn in _api_funcs(mod).items():
        meta = dict(fn.__tandem_api__)
        line = getattr(getattr(fn, '__code__', None), 'co_firstlineno', None)
        title = meta.pop('title')
        timeout = meta.pop('timeout', None)
        if timeout is None:
            timeout = _cfg['default_timeout']
        if isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 3600:
            raise _Invalid('func %s: timeout must be an integer 1..3600, got %r'
                           % (name, timeout), line)
        cache_result = meta.pop('cache_result', None) or 0
        if isinstance(cache_result, bool) or not isinstance(cache_result, int) or cache_result < 0:
            raise _Invalid('func %s: cache_result must be a non-negative integer (seconds), '
                           'got %r' % (name, cache_result), line)
        cron = meta.pop('fixed_cron_expr', None)
        if cron is not None and not isinstance(cron, str):
            raise _Invalid('func %s: fixed_cron_expr must be a string, got %r' % (name, cron), line)
        try:
            sig = inspect.signature(fn)
            args = [p.name for p in sig.parameters.values()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        except (TypeError, ValueError):
            args = []
        try:
            _dumps(meta)
        except (TypeError, ValueError) as e:
            raise _Invalid('func %s: @DFF.API arguments must be JSON values: %s'
                           % (name, _exc_msg(e)), line)
        funcs.append({'name': name, 'title': title, 'timeout': timeout,
                      'cache_result': cache_result, 'fixed_cron_expr': cron, 'args': args,
                      'extra': meta})
    return funcs


class _Invalid(Exception):
    def __init__(self, msg, line):
        Exception.__init__(self, msg)
        self.line = line


def inspect_code(task_id, code, script_id):
    if not isinstance(code, str):
        return ('failure', None, 'EClientBadRequest', 'kwargs.code must be a string', None, '',
                None, 0)
    filename = _filename(script_id)
    try:
        co = compile(code, filename, 'exec', dont_inherit=True)
    except SyntaxError as e:  # IndentationError, TabError included
        return ('failure', None, 'EScriptSyntaxError',
                'SyntaxError at line %s: %s' % (e.lineno, e.msg), None, '',
                _dumps({'line': e.lineno, 'offset': e.offset}), 0)
    except ValueError as e:  # e.g. NUL bytes in the source
        return ('failure', None, 'EScriptSyntaxError', 'SyntaxError at line 0: %s' % e, None, '',
                _dumps({'line': 0}), 0)

    def body():
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        mod = types.ModuleType(script_id)
        mod.__file__ = filename
        mod.DFF = DFF
        exec(co, mod.__dict__)
        return _inspect_funcs(mod)

    v, ok, output = _run(task_id, '__sys.inspect', body)
    if not ok:
        if isinstance(v, _Invalid):
            return ('failure', None, 'EScriptSyntaxError', str(v), None, output,
                    _dumps({'line': v.line}), 0)
        line = None
        tb = v.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return ('failure', None, 'EFuncFailed', 'script %s failed to load: %s'
                % (script_id, _exc_msg(v)), _tb_text(v), output, _dumps({'line': line}), 0)
    return ('success', _dumps({'funcs': v}), None, None, None, output, None, 0)
