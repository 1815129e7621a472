"""What the worker child calls: load published scripts, run a function,
inspect code for publishing. Everything here returns plain tuples; the C
side (src/worker/worker_py.c) turns them into outcomes.

Outcome tuple: (status, result_json, reason, message, traceback, output,
data_json, cache_result, resp_json) — strings or None, cache_result an int
(seconds, rounded up), resp_json DFF.RESP's response control.
"""
import builtins
import collections
import importlib.util
import json
import linecache
import logging
import math
import os
import re
import select
import signal
import sys
import threading
import time
import traceback
import types

import _tandem
import tandem_dff
from tandem_dff import DFF

builtins.DFF = DFF
builtins.dff = DFF  # DFF's lowercase spelling
builtins.print_var = tandem_dff._print_var
sys.modules.setdefault('DFF', DFF)  # `import DFF` gives the same object

_cfg = {'default_timeout': 30, 'output_cap': 65536}

# DFF's print-log limits (its config.yaml _TASK_RECORD_PRINT_LOG_*).
LINE_LIMIT = 3000
TOTAL_HEAD = 20000
TOTAL_TAIL = 30000
DEBUG_TIMEOUT = 60  # DFF's _FUNC_TASK_TIMEOUT_DEBUGGER

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
    """sys.stdout/sys.stderr and DFF's print during a task. Each print()
    is one entry and every other write is cut into lines; each line gets
    DFF's prefix `[MM-DD HH:mm:ss] [+delta ms] [total ms]`. DFF's limits:
    a line over LINE_LIMIT characters is cut (its length noted), and only
    the first TOTAL_HEAD and the last TOTAL_TAIL characters are kept; the
    result is also cut to worker.output_cap bytes."""

    def __init__(self, cap, start=None):
        self.cap = cap
        # the stamp shows the wall clock; the +delta and total are elapsed
        # time (monotonic): a step of the wall clock does not enter them
        now_m = time.monotonic()
        self.start_m = now_m - max(0.0, time.time() - start) if start else now_m
        self.prev_m = now_m
        self.partial = ''
        self.head = []
        self.head_len = 0
        self.tail = collections.deque()
        self.tail_len = 0
        self.skipped = 0
        # threads already running when the task began (left over from
        # earlier tasks) print into nothing here, not into this task's output
        self.strays = frozenset(sys._current_frames()) - {threading.get_ident()}

    def entry(self, msg):
        if self.strays and threading.get_ident() in self.strays:
            return  # an earlier task's thread: dropped
        now, now_m = time.time(), time.monotonic()
        stamp = '[%s] [+%dms] [%dms] ' % (time.strftime('%m-%d %H:%M:%S', time.localtime(now)),
                                          int((now_m - self.prev_m) * 1000),
                                          int((now_m - self.start_m) * 1000))
        self.prev_m = now_m
        if len(msg) > LINE_LIMIT:
            msg = '%s... <Length: %d>' % (msg[:LINE_LIMIT], len(msg))
        line = stamp + msg + '\n'
        if self.head_len < TOTAL_HEAD:
            self.head.append(line)
            self.head_len += len(line)
            return
        self.tail.append(line)
        self.tail_len += len(line)
        while self.tail_len > TOTAL_TAIL and len(self.tail) > 1:
            dropped = self.tail.popleft()
            self.tail_len -= len(dropped)
            self.skipped += len(dropped)

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError('write() argument must be str, not %s' % type(s).__name__)
        if self.strays and threading.get_ident() in self.strays:
            return len(s)  # an earlier task's thread: dropped
        self.partial += s
        if '\n' in self.partial:
            *lines, self.partial = self.partial.split('\n')
            for line in lines:
                self.entry(line)
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

    def lines(self, masks=()):
        if self.partial:
            self.entry(self.partial)
            self.partial = ''
        parts = list(self.head)
        if self.skipped:
            parts.append('!!! Content too long, only FIRST %d chars and LAST %d are saved !!!\n'
                         '<skipped %d chars>\n' % (TOTAL_HEAD, TOTAL_TAIL, self.skipped))
        parts.extend(self.tail)
        out = ''.join(parts)
        for m in sorted((m for m in masks if m), key=len, reverse=True):
            out = out.replace(m, '*****')
        return out

    def getvalue(self, masks=()):
        out = self.lines(masks)
        b = out.encode('utf-8', 'replace')
        if len(b) > self.cap:
            out = b[:self.cap].decode('utf-8', 'ignore') + \
                '\n...[truncated %d bytes]' % (len(b) - self.cap)
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


