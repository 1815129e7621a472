"""Integration-test harness: a real single-node Tandem stack per test module.

Stack() runs `appliance/local up` in a fresh temp dir (real redis-server and
mariadbd on unix sockets, tandem-server on a loopback port, tandem-worker,
tandem-beat when built) and `down` at the end -- also when the test fails,
the process exits, or ctest sends SIGTERM.

    from harness import Stack
    st = Stack().up()
    status, body = st.http("GET", "/api/v1/do/ping")
    r = st.ctl("func", "list", "--json")

Environment: TANDEM_BUILD (build dir, default <src>/build), TANDEM_SRC
(checkout, default: two levels above this file), TANDEM_TEST_PORTS
("18100-18199": pick free ports from this range; default: any free port),
TANDEM_KEEP=1 keeps the stack dir after tear-down for post-mortems.
Only the standard library: this runs on Debian's /usr/bin/python3.
"""

import atexit
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

SRC = os.path.abspath(os.environ.get("TANDEM_SRC") or os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("TANDEM_BUILD") or os.path.join(SRC, "build"))
BIN = os.path.join(BUILD, "bin")
LOCAL = os.path.join(SRC, "appliance", "local")

ADMIN = object()  # http(key=ADMIN): use the stack's admin key

_live = []  # stacks to stop at exit


def _stop_all_live():
    for st in list(_live):
        try:
            st.down()
        except Exception as e:  # keep stopping the others
            print(f"harness: tearing down {st.dir}: {e}", file=sys.stderr)


atexit.register(_stop_all_live)


def _on_term(signum, frame):
    # ctest's timeout sends SIGTERM; turn it into an exit so atexit runs.
    raise SystemExit(128 + signum)


if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, _on_term)


def port_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_handed_out = set()


