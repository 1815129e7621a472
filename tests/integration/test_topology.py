"""tandemctl doctor judges the backend's topology (src/ctl/ctl_topology.c):
which Redis is master, its replicas, the Sentinels reachable and agreeing,
the MariaDB servers and which one is writable. Real parts on loopback: a
Redis master, its replica and one Sentinel, two mariadbd (the MariaDB class
of test_backend_hosts)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, free_port, have_binaries  # noqa: E402
from test_backend_hosts import PW, MariaDB  # noqa: E402


def redis_cli(port, *args):
    p = subprocess.run(["redis-cli", "-p", str(port)] + list(args), capture_output=True, text=True,
                       timeout=10)
    return p.stdout.strip()


class TopologyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandemctl"):
            raise unittest.SkipTest("build first")
        cls.root = tempfile.mkdtemp(prefix="tandem-topo-", dir="/tmp")
        cls.procs = []
        cls.pm, cls.pr, cls.ps, cls.dead = free_port(), free_port(), free_port(), free_port()
        cls.redis(cls.pm)
        cls.redis(cls.pr, "--replicaof", "127.0.0.1", str(cls.pm))
        sconf = os.path.join(cls.root, "sentinel.conf")
        with open(sconf, "w") as f:
            f.write(f"port {cls.ps}\nbind 127.0.0.1\nsentinel monitor tandem 127.0.0.1 {cls.pm} 1\n"
                    "sentinel down-after-milliseconds tandem 60000\n")
        cls.procs.append(subprocess.Popen(["redis-server", sconf, "--sentinel", "--dir", cls.root],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        cls.a = MariaDB(cls.root, "a").up()
        cls.b = MariaDB(cls.root, "b").up()
        # the replica online at the master, and known to the Sentinel
        deadline = time.time() + 30
        while time.time() < deadline:
            if ("state=online" in redis_cli(cls.pm, "INFO", "replication")
                    and f"{cls.pr}" in redis_cli(cls.ps, "SENTINEL", "replicas", "tandem")):
                break
            time.sleep(0.2)

    @classmethod
    def redis(cls, port, *extra):
        cls.procs.append(subprocess.Popen(
            ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--dir", cls.root, "--appendfilename", f"a{port}.aof",
             "--appenddirname", f"aof{port}"] + list(extra),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        for _ in range(100):
            if redis_cli(port, "PING") == "PONG":
                return
            time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            p.send_signal(signal.SIGTERM)
        for p in cls.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        cls.a.down()
        cls.b.down()
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.a.read_only(False)
        self.b.read_only(True)

    def doctor(self, sentinels, redis_extra=""):
        path = os.path.join(self.root, "tandem.conf")
        sl = ", ".join(f'"127.0.0.1:{p}"' for p in sentinels)
        with open(path, "w") as f:
            f.write(f'redis = {{ sentinels = [ {sl} ]; master_name = "tandem"; {redis_extra} }};\n'
                    f'mysql = {{ hosts = [ "127.0.0.1:{self.a.port}", "127.0.0.1:{self.b.port}" ]; '
                    f'user = "tandem"; password = "{PW}"; database = "tandem"; }};\n'
                    f'paths = {{ migrations = "{SRC}/migrations"; }};\n')
        p = subprocess.run([os.path.join(BIN, "tandemctl"), "-c", path, "--json", "doctor"],
                           capture_output=True, text=True, timeout=120)
        # 0 or 1 (something FAILed); anything else is a crash (or, in a
        # sanitizer build, a leak report)
        self.assertIn(p.returncode, (0, 1), p.stderr[-3000:])
        try:
            checks = {c["check"]: c for c in json.loads(p.stdout)["checks"]}
        except (ValueError, KeyError) as e:
            raise AssertionError(f"doctor --json: {e}: {p.stdout} {p.stderr}")
        return checks["redis-topo"], checks["mysql-topo"]

    def wait_lag(self, ok, seconds=15):
        """Until the master's INFO shows its replica's lag (s) passing ok."""
        deadline = time.time() + seconds
        while time.time() < deadline:
            info = redis_cli(self.pm, "INFO", "replication")
            lags = [int(x.split("lag=")[1].split(",")[0].strip())
                    for x in info.splitlines() if x.startswith("slave") and "lag=" in x]
            if lags and ok(min(lags)):
                return
            time.sleep(0.2)

    # each doctor run takes seconds (it checks everything): the Redis and the
    # MariaDB findings, independent, are checked in pairs
    def test_healthy_pair_names_master_replica_sentinels_and_primary(self):
        r, m = self.doctor([self.ps], "wait_replicas = 1; wait_max_lag = 5;")
        self.assertEqual(r["status"], "ok", r)
        # the WAIT settings, so an operator sees what an enqueue waits for
        self.assertIn("WAIT for 1 replica(s) up to 200 ms, counting those with lag <= 5 s",
                      r["message"])
        self.assertIn(f"master 127.0.0.1:{self.pm}", r["message"])
        self.assertIn(f"127.0.0.1:{self.pr} online lag", r["message"])
        self.assertIn("1 of 1 Sentinels reachable, agreeing", r["message"])
        self.assertEqual(m["status"], "ok", m)
        self.assertIn(f"127.0.0.1:{self.a.port} writable", m["message"])
        self.assertIn(f"127.0.0.1:{self.b.port} read_only", m["message"])

    def test_no_sentinel_majority_and_two_writable_fail(self):
        self.b.read_only(False)
        r, m = self.doctor([self.dead, self.ps])
        self.assertEqual(r["status"], "FAIL", r)
        self.assertIn("1 of 2 Sentinels reachable", r["message"])
        self.assertIn("no majority", r["message"])
        self.assertEqual(m["status"], "FAIL", m)
        self.assertIn("2 writable MariaDB servers", m["message"])

    def test_wait_replicas_above_online_and_no_writable(self):
        self.a.read_only(True)
        r, m = self.doctor([self.ps], "wait_replicas = 2;")
        self.assertEqual(r["status"], "FAIL", r)
        self.assertIn("wait_replicas = 2 but 1 online and acknowledging", r["message"])
        self.assertIn("redis.wait_max_lag = 2 s", r["message"])
        self.assertIn("refused", r["message"])
        self.assertEqual(m["status"], "FAIL", m)
        self.assertIn("no writable MariaDB", m["message"])
        r, _ = self.doctor([self.ps], "wait_replicas = 2; wait_refuse = false;")
        self.assertEqual(r["status"], "warn", r)
        self.assertIn("without a replica's copy", r["message"])

    def test_replica_lagging_past_wait_max_lag_is_not_counted(self):
        # a hung replica stays "online" at the master while its lag grows:
        # doctor counts it as the enqueue does, by redis.wait_max_lag
        replica = self.procs[1]
        replica.send_signal(signal.SIGSTOP)
        try:
            self.wait_lag(lambda lag: lag >= 2)
            r, _ = self.doctor([self.ps], "wait_replicas = 1; wait_max_lag = 1;")
            # without WAIT, the same replica is only a warning, past
            # redis.replica_lag_warn (10 s unless set)
            w, _ = self.doctor([self.ps], "replica_lag_warn = 1;")
        finally:
            replica.send_signal(signal.SIGCONT)
            self.wait_lag(lambda lag: lag <= 1)  # acking again, for the other tests
        self.assertEqual(r["status"], "FAIL", r)
        self.assertIn("wait_replicas = 1 but 0 online and acknowledging", r["message"])
        self.assertIn("redis.wait_max_lag = 1 s", r["message"])
        self.assertEqual(w["status"], "warn", w)
        self.assertIn("1 replica(s) more than 1 s behind (redis.replica_lag_warn)", w["message"])


if __name__ == "__main__":
    unittest.main()