def setup(conf):
    if not any(isinstance(f, _ScriptFinder) for f in sys.meta_path):
        sys.meta_path.append(_ScriptFinder())
    _cfg['default_timeout'] = int(conf.get('default_timeout', 30))
    _cfg['output_cap'] = int(conf.get('output_cap', 65536))
    tandem_dff._cfg.update(conf)
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


# json.dumps() with these options makes a new encoder on every call
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(',', ':'))


def _dumps(value):
    return _encoder.encode(value)


def _fail(reason, message, tb=None, output='', data=None):
    return ('failure', None, reason, message, tb, output,
            None if data is None else _dumps(data), 0, None)


def _run(task, fn_body, module=None):
    """Run fn_body() with output captured and the task's DFF state set;
    returns (value_or_exc, ok, output)."""
    cap = _Capture(_cfg['output_cap'], task.start_time)
    task.lines = cap
    old = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = cap
    tandem_dff._task = task
    try:
        v = fn_body()
        ok = True
    except BaseException as e:  # SystemExit and KeyboardInterrupt too: the child keeps serving
        v = e
        ok = False
    finally:
        sys.stdout, sys.stderr = old
        try:
            DFF.THREAD._reset()
        except Exception:
            pass
        tandem_dff._task = _IDLE
    return v, ok, cap.getvalue(task.masks)


# what DFF.* sees between tasks (one, not a new one after every task)
_IDLE = tandem_dff._task


def _chain_of(task_id, origin):
    """Call chain and root task of a subtask (DFF.FUNC stored them)."""
    if origin != 'subtask':
        return None, []
    try:
        raw = _tandem.redis('GET', '%sfchain:%s' % (tandem_dff._cfg['prefix'], task_id))
        link = json.loads(raw) if raw else {}
    except Exception:
        link = {}
    return link.get('root'), list(link.get('chain') or [])


def _bind(mod, fn, task):
    """DFF's per-run globals of the script: _DFF_* variables and print."""
    g = mod.__dict__
    g.update(task.variables())
    # DFF's print and print_var, unless the script defines its own
    for name, fn in (('print', tandem_dff._print), ('print_var', tandem_dff._print_var)):
        if g.get(name, fn) is fn:
            g[name] = fn


def _outcome(v, func_id, output, cache_result):
    """A function's return value as DFF answers it."""
    resp = None
    if isinstance(v, tandem_dff.BaseFuncResponse):
        resp = v.resp()
        v = v.data
    try:
        result = _dumps(tandem_dff.to_jsonable(v))
    except (TypeError, ValueError, OverflowError, RecursionError) as e:
        return _fail('EFuncResultParsingFailed', 'result of %s is not JSON-serialisable: %s'
                     % (func_id, _exc_msg(e)), None, output)
    return ('success', result, None, None, None, output, None, cache_result,
            None if resp is None else _dumps(resp))


def call(task_id, func_id, script_id, func_name, kwargs_json, raw, ver):
    """Runs a func; answers the outcome tuple plus what its task record
    needs and only the runtime knows (DFF's rootTaskId, callChain)."""
    task, res = _call(task_id, func_id, script_id, func_name, kwargs_json, raw, ver)
    root = task.root_task_id if task is not None and task.root_task_id != task_id else None
    chain = list(task.chain) if task is not None else []
    return res + (_dumps({'root': root, 'chain': chain}),)


