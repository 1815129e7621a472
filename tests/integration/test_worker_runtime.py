"""tandem-worker against real redis-server and mariadbd, without the server:
tasks go straight onto the streams (XADD), outcomes are read back from the
reply list, Ptask:<id> and task_record. Each test names the promise it checks.

Backends live in one temp dir per module (/tmp/tandem-worker-it-*): redis on a
unix socket, mariadbd with --skip-networking, the schema from
migrations/001_init.sql. Workers are started and stopped by the tests, by pid.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from harness import SRC, BIN, wait_for  # noqa: E402

WORKER = os.path.join(BIN, "tandem-worker")


def _user():
    import pwd
    return pwd.getpwuid(os.getuid()).pw_name


class Backend:
    """redis-server + mariadbd in a temp dir, schema applied."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-worker-it-", dir="/tmp")
        self.rsock = os.path.join(self.dir, "redis.sock")
        self.msock = os.path.join(self.dir, "mysql.sock")
        self.procs = []
        self.workers = []

    def start(self):
        try:
            self.start_redis()
            self._start_mariadb()
        except BaseException:
            self.stop()  # what did start must not outlive a failed setUp
            raise
        return self

    def start_redis(self):
        log = open(os.path.join(self.dir, "redis.log"), "a")
        self.redis_p = subprocess.Popen(
            ["redis-server", "--port", "0", "--unixsocket", self.rsock, "--unixsocketperm", "700",
             "--dir", self.dir, "--save", "", "--appendonly", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append(self.redis_p)
        wait_for(lambda: self.redis("PING") == "PONG", 20, what="redis")

    def stop_redis(self):
        self.redis_p.terminate()
        self.redis_p.wait(20)
        self.procs.remove(self.redis_p)

    def stop_mariadb(self):
        self.maria_p.terminate()
        self.maria_p.wait(60)
        self.procs.remove(self.maria_p)

    def _start_mariadb(self, init=True):
        datadir = os.path.join(self.dir, "mysql")
        asuser = ["--user=root"] if os.getuid() == 0 else []
        if init:
            p = subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + datadir,
                                *asuser, "--skip-test-db",
                                "--auth-root-authentication-method=socket"],
                               capture_output=True, text=True, timeout=300)
            if p.returncode != 0:
                raise AssertionError("mariadb-install-db failed (exit %d):\n%s%s"
                                     % (p.returncode, p.stdout[-2000:], p.stderr[-2000:]))
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        mlog = os.path.join(self.dir, "mariadb.log")
        self.maria_p = subprocess.Popen(
            ["mariadbd", "--no-defaults", "--datadir=" + datadir, "--socket=" + self.msock,
             "--skip-networking", "--pid-file=" + os.path.join(self.dir, "mysql.pid"),
             "--tmpdir=" + os.path.join(self.dir, "tmp"), *asuser,
             "--innodb-buffer-pool-size=32M", "--performance-schema=OFF", "--skip-log-bin",
             "--character-set-server=utf8mb4", "--collation-server=utf8mb4_bin",
             "--log-error=" + mlog],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(self.maria_p)
        wait_for(lambda: self._sql_ok("SELECT 1", db="mysql"), 60, what="mariadb")
        if not init:
            return
        self.sql("CREATE DATABASE IF NOT EXISTS tandem CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
                 "CREATE USER IF NOT EXISTS 'tandem'@'localhost' IDENTIFIED BY 'pw'; "
                 "GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'localhost';", db="mysql")
        with open(os.path.join(SRC, "migrations", "001_init.sql")) as f:
            self.sql(f.read())

    def stop(self):
        for w in list(self.workers):
            self.kill_worker(w, signal.SIGKILL)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if os.environ.get("TANDEM_KEEP"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- clients ------------------------------------------------------------
    def redis(self, *args):
        p = subprocess.run(["redis-cli", "-s", self.rsock, *map(str, args)], capture_output=True,
                           text=True, timeout=30)
        return p.stdout.strip()

    def redis_raw(self, *args):
        """redis-cli output lines (no trimming of structure)."""
        p = subprocess.run(["redis-cli", "-s", self.rsock, *map(str, args)], capture_output=True,
                           text=True, timeout=30)
        return p.stdout.splitlines()

    def _sql_ok(self, q, db="tandem"):
        p = subprocess.run(["mariadb", "--no-defaults", "-S", self.msock, "-u", _user(), db,
                            "-e", q], capture_output=True, text=True, timeout=30)
        return p.returncode == 0

    def sql(self, q, db="tandem"):
        p = subprocess.run(["mariadb", "--no-defaults", "-S", self.msock, "-u", _user(), "-N",
                            "-B", db], input=q, capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("SQL failed: %s\n%s" % (q[:300], p.stderr))
        return [[None if c == "NULL" else c for c in line.split("\t")]
                for line in p.stdout.splitlines()]

    # -- config and workers -------------------------------------------------
    def conf(self, name="w", node="node-t", children=2, memory_mb=512, output_cap=65536,
             flush_ms=100, prefix="tandem:"):
        path = os.path.join(self.dir, name + ".conf")
        with open(path, "w") as f:
            f.write(f"""
node = {{ name = "{node}"; }};
log = {{ level = "info"; }};
redis = {{ port = 0; socket = "{self.rsock}"; prefix = "{prefix}"; }};
mysql = {{ socket = "{self.msock}"; user = "tandem"; password = "pw"; database = "tandem"; }};
paths = {{ migrations = "{SRC}/migrations"; python = "{SRC}/src/python"; run = "{self.dir}"; }};
worker = {{ children = {children}; memory_limit_mb = {memory_mb}; output_cap = {output_cap};
           record_flush_ms = {flush_ms}; }};
failover = {{ drain_grace = 5; }};
""")
        return path

    def start_worker(self, conf, name="w"):
        log = open(os.path.join(self.dir, name + ".log"), "a")
        p = subprocess.Popen([WORKER, "-c", conf], stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.workers.append(p)
        # ready = its heartbeat lists all children as ready
        def ready():
            hb = self.redis("GET", "tandem:hb:worker:%s:%d" % (self.node_of(conf), p.pid))
            return hb and json.loads(hb)["children"] >= 1
        wait_for(ready, 30, what="worker heartbeat")
        return p

    @staticmethod
    def node_of(conf):
        with open(conf) as f:
            for line in f:
                if line.startswith("node"):
                    return line.split('"')[1]
        return ""

    def children_of(self, p):
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p.pid)], capture_output=True,
                             text=True).stdout
        return [int(x) for x in out.split()]

    def kill_worker(self, p, sig=signal.SIGTERM, wait=30):
        if p.poll() is None:
            if sig == signal.SIGKILL:
                # the whole process group: master, children and keeper at once
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                p.send_signal(sig)
            p.wait(wait)
        if p in self.workers:
            self.workers.remove(p)

    def log(self, name="w"):
        try:
            with open(os.path.join(self.dir, name + ".log"), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    # -- scripts and tasks --------------------------------------------------
    def publish(self, script_id, code, ver=None, funcs=()):
        """Write a published script row the way the server's publish does."""
        set_id = script_id.split("__")[0]
        q = lambda s: "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"  # noqa: E731
        self.sql(f"INSERT IGNORE INTO script_set (id) VALUES ({q(set_id)});")
        if ver is None:
            rows = self.sql(f"SELECT publish_version FROM script WHERE id={q(script_id)}")
            ver = (int(rows[0][0]) + 1) if rows else 1
        self.sql(f"INSERT INTO script (id, script_set_id, code, code_draft, publish_version, "
                 f"published_at) VALUES ({q(script_id)}, {q(set_id)}, {q(code)}, {q(code)}, {ver}, "
                 f"NOW(3)) ON DUPLICATE KEY UPDATE code=VALUES(code), "
                 f"publish_version=VALUES(publish_version)")
        self.redis("INCR", "tandem:gen")
        return ver

    def enqueue(self, func, kwargs=None, queue="sync", timeout=10, ver=0, reply=None,
                origin=None, origin_id="", expires=0, tid=None):
        tid = tid or "task-" + uuid.uuid4().hex[:24]
        if reply is None and queue == "sync":
            reply = "it-" + uuid.uuid4().hex[:8]
        t = {"id": tid, "func": func, "kwargs": kwargs or {},
             "origin": origin or ("sync-api" if queue == "sync" else "async-api"),
             "origin_id": origin_id, "timeout": timeout, "reply": reply or "", "queue": queue,
             "enq": int(time.time() * 1000), "expires": expires, "epoch": 0, "ver": ver,
             "nominal": 0}
        self.redis("XGROUP", "CREATE", "tandem:q:" + queue, "workers", "0", "MKSTREAM")
        self.redis("XADD", "tandem:q:" + queue, "*", "t", json.dumps(t))
        return tid, reply

    def reply(self, reply, timeout=30):
        out = subprocess.run(["redis-cli", "-s", self.rsock, "BRPOP", "tandem:reply:" + reply,
                              str(timeout)], capture_output=True, text=True,
                             timeout=timeout + 10).stdout.splitlines()
        if len(out) < 2:
            raise AssertionError("no reply on %s within %ss" % (reply, timeout))
        return json.loads("\n".join(out[1:]))

    def call(self, func, kwargs=None, timeout=10, wait=30, **kw):
        tid, reply = self.enqueue(func, kwargs, timeout=timeout, **kw)
        o = self.reply(reply, wait)
        assert o["id"] == tid, o
        return o

    def task(self, tid, timeout=30, final=("success", "failure", "timeout", "crashed", "expired")):
        def done():
            s = self.redis("GET", "tandem:task:" + tid)
            return json.loads(s) if s and json.loads(s).get("status") in final else None
        return wait_for(done, timeout, what="task " + tid)

    def record(self, tid, timeout=15):
        def get():
            rows = self.sql("SELECT status, reason, message, traceback, output, origin, node, "
                            f"cost_ms FROM task_record WHERE id='{tid}'")
            return rows[0] if rows else None
        r = wait_for(get, timeout, what="task_record of " + tid)
        return dict(zip(("status", "reason", "message", "traceback", "output", "origin", "node",
                         "cost_ms"), r))


SCRIPT = r'''
import logging, os, time, ctypes

@DFF.API('Add', timeout=5)
def add(x, y=1):
    import sys
    sys.stdout.buffer.write(b'bytes too\n')
    print('adding', x, y)
    logging.warning('careful')
    return {'sum': x + y}

@DFF.API('Boom')
def boom():
    return 1 / 0

@DFF.API('Not JSON')
def notjson():
    return {1, 2}

@DFF.API('Hang', timeout=2)
def hang():
    while True:
        time.sleep(0.1)

@DFF.API('Exit')
def die():
    os._exit(7)

@DFF.API('Segfault')
def segv():
    ctypes.string_at(0)

@DFF.API('Memory hog')
def hog(mb=400):
    chunks = []
    for _ in range(mb):
        chunks.append(bytearray(1024 * 1024))
        time.sleep(0.002)
    return len(chunks)

@DFF.API('Huge allocation')
def huge():
    return len(bytearray(8 * 1024 ** 3))

@DFF.API('Flood')
def flood():
    for i in range(200000):
        print('line %d of a flood' % i)
    return 'flooded'

@DFF.API('Env')
def env(name):
    return DFF.ENV(name)

@DFF.API('Cache')
def cache(key, value=None, delete=False):
    # keys are per script (DFF's default scope): <prefix>cache:<script_id>:<key>
    if delete:
        return DFF.CACHE.delete(key)
    if value is not None:
        DFF.CACHE.set(key, value, expires=60)
    return DFF.CACHE.get(key)

@DFF.API('Spawn')
def spawn(x):
    return DFF.FUNC('demo__t.add', kwargs={'x': x, 'y': 100})

@DFF.API('Slow', timeout=30)
def slow(s=3):
    time.sleep(s)
    return 'slept'

@DFF.API('Cached', cache_result=60)
def cached(x):
    import DFF as D
    return D.ENV('nope', 'dflt') + str(x)

@DFF.API('Pid')
def pid():
    return os.getpid()

def helper():
    return 'not an API'
'''


class WorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(WORKER, os.X_OK):
            raise unittest.SkipTest("tandem-worker not built")
        cls.b = Backend().start()
        cls.b.publish("demo__t", SCRIPT)
        cls.conf = cls.b.conf(children=2, memory_mb=128, output_cap=4096)
        cls.w = cls.b.start_worker(cls.conf)

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def assert_serves(self):
        o = self.b.call("demo__t.add", {"x": 1, "y": 2})
        self.assertEqual(o["status"], "success", o)
        self.assertEqual(o["result"], {"sum": 3})

    # ---- success and the record
    def test_success_with_json_kwargs_is_replied_stored_and_recorded(self):
        o = self.b.call("demo__t.add", {"x": 40, "y": 2})
        self.assertEqual(o["status"], "success", o)
        self.assertEqual(o["result"], {"sum": 42})
        self.assertIn("adding 40 2", o.get("output", ""))
        self.assertIn("bytes too", o.get("output", ""))
        self.assertIn("[WARNING] careful", o.get("output", ""))
        self.assertEqual(self.b.task(o["id"])["status"], "success")
        rec = self.b.record(o["id"])
        self.assertEqual(rec["status"], "success")
        self.assertEqual(rec["origin"], "sync-api")
        self.assertEqual(rec["node"], "node-t")
        self.assertIn("adding 40 2", rec["output"])
        # acked and deleted from the stream
        wait_for(lambda: self.b.redis("XLEN", "tandem:q:sync") == "0", 5, what="stream empty")
        self.assertIn("tasks", self.b.redis("HGETALL", "tandem:stats:worker"))

    def test_exception_is_EFuncFailed_with_traceback_in_record(self):
        o = self.b.call("demo__t.boom")
        self.assertEqual(o["status"], "failure")
        self.assertEqual(o["reason"], "EFuncFailed")
        self.assertEqual(o["message"], "ZeroDivisionError: division by zero")
        self.assertIn("Traceback (most recent call last)", o["traceback"])
        self.assertIn("return 1 / 0", o["traceback"])  # the script's own source line
        rec = self.b.record(o["id"])
        self.assertEqual(rec["reason"], "EFuncFailed")
        self.assertIn("ZeroDivisionError", rec["traceback"])

    def test_non_serialisable_result_is_EFuncResultParsingFailed(self):
        o = self.b.call("demo__t.notjson")
        self.assertEqual((o["status"], o["reason"]), ("failure", "EFuncResultParsingFailed"), o)
        self.assertIn("set", o["message"])

    def test_unknown_func_and_undecorated_func_are_EFuncNotFound(self):
        for f in ("demo__t.nope", "demo__t.helper", "demo__missing.f", "bad-id"):
            o = self.b.call(f)
            self.assertEqual((o["status"], o["reason"]), ("failure", "EFuncNotFound"), (f, o))
        self.assert_serves()

    def test_bad_kwargs_type_error_is_a_failure_not_a_crash(self):
        o = self.b.call("demo__t.add", {"nope": 1})
        self.assertEqual(o["reason"], "EFuncFailed")
        self.assertIn("TypeError", o["message"])

    def test_expired_task_is_not_run(self):
        o = self.b.call("demo__t.add", {"x": 1}, expires=int(time.time() * 1000) - 1000)
        self.assertEqual((o["status"], o["reason"]), ("expired", "ETaskExpired"), o)

    # ---- the pool survives bad functions
    def test_hang_past_timeout_is_killed_as_timeout_and_pool_serves(self):
        t0 = time.time()
        o = self.b.call("demo__t.hang", timeout=2, wait=20)
        self.assertEqual((o["status"], o["reason"]), ("timeout", "EFuncTimeout"), o)
        self.assertLess(time.time() - t0, 8)
        self.assertEqual(self.b.record(o["id"])["status"], "timeout")
        self.assert_serves()

    def test_os_exit_is_crashed_and_pool_serves(self):
        o = self.b.call("demo__t.die")
        self.assertEqual((o["status"], o["reason"]), ("crashed", "EWorkerCrashed"), o)
        self.assertIn("exited with status 7", o["message"])
        self.assert_serves()

    def test_segfault_is_crashed_and_pool_serves(self):
        o = self.b.call("demo__t.segv")
        self.assertEqual((o["status"], o["reason"]), ("crashed", "EWorkerCrashed"), o)
        self.assertIn("SIGSEGV", o["message"])
        self.assert_serves()

    def test_memory_past_limit_is_crashed_and_pool_serves(self):
        o = self.b.call("demo__t.hog", {"mb": 600}, timeout=30, wait=40)
        self.assertEqual((o["status"], o["reason"]), ("crashed", "EWorkerCrashed"), o)
        self.assertIn("memory limit 128 MiB exceeded", o["message"])
        self.assert_serves()

    def test_one_huge_allocation_fails_the_task_not_the_node(self):
        o = self.b.call("demo__t.huge", timeout=30, wait=40)
        self.assertEqual((o["status"], o["reason"]), ("failure", "EFuncFailed"), o)
        self.assertIn("MemoryError", o["message"])
        self.assert_serves()

    def test_stdout_flood_is_capped(self):
        o = self.b.call("demo__t.flood", timeout=30, wait=40)
        self.assertEqual(o["status"], "success", o)
        out = o["output"]
        self.assertLess(len(out.encode()), 4096 + 100)
        self.assertRegex(out, r"\.\.\.\[truncated \d+ bytes\]$")

    def test_idle_children_are_small(self):
        for pid in self.b.children_of(self.w):
            with open("/proc/%d/statm" % pid) as f:
                rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            self.assertLess(rss, 40 << 20, "child %d rss %d" % (pid, rss))

    # ---- scripts change without a restart
    def test_republish_is_picked_up_without_restart(self):
        code = "@DFF.API('v')\ndef v():\n    return %d\n"
        self.b.publish("demo__r", code % 1)
        self.assertEqual(self.b.call("demo__r.v")["result"], 1)
        ver = self.b.publish("demo__r", code % 2)
        # a task that carries the new version loads it at once
        self.assertEqual(self.b.call("demo__r.v", ver=ver)["result"], 2)
        ver = self.b.publish("demo__r", code % 3)
        # ver 0 (unknown): the generation change makes it reload
        time.sleep(0.5)
        results = {self.b.call("demo__r.v")["result"] for _ in range(4)}
        self.assertEqual(results, {3})

    def test_a_script_imports_another_published_script(self):
        self.b.publish("lib__util", "def double(x):\n    return 2 * x\n")
        self.b.publish("demo__imp", "import lib__util\n@DFF.API('d')\ndef d(x):\n"
                       "    return lib__util.double(x)\n"
                       "@DFF.API('m')\ndef m():\n    import lib__nope\n")
        self.assertEqual(self.b.call("demo__imp.d", {"x": 21})["result"], 42)
        o = self.b.call("demo__imp.m")
        self.assertEqual(o["reason"], "EFuncFailed")
        self.assertIn("ModuleNotFoundError", o["message"])
        self.assert_serves()

    # ---- DFF
    def test_dff_env_reads_env_variables_and_sees_changes(self):
        self.b.sql("REPLACE INTO env_variable (id, value) VALUES ('greeting', 'hi')")
        self.b.redis("INCR", "tandem:gen")
        time.sleep(0.5)
        self.assertEqual(self.b.call("demo__t.env", {"name": "greeting"})["result"], "hi")
        self.assertIsNone(self.b.call("demo__t.env", {"name": "nope"})["result"])
        self.b.sql("UPDATE env_variable SET value='hello' WHERE id='greeting'")
        self.b.redis("INCR", "tandem:gen")
        time.sleep(0.5)
        self.assertEqual({self.b.call("demo__t.env", {"name": "greeting"})["result"]
                          for _ in range(4)}, {"hello"})

    def test_dff_cache_set_get_delete(self):
        o = self.b.call("demo__t.cache", {"key": "k1", "value": {"a": [1, 2]}})
        self.assertEqual(o["result"], {"a": [1, 2]})
        self.assertEqual(json.loads(self.b.redis("GET", "tandem:cache:demo__t:k1")),
                         {"a": [1, 2]})
        ttl = int(self.b.redis("TTL", "tandem:cache:demo__t:k1"))
        self.assertTrue(0 < ttl <= 60)
        self.assertEqual(self.b.call("demo__t.cache", {"key": "k1"})["result"], {"a": [1, 2]})
        self.assertIs(self.b.call("demo__t.cache", {"key": "k1", "delete": True})["result"], True)
        self.assertIsNone(self.b.call("demo__t.cache", {"key": "k1"})["result"])

    def test_dff_func_enqueues_a_subtask_that_runs(self):
        o = self.b.call("demo__t.spawn", {"x": 5})
        self.assertEqual(o["status"], "success", o)
        sub = o["result"]
        self.assertTrue(sub.startswith("task-"))
        st = self.b.task(sub)
        self.assertEqual(st["status"], "success", st)
        self.assertEqual(st["result"], {"sum": 105})
        self.assertEqual(self.b.record(sub)["origin"], "subtask")

    def test_cron_task_releases_its_running_mark_only_if_it_is_still_its_own(self):
        tid = "task-" + uuid.uuid4().hex[:24]
        self.b.redis("SET", "tandem:cron:running:cron-a", tid)
        self.b.enqueue("demo__t.add", {"x": 1}, queue="cron", origin="cron", origin_id="cron-a",
                       tid=tid)
        self.assertEqual(self.b.task(tid)["status"], "success")
        wait_for(lambda: self.b.redis("EXISTS", "tandem:cron:running:cron-a") == "0", 5,
                 what="running mark released")
        self.b.redis("SET", "tandem:cron:running:cron-b", "task-someone-else")
        tid, _ = self.b.enqueue("demo__t.add", {"x": 1}, queue="cron", origin="cron",
                                origin_id="cron-b")
        self.assertEqual(self.b.task(tid)["status"], "success")
        self.assertEqual(self.b.redis("GET", "tandem:cron:running:cron-b"), "task-someone-else")

    def test_cache_result_stores_the_result_for_the_server(self):
        o = self.b.call("demo__t.cached", {"x": 7})
        self.assertEqual(o["result"], "dflt7")
        keys = self.b.redis("KEYS", "tandem:cache:result:demo__t.cached:*").split()
        self.assertEqual(len(keys), 1)
        self.assertEqual(json.loads(self.b.redis("GET", keys[0])), "dflt7")
        self.assertTrue(0 < int(self.b.redis("TTL", keys[0])) <= 60)

    # ---- system task
    def test_sys_inspect_lists_api_funcs(self):
        code = ("@DFF.API('Hello', timeout=12, cache_result=30, category='x', tags=['a'])\n"
                "def hello(name, greeting='hi', *a, **kw):\n    return name\n"
                "@DFF.API('Tick', fixed_cron_expr='*/5 * * * *')\ndef tick():\n    pass\n"
                "def plain():\n    pass\n")
        o = self.b.call("__sys.inspect", {"code": code, "script_id": "demo__x"}, origin="system")
        self.assertEqual(o["status"], "success", o)
        funcs = {f["name"]: f for f in o["result"]["funcs"]}
        self.assertEqual(set(funcs), {"hello", "tick"})
        h = funcs["hello"]
        self.assertEqual((h["title"], h["timeout"], h["cache_result"], h["args"]),
                         ("Hello", 12, 30, ["name", "greeting"]))
        self.assertEqual(h["extra"], {"category": "x", "tags": ["a"]})
        self.assertEqual(funcs["tick"]["fixed_cron_expr"], "*/5 * * * *")
        self.assertEqual(funcs["tick"]["timeout"], 30)

    def test_sys_inspect_syntax_error_names_the_line(self):
        o = self.b.call("__sys.inspect", {"code": "x = 1\ndef f(:\n", "script_id": "demo__x"},
                        origin="system")
        self.assertEqual((o["status"], o["reason"]), ("failure", "EScriptSyntaxError"), o)
        self.assertTrue(o["message"].startswith("SyntaxError at line 2:"), o["message"])
        self.assertEqual(o["data"]["line"], 2)

    def test_sys_inspect_bad_timeout_names_the_func(self):
        o = self.b.call("__sys.inspect", {"code": "@DFF.API('t', timeout=0)\ndef f():\n  pass\n",
                                          "script_id": "demo__x"}, origin="system")
        self.assertEqual(o["status"], "failure", o)
        self.assertIn("func f", o["message"])
        self.assertIn("1..3600", o["message"])

    def test_malformed_task_is_answered_and_dropped(self):
        reply = "it-bad"
        self.b.redis("XADD", "tandem:q:sync", "*", "t",
                     json.dumps({"id": "task-bad1", "reply": reply, "func": 5}))
        o = self.b.reply(reply, 10)
        self.assertEqual(o["reason"], "EClientBadRequest")
        self.b.redis("XADD", "tandem:q:sync", "*", "t", "not json")
        self.assert_serves()


class WorkerRecoveryTest(unittest.TestCase):
    """Accepted means done: tasks survive a SIGKILLed worker; two workers share."""

    @classmethod
    def setUpClass(cls):
        if not os.access(WORKER, os.X_OK):
            raise unittest.SkipTest("tandem-worker not built")
        cls.b = Backend().start()
        cls.b.publish("demo__t", SCRIPT)

    @classmethod
    def tearDownClass(cls):
        cls.b.stop()

    def test_async_task_survives_sigkill_of_every_worker(self):
        conf = self.b.conf("r1", node="node-r", children=1)
        w = self.b.start_worker(conf, "r1")
        tid, _ = self.b.enqueue("demo__t.slow", {"s": 3}, queue="async", timeout=20)
        wait_for(lambda: json.loads(self.b.redis("GET", "tandem:task:" + tid) or "{}")
                 .get("status") == "running", 10, what="task running")
        self.b.kill_worker(w, signal.SIGKILL)
        # nobody finished it
        time.sleep(1)
        self.assertEqual(json.loads(self.b.redis("GET", "tandem:task:" + tid))["status"], "running")
        w2 = self.b.start_worker(conf, "r1")
        st = self.b.task(tid, timeout=40)
        self.assertEqual(st["status"], "success", st)
        self.assertEqual(st["result"], "slept")
        self.b.kill_worker(w2)

    def test_two_workers_share_one_queue(self):
        ca = self.b.conf("a", node="node-a", children=1)
        cb = self.b.conf("b", node="node-b", children=1)
        wa = self.b.start_worker(ca, "a")
        wb = self.b.start_worker(cb, "b")
        tids = [self.b.enqueue("demo__t.slow", {"s": 0.3}, queue="async")[0] for _ in range(12)]
        nodes = set()
        for t in tids:
            st = self.b.task(t, timeout=30)
            self.assertEqual(st["status"], "success", st)
            nodes.add(st["node"])
        self.assertEqual(nodes, {"node-a", "node-b"})
        self.b.kill_worker(wa)
        self.b.kill_worker(wb)

    def test_redis_restart_is_survived(self):
        conf = self.b.conf("d", node="node-d", children=1)
        w = self.b.start_worker(conf, "d")
        self.b.stop_redis()
        time.sleep(3)
        self.assertIsNone(w.poll(), "the worker died while redis was down")
        self.b.start_redis()
        self.b.redis("XGROUP", "CREATE", "tandem:q:sync", "workers", "0", "MKSTREAM")
        o = self.b.call("demo__t.add", {"x": 2}, wait=30)
        self.assertEqual(o["status"], "success", o)
        log = self.b.log("d")
        self.assertIn("redis is back", log)
        # logged once per state change, not once per retry
        self.assertLess(log.count("retrying"), 10, log)
        self.b.kill_worker(w)

    def test_mariadb_outage_keeps_records_in_redis_until_it_is_back(self):
        conf = self.b.conf("m", node="node-m", children=1)
        w = self.b.start_worker(conf, "m")
        self.assertEqual(self.b.call("demo__t.add", {"x": 1})["status"], "success")  # cached
        self.b.stop_mariadb()
        try:
            o = self.b.call("demo__t.add", {"x": 5})
            self.assertEqual(o["status"], "success", o)  # the cached script keeps serving
            time.sleep(1)
            self.assertIsNone(w.poll())
            # waiting in Redis: on the list, or in the keeper's processing list
            procs = self.b.redis("SMEMBERS", "tandem:taskrec:procs").split()
            kept = sum(int(self.b.redis("LLEN", k)) for k in ["tandem:taskrec"] + procs)
            self.assertGreaterEqual(kept, 1)
        finally:
            self.b._start_mariadb(init=False)
        self.assertEqual(self.b.record(o["id"], timeout=30)["status"], "success")
        self.assertIn("mariadb is back", self.b.log("m"))
        self.b.kill_worker(w)

    def test_sigterm_lets_the_running_task_finish(self):
        conf = self.b.conf("g", node="node-g", children=1)
        w = self.b.start_worker(conf, "g")
        tid, _ = self.b.enqueue("demo__t.slow", {"s": 2}, queue="async", timeout=20)
        wait_for(lambda: json.loads(self.b.redis("GET", "tandem:task:" + tid) or "{}")
                 .get("status") == "running", 10, what="task running")
        self.b.kill_worker(w, signal.SIGTERM, wait=20)
        st = self.b.task(tid, timeout=5)
        self.assertEqual(st["status"], "success", st)
        self.assertEqual(self.b.redis("EXISTS", "tandem:hb:worker:node-g:%d" % w.pid), "0")


if __name__ == "__main__":
    unittest.main(verbosity=2)