def free_port():
    """A free loopback port, from TANDEM_TEST_PORTS if set."""
    rng = os.environ.get("TANDEM_TEST_PORTS", "")
    if rng:
        lo, _, hi = rng.partition("-")
        lo, hi = int(lo), int(hi or lo)
        for p in range(lo, hi + 1):
            if p not in _handed_out and port_free(p):
                _handed_out.add(p)
                return p
        raise RuntimeError(f"no free port in TANDEM_TEST_PORTS={rng}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn, timeout=10.0, interval=0.1, what="condition"):
    """Poll fn() until it returns a truthy value; return it, or raise."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # keep polling; report the last error
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


class Stack:
    def __init__(self, port=None, workers=2, name="it", keep=None, conf_extra=""):
        self.port = port or free_port()
        self.conf_extra = conf_extra  # libconfig text appended to tandem.conf
        self.workers = workers
        self.keep = bool(os.environ.get("TANDEM_KEEP")) if keep is None else keep
        # short paths: unix socket names must fit in 108 bytes
        self.dir = tempfile.mkdtemp(prefix=f"tandem-{name}-", dir="/tmp")
        self.conf = os.path.join(self.dir, "tandem.conf")
        self.url = f"http://127.0.0.1:{self.port}"
        self.key = None
        self.running = False
        self.up_output = ""

    # -- lifecycle ---------------------------------------------------------
    def up(self, timeout=180):
        _live.append(self)
        env = dict(os.environ, TANDEM_BUILD=BUILD)
        if self.conf_extra:
            env["TANDEM_CONF_EXTRA"] = self.conf_extra
        try:
            p = subprocess.run(
                [LOCAL, "up", "--dir", self.dir, "--http-port", str(self.port), "--workers", str(self.workers)],
                capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as e:
            self.down()
            raise RuntimeError(f"appliance/local up timed out after {timeout}s in {self.dir}: {e.stderr}")
        self.up_output = p.stdout + p.stderr
        if p.returncode != 0:
            self.down()
            raise RuntimeError(f"appliance/local up failed (exit {p.returncode}) in {self.dir}:\n{self.up_output}")
        vals = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
        self.url = vals.get("URL", self.url)
        self.key = vals.get("KEY")
        if not self.key:
            self.down()
            raise RuntimeError(f"appliance/local up printed no KEY=:\n{self.up_output}")
        self.running = True
        return self

    def down(self):
        """Stop what up started; remove the dir unless keep. Safe to call twice."""
        out = ""
        if os.path.isdir(self.dir):
            p = subprocess.run([LOCAL, "down", "--dir", self.dir], capture_output=True, text=True, timeout=120)
            out = p.stdout + p.stderr
            if p.returncode != 0:
                print(f"harness: down {self.dir} exited {p.returncode}:\n{out}", file=sys.stderr)
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)
            else:
                print(f"harness: kept {self.dir}", file=sys.stderr)
        self.running = False
        if self in _live:
            _live.remove(self)
        return out

    def __enter__(self):
        return self.up() if not self.running else self

    def __exit__(self, *exc):
        self.down()
        return False

    def pids(self):
        """{name: pid} recorded in DIR/pids (redis, mariadb, worker, server, beat)."""
        res = {}
        d = os.path.join(self.dir, "pids")
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if f.endswith(".pid"):
                with open(os.path.join(d, f)) as fh:
                    res[f[:-4].split("-", 1)[1]] = int(fh.read().strip())
        return res

    def log(self, name):
        """Text of DIR/log/<name>.log (server, worker, beat, redis, mariadb, ctl)."""
        try:
            with open(os.path.join(self.dir, "log", name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- talking to it -----------------------------------------------------
    def http(self, method, path, body=None, key=ADMIN, raw=False, headers=None, timeout=60):
        """One request. body: dict/list (sent as JSON), str or bytes. key:
        ADMIN (default), None (no Authorization) or a secret. Returns
        (status, parsed JSON) or (status, bytes) when raw or not JSON."""
        u = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        h = {"Accept": "application/json"}
        if key is ADMIN:
            key = self.key
        if key:
            h["Authorization"] = f"Bearer {key}"
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h["Content-Type"] = "application/json"
        if isinstance(body, str):
            body = body.encode()
        h.update(headers or {})
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            status = r.status
        finally:
            conn.close()
        if raw:
            return status, data
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data

    def api(self, method, path, body=None, key=ADMIN, expect=200, timeout=60):
        """http() that insists on `expect` and returns the envelope's data."""
        status, r = self.http(method, path, body, key=key, timeout=timeout)
        if status != expect:
            raise AssertionError(f"{method} {path}: expected HTTP {expect}, got {status}: {r!r}")
        return r.get("data") if isinstance(r, dict) and "ok" in r else r

    def ctl(self, *args, conf=True, env=None, input=None, timeout=120):
        """Run build/bin/tandemctl [-c CONF] ARGS; returns CompletedProcess
        (text). $TANDEM_URL/$TANDEM_KEY are cleared unless given in env."""
        e = {k: v for k, v in os.environ.items() if k not in ("TANDEM_URL", "TANDEM_KEY", "TANDEM_CONFIG")}
        e.update(env or {})
        cmd = [os.path.join(BIN, "tandemctl")] + (["-c", self.conf] if conf else []) + [str(a) for a in args]
        return subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=timeout, env=e)

    def ctl_json(self, *args, **kw):
        """tandemctl --json ARGS; returns (exit code, parsed stdout)."""
        p = self.ctl("--json", *args, **kw)
        try:
            return p.returncode, json.loads(p.stdout)
        except ValueError:
            raise AssertionError(f"tandemctl --json {args} printed no JSON (exit {p.returncode}):\n"
                                 f"stdout: {p.stdout!r}\nstderr: {p.stderr!r}")

    def metric(self, name):
        """The value of one unlabelled /metrics line (float); fails the test
        when the server does not export it."""
        status, body = self.http("GET", "/metrics", raw=True)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"/metrics has no {name}")

    def redis(self, *args):
        """One redis-cli command on the stack's Redis; returns stdout text (stripped)."""
        p = subprocess.run(["redis-cli", "-s", os.path.join(self.dir, "redis.sock"), *map(str, args)],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError(f"redis-cli {args}: {p.stderr}")
        return p.stdout.strip()

    def sql(self, query, database="tandem"):
        """Run SQL as the local superuser; returns rows as lists of strings
        (NULL -> None)."""
        p = subprocess.run(["mariadb", "--no-defaults", "-S", os.path.join(self.dir, "mysql.sock"),
                            "-u", _os_user(), "-N", "-B", database, "-e", query],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError(f"SQL failed: {query}\n{p.stderr}")
        return [[None if c == "NULL" else c for c in line.split("\t")] for line in p.stdout.splitlines()]

    # -- deploying functions -----------------------------------------------
    def push_script(self, script_id, code, publish=True, title=""):
        """Save the draft and (by default) publish it, in DFF's shapes: the
        script set is added unless it exists, the script modified, or added
        when there is none. Returns publish's data ({publish_version, funcs}).
        Raises with the server's answer if refused."""
        set_id = script_id.split("__", 1)[0]
        status, r = self.http("POST", "/api/v1/script-sets/do/add", {"data": {"id": set_id}})
        if status not in (200, 409):
            raise AssertionError(f"adding script set {set_id}: HTTP {status}: {r!r}")
        draft = {"codeDraft": code, "title": title}
        status, r = self.http("POST", f"/api/v1/scripts/{script_id}/do/modify", {"data": draft})
        if status == 404:
            self.api("POST", "/api/v1/scripts/do/add", {"data": dict(draft, id=script_id)})
        elif status != 200:
            raise AssertionError(f"saving script {script_id}: HTTP {status}: {r!r}")
        if not publish:
            return None
        return self.api("POST", f"/api/v1/scripts/{script_id}/do/publish", timeout=90)

    def create_sync_api(self, func_id, kwargs=None, need_key=False, title=""):
        """POST /api/v1/sync-apis/do/add; returns the new id (sapi-...)."""
        return self._add_api("sync-apis", func_id, kwargs, need_key, title)

    def create_async_api(self, func_id, kwargs=None, need_key=False, title=""):
        """POST /api/v1/async-apis/do/add; returns the new id (aapi-...)."""
        return self._add_api("async-apis", func_id, kwargs, need_key, title)

    def _add_api(self, kind, func_id, kwargs, need_key, title):
        d = self.api("POST", f"/api/v1/{kind}/do/add",
                     {"data": {"funcId": func_id, "funcCallKwargsJSON": kwargs or {},
                               "needKey": need_key, "title": title}})
        return d["id"]

    # -- cron jobs (DFF's cron-jobs shapes, with Tandem's overlap and
    #    misfireGrace; "state" is the beat's view of the job) ---------------
    def add_cron_job(self, func_id, expr, **data):
        """POST /api/v1/cron-jobs/do/add; more DFF fields as keywords
        (funcCallKwargsJSON, timezone, isDisabled, overlap, misfireGrace,
        expireTime, title). Returns the new id (cron-...)."""
        snake = [k for k in data if "_" in k]
        if snake:  # the server ignores unknown fields: a typo would pass unseen
            raise ValueError(f"add_cron_job: DFF's field names are camelCase, got {snake}")
        return self.api("POST", "/api/v1/cron-jobs/do/add",
                        {"data": dict(data, funcId=func_id, cronExpr=expr)})["id"]

    def cron_job(self, job_id):
        """GET /api/v1/cron-jobs/<id>/do/get: the job, with its "state"."""
        return self.api("GET", f"/api/v1/cron-jobs/{job_id}/do/get")

    def cron_jobs(self, func_id=None):
        """The cron jobs (of one func), each with its "state"."""
        q = f"?funcId={func_id}" if func_id else ""
        return self.api("GET", f"/api/v1/cron-jobs/do/list{q}")

    def modify_cron_job(self, job_id, **data):
        snake = [k for k in data if "_" in k]
        if snake:
            raise ValueError(f"modify_cron_job: DFF's field names are camelCase, got {snake}")
        return self.api("POST", f"/api/v1/cron-jobs/{job_id}/do/modify", {"data": data})

    def set_cron_enabled(self, job_id, enabled):
        return self.modify_cron_job(job_id, isDisabled=not enabled)

    def delete_cron_job(self, job_id):
        """Deletes it; an unknown id is fine (cleanup paths)."""
        return self.http("GET", f"/api/v1/cron-jobs/{job_id}/do/delete")

    def deploy(self, script_id, code, func):
        """Push + publish `code` as script_id and create a sync API for
        <script_id>.<func>; returns the sapi id."""
        self.push_script(script_id, code)
        return self.create_sync_api(f"{script_id}.{func}")

    def wait_task(self, task_id, timeout=30, done=("success", "failure", "timeout", "crashed", "expired",
                                                   "skipped", "missed")):
        """Poll GET /api/v1/tasks/<id> until its status is final; returns the task."""
        def check():
            status, r = self.http("GET", f"/api/v1/tasks/{task_id}")
            if status == 200 and isinstance(r, dict) and (r.get("data") or {}).get("status") in done:
                return r["data"]
            return None
        return wait_for(check, timeout, 0.1, f"task {task_id} to finish")


def commandstats(info):
    """{command: calls} from the text of INFO commandstats (str or bytes)."""
    if isinstance(info, bytes):
        info = info.decode()
    out = {}
    for line in info.splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            fields = dict(kv.split("=", 1) for kv in rest.split(","))
            out[name] = int(fields["calls"])
    return out


class Monitor:
    """MONITOR on the Redis at unix socket `sock` while in a `with` block:
    counts the commands clients sent (self.client) and those scripts ran
    (self.lua), by lower-case command name, and keeps the raw lines for
    which keep(line) is true (self.kept)."""

    def __init__(self, sock, keep=None):
        self.path, self.keep, self.kept = sock, keep, []

    def __enter__(self):
        self.client, self.lua = {}, {}
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
        self.sock.sendall(b"MONITOR\r\n")
        self.buf = b""
        while b"\r\n" not in self.buf:  # +OK: monitoring from here on
            self.buf += self.sock.recv(4096)
        self.buf = self.buf.split(b"\r\n", 1)[1]
        self.stop = False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        return self

    def _read(self):
        self.sock.settimeout(0.2)
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                self._count(line.decode("utf-8", "replace"))
            if self.stop:
                return
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            self.buf += chunk

    def _count(self, line):
        # +1700000000.123456 [0 unix:/tmp/x/redis.sock] "XADD" "k" ...
        # +1700000000.123456 [0 lua] "SET" "k" ...
        if self.keep and self.keep(line):
            self.kept.append(line)
        try:
            where, rest = line.split("] ", 1)
            name = rest.split('"', 2)[1].lower()
        except (ValueError, IndexError):
            return
        d = self.lua if where.endswith(" lua") else self.client
        d[name] = d.get(name, 0) + 1

    def __exit__(self, *exc):
        time.sleep(0.3)  # what Redis already sent us
        self.stop = True
        self.t.join(5)
        self.sock.close()
        for d in (self.client, self.lua):
            for k in ("info", "config", "monitor"):
                d.pop(k, None)

    def per_call(self, n):
        c = {k: v / n for k, v in self.client.items()}
        return c, sum(c.values()), sum(self.lua.values()) / n


def _os_user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


def have_binaries(*names):
    """True when build/bin has every named binary (tests skip otherwise)."""
    return all(os.access(os.path.join(BIN, n), os.X_OK) for n in names)
