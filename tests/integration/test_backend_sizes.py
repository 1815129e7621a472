"""Issue 16 §4, the backend's size made visible: /metrics (server_metrics.c)
and `tandemctl status` show Redis's memory, keys and AOF, task_record's size
and the keeper's last retention pass (Pstats:purge); `tandemctl doctor`
warns when retention is off and reports the backend disks' fill (warning
over 80 %)."""
import json
import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, have_binaries, wait_for  # noqa: E402

CAPS = "retention = { max_age_days = 30; sync_api = 5; async_api = 7; cron = 3; func = 4; other = 2; batch = 10; };"
OFF = "retention = { max_age_days = 0; sync_api = 0; async_api = 0; cron = 0; func = 0; other = 0; batch = 10; };"


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


class BackendSizesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker", "tandemctl"):
            raise unittest.SkipTest("build first")
        cls.st = Stack(name="sizes", conf_extra=CAPS).up()
        sapi = cls.st.deploy("sizes__echo", "@DFF.API('Echo')\ndef echo(x=1):\n    return x\n", "echo")
        for i in range(25):
            status, _ = cls.st.http("POST", f"/api/v1/sync/{sapi}", {"kwargs": {"x": i}}, key=None)
            assert status == 200, status
        cls.sapi = sapi
        # rows the purge must delete, whatever the keeper trimmed at flush
        vals = ",".join(f"('task-sizes-{i}', 's__a.f', 'sync-api', 'sapi-sizes', 'success', UTC_TIMESTAMP(3))"
                        for i in range(20))
        cls.st.sql("INSERT INTO task_record (id, func_id, origin, origin_id, status, ended_at) VALUES " + vals)
        # one finished retention pass: trimmed to 5
        wait_for(lambda: int(cls.st.redis("HGET", "tandem:stats:purge", "last_pass_rows") or 0) > 0,
                 30, 0.3, "a finished retention pass in Pstats:purge")

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def metrics(self):
        status, body = self.st.http("GET", "/metrics", raw=True)
        self.assertEqual(status, 200)
        return body.decode()

    def test_metrics_show_redis_task_record_and_last_purge(self):
        self.st.redis("CONFIG", "SET", "appendonly", "yes")
        wait_for(lambda: metric(self.metrics(), "tandem_redis_aof_enabled") == 1, 20, 0.3, "AOF on in /metrics")
        m = self.metrics()
        info = self.st.redis("INFO", "memory")
        used = int(re.search(r"used_memory:(\d+)", info).group(1))
        got = metric(m, "tandem_redis_used_memory_bytes")
        self.assertIsNotNone(got, m)
        self.assertLess(abs(got - used), used / 2, "used_memory close to INFO's")
        self.assertEqual(metric(m, "tandem_redis_keys"), float(self.st.redis("DBSIZE")))
        self.assertGreater(metric(m, "tandem_redis_aof_size_bytes"), 0)
        # task_record: the keeper's information_schema reading (an estimate)
        wait_for(lambda: metric(self.metrics(), "tandem_task_record_bytes") is not None, 40, 0.5,
                 "task_record's size in /metrics")
        self.assertGreaterEqual(metric(self.metrics(), "tandem_task_record_rows_estimate"), 0)
        # the last pass: when, how many rows, how long; and the purge's cost
        self.assertGreater(metric(m, "tandem_purge_last_pass_rows"), 0)
        self.assertGreater(metric(m, "tandem_purge_last_pass_end_timestamp_seconds"), 1.7e9)
        self.assertGreater(metric(m, "tandem_purge_last_pass_seconds"), 0)
        self.assertGreater(metric(m, "tandem_purge_busy_seconds_total"), 0)
        self.assertGreaterEqual(metric(m, "tandem_purge_deleted_total"), 15)  # the 20 rows inserted, cap 5

    def test_status_prints_sizes_without_a_supervisor(self):
        # a local stack has no supervisor: status fails for that, but the
        # backend's size is still printed
        p = self.st.ctl("status")
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, r"redis size:\s+[\d.]+ MiB used, \d+ keys")
        self.assertRegex(p.stdout, r"task_record: ~\d+ rows \(InnoDB's estimate\), [\d.]+ MiB")
        self.assertRegex(p.stdout, r"last purge:\s+\d{4}-\d\d-\d\dT[\d:.]+Z, \d+ rows in [\d.]+ ms")
        # --no-sizes leaves it out
        self.assertNotIn("redis size:", self.st.ctl("status", "--no-sizes").stdout)

    def keeper_pid(self):
        """The worker's child that is not a Python child (those have the
        master's pipe on fd 3; the keeper closes every fd from 3 up)."""
        worker = self.st.pids()["worker"]
        with open(f"/proc/{worker}/task/{worker}/children") as f:
            kids = [int(x) for x in f.read().split()]
        for p in kids:
            try:
                fd3 = os.readlink(f"/proc/{p}/fd/3")
            except OSError:
                fd3 = ""
            if not fd3.startswith("pipe:"):
                return p
        self.fail(f"no keeper among {kids}")

    def test_flush_writes_only_the_newest_cap_records_of_a_batch(self):
        # the keeper stopped, 30 calls pile up in Redis: one batch of 30 for
        # an API capped at 5, of which only the newest 5 are written
        sapi = self.st.deploy("sizes__trim", "@DFF.API('T')\ndef t(x=1):\n    return x\n", "t")
        before = int(self.st.redis("HGET", "tandem:stats:purge", "trimmed_at_flush") or 0)
        kp = self.keeper_pid()
        os.kill(kp, signal.SIGSTOP)
        try:
            for i in range(30):
                status, _ = self.st.http("POST", f"/api/v1/sync/{sapi}", {"kwargs": {"x": i}}, key=None)
                self.assertEqual(status, 200)
        finally:
            os.kill(kp, signal.SIGCONT)
        wait_for(lambda: int(self.st.redis("HGET", "tandem:stats:purge", "trimmed_at_flush") or 0) - before == 25,
                 20, 0.2, "25 of 30 records trimmed at flush")
        n = self.st.sql(f"SELECT COUNT(*) FROM task_record WHERE origin_id = '{sapi}'")[0][0]
        self.assertEqual(int(n), 5)

    def doctor(self, conf=None, env=None):
        args = (["-c", conf] if conf else [])
        p = self.st.ctl(*args, "--json", "doctor", conf=conf is None, env=env)
        doc = json.loads(p.stdout)
        return {c["check"]: c for c in doc["checks"]}

    def test_doctor_reports_retention_and_disks(self):
        checks = self.doctor()
        self.assertEqual(checks["retention"]["status"], "ok", checks["retention"])
        for part in ("redis-disk", "mariadb-disk"):
            self.assertEqual(checks[part]["status"], "ok", checks[part])
            self.assertRegex(checks[part]["message"], r"is \d+ % full \([\d.]+ MiB free; statvfs on this node\)")
        # the threshold (0 here) turns a real reading into the warning
        checks = self.doctor(env={"TANDEM_DOCTOR_DISK_WARN_PCT": "0"})
        self.assertEqual(checks["mariadb-disk"]["status"], "warn", checks["mariadb-disk"])
        self.assertIn("fix", checks["mariadb-disk"])

    def test_doctor_warns_when_retention_is_off(self):
        with open(self.st.conf) as f:
            text = f.read()
        self.assertIn(CAPS, text)
        off = os.path.join(self.st.dir, "tandem-noretention.conf")
        with open(off, "w") as f:
            f.write(text.replace(CAPS, OFF))
        checks = self.doctor(conf=off)
        self.assertEqual(checks["retention"]["status"], "warn", checks["retention"])
        self.assertIn("grows without bound", checks["retention"]["message"])


if __name__ == "__main__":
    unittest.main()