def _call(task_id, func_id, script_id, func_name, kwargs_json, raw, ver):
    state = {'cache_result': 0}
    try:
        tj = json.loads(raw) if raw else {}
    except ValueError:
        tj = {}
    task = tandem_dff._Task(tj if isinstance(tj, dict) else {}, func_id, script_id)
    root, chain = _chain_of(task_id, task.origin)
    if root:
        task.root_task_id = root
    task.chain = chain + [func_id]
    if task.origin == 'cron' and not task.cron_expr and task.origin_id:
        # _DFF_CRON_EXPR: the job's expression (one query, cron tasks only)
        try:
            _, rows, _, _ = _tandem.sql('SELECT expr FROM cron_job WHERE id = ?',
                                        [task.origin_id])
            task.cron_expr = rows[0][0] if rows else None
        except Exception:
            pass

    def body():
        s = _load(script_id, ver)
        fn = s.funcs.get(func_name)
        if fn is None:
            raise _NotFound('func %s not found in script %s (version %d)'
                            % (func_name, script_id, s.ver))
        cr = fn.__tandem_api__.get('cache_result') or 0
        state['cache_result'] = int(math.ceil(cr)) if cr > 0 else 0
        if kwargs_json is None:  # the task's own (C passes None when raw holds them)
            kwargs = tj.get('kwargs') if isinstance(tj, dict) else None
            kwargs = kwargs if isinstance(kwargs, dict) else {}
        else:
            kwargs = json.loads(kwargs_json) if kwargs_json else {}
        _bind(s.module, fn, task)
        return fn(**kwargs)

    v, ok, output = _run(task, body)
    if not ok:
        if isinstance(v, _NotFound):
            return task, _fail('EFuncNotFound', str(v), None, output)
        if isinstance(v, _tandem.BackendError):
            return task, _fail('EBackend', 'cannot load script %s: %s' % (script_id, v), None,
                               output)
        if isinstance(v, SyntaxError) and v.filename == _filename(script_id):
            return task, _fail('EScriptSyntaxError',
                               'SyntaxError at line %s: %s' % (v.lineno, v.msg), _tb_text(v),
                               output, {'line': v.lineno})
        return task, _fail('EFuncFailed', _mask(_exc_msg(v), task), _mask(_tb_text(v), task),
                           output)
    return task, _outcome(v, func_id, output, state['cache_result'])


def _mask(text, task):
    for m in sorted((m for m in task.masks if m), key=len, reverse=True):
        text = text.replace(m, '*****')
    return text


def _inspect_funcs(mod):
    import inspect  # only publishing needs it; keeps idle children small
    funcs = []
    for name, fn in _api_funcs(mod).items():
        meta = dict(fn.__tandem_api__)
        given = dict(getattr(fn, '__tandem_options__', {}))
        line = getattr(getattr(fn, '__code__', None), 'co_firstlineno', None)
        title = meta.pop('title')
        timeout = meta.get('timeout')
        if timeout is None:
            timeout = _cfg['default_timeout']
        cr = meta.get('cache_result') or 0
        try:
            sig = inspect.signature(fn)
            args = [p.name for p in sig.parameters.values()
                    if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
            kwargs = {p.name: (None if p.default is p.empty else tandem_dff.to_jsonable(p.default))
                      for p in sig.parameters.values()
                      if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
            definition = '%s%s' % (name, sig)
        except (TypeError, ValueError):
            args, kwargs, definition = [], {}, name
        # extra: the options as the script gave them (aliases resolved), and
        # DFF's extraConfig spelling under "dff" for tools that expect it.
        extra = {}
        if given.get('api_timeout') is not None:
            # the calls side reads it for a Sync API's wait (server_call.c)
            extra['api_timeout'] = meta.get('timeout')
        for k, v in given.items():
            row = tandem_dff._OPT_BY_NAME.get(k)
            if row is None or v is None or row[0] in ('timeout', 'cache_result',
                                                      'fixed_cron_expr'):
                continue
            extra[row[0]] = meta.get(row[0], v)
        integ = meta.get('integration')
        iconf = meta.get('integration_config') or {}
        funcs.append({
            'name': name, 'title': title, 'timeout': timeout,
            # whole seconds for the result cache (DFF allows a float)
            'cache_result': int(math.ceil(cr)) if cr > 0 else 0,
            'fixed_cron_expr': meta.get('fixed_cron_expr'),
            'queue': meta.get('queue'),
            'expires': meta.get('expires'),
            'delayed_cron_job': meta.get('delayed_cron_job'),
            'integration': integ,
            # autoRun with a cronExpr: the publish path creates a job with
            # no kwargs (DFF's integration auto-run)
            'auto_run_cron_expr': iconf.get('cronExpr') if integ == 'autoRun' else None,
            'category': meta.get('category') or 'general',
            'tags': meta.get('tags') or [],
            'is_hidden': bool(meta.get('is_hidden')),
            'description': inspect.getdoc(fn) or '',
            'definition': definition,
            'args': args, 'kwargs': kwargs, 'extra': extra,
            'dff': {tandem_dff._OPT_BY_NAME[k][3]: v for k, v in meta.items()
                    if k in tandem_dff._OPT_BY_NAME},
        })
        try:
            _dumps(funcs[-1])
        except (TypeError, ValueError) as e:
            raise _Invalid('func %s: @DFF.API arguments must be JSON values: %s'
                           % (name, _exc_msg(e)), line)
    return funcs


class _Invalid(Exception):
    def __init__(self, msg, line):
        Exception.__init__(self, msg)
        self.line = line


def _compile(code, script_id):
    """(code object, None) or (None, failure tuple)."""
    filename = _filename(script_id)
    try:
        return compile(code, filename, 'exec', dont_inherit=True), None
    except SyntaxError as e:  # IndentationError, TabError included
        return None, _fail('EScriptSyntaxError', 'SyntaxError at line %s: %s' % (e.lineno, e.msg),
                           None, '', {'line': e.lineno, 'offset': e.offset})
    except ValueError as e:  # e.g. NUL bytes in the source
        return None, _fail('EScriptSyntaxError', 'SyntaxError at line 0: %s' % e, None, '',
                           {'line': 0})


def _exec_draft(co, code, script_id):
    filename = _filename(script_id)
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    mod = types.ModuleType(script_id)
    mod.__file__ = filename
    mod.DFF = DFF
    mod.print = tandem_dff._print
    mod.print_var = tandem_dff._print_var
    exec(co, mod.__dict__)
    return mod


_DEF = re.compile(r'^\s*(?:async\s+)?def\s+(\w+)')


def _decorated(code, line):
    """Name of the function the decorator at `line` decorates, or None."""
    lines = code.splitlines()
    for i in range(max(0, (line or 1) - 1), min(len(lines), (line or 1) + 50)):
        m = _DEF.match(lines[i])
        if m:
            return m.group(1)
    return None


def _load_failure(v, script_id, output, code=''):
    filename = _filename(script_id)
    if isinstance(v, tandem_dff.InvalidAPIOption):
        line = None
        tb = v.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == filename:
                line = tb.tb_lineno
            tb = tb.tb_next
        return _fail('EScriptSyntaxError', 'func %s (line %s): InvalidAPIOption: %s'
                     % (_decorated(code, line) or '?', line, v), None, output, {'line': line})
    if isinstance(v, _Invalid):
        return _fail('EScriptSyntaxError', str(v), None, output, {'line': v.line})
    line = None
    tb = v.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return _fail('EFuncFailed', 'script %s failed to load: %s' % (script_id, _exc_msg(v)),
                 _tb_text(v), output, {'line': line})


def inspect_code(task_id, code, script_id):
    if not isinstance(code, str):
        return _fail('EClientBadRequest', 'kwargs.code must be a string', None, '')
    co, bad = _compile(code, script_id)
    if bad:
        return bad
    task = tandem_dff._Task({'id': task_id, 'origin': 'system'}, '__sys.inspect', script_id)

    def body():
        return _inspect_funcs(_exec_draft(co, code, script_id))

    v, ok, output = _run(task, body)
    if not ok:
        return _load_failure(v, script_id, output, code)
    return ('success', _dumps({'funcs': v}), None, None, None, output, None, 0, None)


# ---- draft runs (DFF's debugger) ------------------------------------------------

def _debug_child(w, task_id, code, script_id, func_name, kwargs, limit):
    """In the throwaway fork: run the draft, write DFF's debugger result
    (JSON) to w. Never returns."""
    status = 'failure'
    try:
        _tandem.after_fork()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        # dies on its own even if the child that waits for it is killed first
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.alarm(limit + 2)
        func_id = '%s.%s' % (script_id, func_name) if func_name else ''
        task = tandem_dff._Task({'id': task_id, 'origin': 'debug', 'queue': 'debug'}, func_id,
                                script_id, debug=True)
        task.chain = [func_id] if func_id else []
        co, bad = _compile(code, script_id)
        state = {'resp': None, 'funcs': [], 'value': None}

        def body():
            mod = _exec_draft(co, code, script_id)
            mod.__dict__.update(task.variables())
            state['funcs'] = _inspect_funcs(mod)
            if not func_name:
                return None
            fn = mod.__dict__.get(func_name)
            if fn is None or not callable(fn):
                raise NameError('func %s not found in the draft of %s' % (func_name, script_id))
            return fn(**(kwargs or {}))

        if bad:
            exc = bad[3]
            res = {'status': 'failure', 'exception': exc, 'exceptionType': 'SyntaxError',
                   'traceback': None, 'printLogs': [], 'returnValue': None,
                   'responseControl': None, 'apiFuncs': [], 'cost': 0}
        else:
            t0 = time.monotonic()
            v, ok, output = _run(task, body)
            res = {'printLogs': output.splitlines(), 'apiFuncs': state['funcs'],
                   'cost': round(time.monotonic() - t0, 3)}
            if ok:
                import pprint
                resp = None
                if isinstance(v, tandem_dff.BaseFuncResponse):
                    resp = v.resp()
                    v = v.data
                res.update({'status': 'success', 'returnValue':
                            pprint.saferepr(v) if func_name else None,
                            'result': tandem_dff.to_jsonable(v),
                            'responseControl': resp, 'exception': None, 'exceptionType': None,
                            'traceback': None})
            else:
                res.update({'status': 'failure', 'returnValue': None, 'responseControl': None,
                            'exception': _mask(_exc_msg(v), task),
                            'exceptionType': type(v).__name__,
                            'traceback': _mask(_tb_text(v), task)})
        data = _dumps(res).encode('utf-8')
        while data:
            n = os.write(w, data)
            data = data[n:]
        status = 'success'
    finally:
        os._exit(0 if status == 'success' else 1)


def debug_code(task_id, kw, timeout):
    """__sys.debug {code, script_id, func_name, kwargs}: DFF's debugger. The
    draft runs in a fork that is thrown away, never in this interpreter;
    the answer is DFF's debugger result (a success even when the function
    failed: its status is in the result)."""
    code, script_id = kw.get('code'), kw.get('script_id') or 'draft__script'
    func_name, kwargs = kw.get('func_name') or '', kw.get('kwargs') or {}
    if not isinstance(code, str):
        return _fail('EClientBadRequest', '__sys.debug: kwargs.code must be a string')
    if not isinstance(kwargs, dict) or not isinstance(func_name, str):
        return _fail('EClientBadRequest', '__sys.debug: func_name must be a string and kwargs '
                     'an object')
    limit = min(DEBUG_TIMEOUT, max(1, int(timeout or DEBUG_TIMEOUT) - 2))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _debug_child(w, task_id, code, script_id, func_name, kwargs, limit)
    os.close(w)
    chunks, deadline, timed_out = [], time.monotonic() + limit, False
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            ready, _, _ = select.select([r], [], [], left)
            if not ready:
                continue
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
        if timed_out:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _, st = os.waitpid(pid, 0)
    if timed_out:
        res = {'status': 'timeout', 'exception': 'EFuncTimeout: the draft run took longer than '
               '%d s' % limit, 'exceptionType': 'TaskTimeout', 'traceback': None,
               'printLogs': [], 'returnValue': None, 'responseControl': None, 'apiFuncs': [],
               'cost': limit}
        return ('success', _dumps(res), None, None, None, '', None, 0, None)
    try:
        res = json.loads(b''.join(chunks).decode('utf-8'))
    except ValueError:
        why = ('killed by signal %d' % os.WTERMSIG(st)) if os.WIFSIGNALED(st) else \
            ('exited with status %d' % os.WEXITSTATUS(st))
        res = {'status': 'failure', 'exception': 'EWorkerCrashed: the draft run %s' % why,
               'exceptionType': 'WorkerCrashed', 'traceback': None, 'printLogs': [],
               'returnValue': None, 'responseControl': None, 'apiFuncs': [], 'cost': None}
    return ('success', _dumps(res), None, None, None, '\n'.join(res.get('printLogs') or []),
            None, 0, None)


def connector_test(task_id, kw, timeout):
    """__sys.connector_test {type, config} or {id}: connects and answers
    {"ok": bool, "message": what failed}."""
    import tandem_conn
    ctype, config = kw.get('type'), kw.get('config')
    if kw.get('id'):
        try:
            _, rows, _, _ = _tandem.sql('SELECT type, config_json FROM connector WHERE id = ?',
                                        [kw['id']])
        except _tandem.BackendError as e:
            return _fail('EBackend', 'loading connector %s: %s' % (kw['id'], e))
        if not rows:
            return _fail('EFuncNotFound', 'connector %s not found' % kw['id'])
        ctype, config = rows[0][0], json.loads(rows[0][1] or '{}')
    if not isinstance(ctype, str) or not isinstance(config, dict):
        return _fail('EClientBadRequest', '__sys.connector_test: type must be a string and '
                     'config an object')
    try:
        config = tandem_conn.open_secrets(config, _tandem.secret_open)
        why = tandem_conn.check(ctype, config)
    except Exception as e:
        why = _exc_msg(e)
    return ('success', _dumps({'ok': why is None, 'message': why or 'connected'}), None, None,
            None, '', None, 0, None)


def _sys_inspect(task_id, kw, timeout):
    return inspect_code(task_id, kw.get('code'), kw.get('script_id') or 'script')


# system task name -> handler(task_id, kwargs, timeout)
SYSTEM = {
    '__sys.inspect': _sys_inspect,
    '__sys.debug': debug_code,
    '__sys.connector_test': connector_test,
}


def system(task_id, name, kwargs_json, timeout):
    h = SYSTEM.get(name)
    if h is None:
        return _fail('EFuncNotFound', 'no system task %s (known: %s)'
                     % (name, ', '.join(sorted(SYSTEM))))
    try:
        kw = json.loads(kwargs_json) if kwargs_json else {}
    except ValueError as e:
        return _fail('EClientBadRequest', '%s: kwargs: %s' % (name, e))
    if not isinstance(kw, dict):
        return _fail('EClientBadRequest', '%s: kwargs must be an object' % name)
    return h(task_id, kw, timeout)
