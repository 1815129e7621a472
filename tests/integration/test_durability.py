"""Durable accepted (issue 10, point 1): a Redis SIGKILLed right after async
calls were accepted gives every one of them back when it restarts, because
the stack's Redis keeps an append-only file; and `tandemctl doctor` FAILs on
a Redis that keeps none.

Each case accepts N async calls, SIGKILLs redis-server at once, starts it
again with the same command line and counts the tasks that still finish.
The figures (also for appendonly no, the old documented setup) are printed
for bench/RESULTS-failover.md.
"""
import json
import os
import signal
import subprocess
import time
import unittest

from harness import Stack, wait_for

N = 40
CODE = '''
import time

@DFF.API("slow")
def slow(n=0):
    time.sleep(0.05)
    return n
'''


class Durability(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="dur", workers=1).up()
        cls.st.push_script("dur__main", CODE)
        cls.aapi = cls.st.create_async_api("dur__main.slow")

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    # -- helpers -------------------------------------------------------------
    def doctor_check(self, name):
        p = self.st.ctl("--json", "doctor")
        doc = json.loads(p.stdout)
        rows = [c for c in doc["checks"] if c["check"] == name]
        self.assertEqual(len(rows), 1, f"doctor has no single '{name}' check: {p.stdout}")
        return rows[0], p.returncode

    def set_aof(self, appendonly, fsync=None):
        st = self.st
        if fsync:
            self.assertEqual(st.redis("CONFIG", "SET", "appendfsync", fsync), "OK")
        self.assertEqual(st.redis("CONFIG", "SET", "appendonly", appendonly), "OK")
        if appendonly == "yes":  # turning it on rewrites the file in the background
            wait_for(lambda: "aof_rewrite_in_progress:0" in st.redis("INFO", "persistence")
                     and "aof_rewrite_scheduled:0" in st.redis("INFO", "persistence"),
                     30, 0.1, "the AOF rewrite to finish")

    def kill_and_restart_redis(self):
        st = self.st
        pidfile = os.path.join(st.dir, "pids", "1-redis.pid")
        with open(pidfile) as f:
            pid = int(f.read())
        # redis-server rewrites its title, so its command line is rebuilt from
        # what it runs with (what CONFIG SET changed survives the restart, as
        # it would in a redis.conf)
        cfg = {k: st.redis("CONFIG", "GET", k).splitlines()[1:2] or [""]
               for k in ("dir", "unixsocket", "dbfilename", "appendonly", "appendfsync", "save")}
        cfg = {k: v[0] for k, v in cfg.items()}
        os.kill(pid, signal.SIGKILL)

        def gone():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().split()[2] == "Z"
            except OSError:
                return True
        wait_for(gone, 10, 0.02, "redis to die")
        args = ["redis-server", "--port", "0", "--unixsocket", cfg["unixsocket"], "--unixsocketperm", "700",
                "--dir", cfg["dir"], "--dbfilename", cfg["dbfilename"], "--appendonly", cfg["appendonly"],
                "--appendfsync", cfg["appendfsync"], "--save", cfg["save"], "--daemonize", "no",
                "--logfile", "", "--bind", "127.0.0.1"]
        with open(os.path.join(st.dir, "log", "redis.log"), "ab") as log:
            p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)
        with open(pidfile, "w") as f:  # `appliance/local down` stops this one
            f.write(str(p.pid))

        def pong():
            try:
                return st.redis("PING") == "PONG"
            except AssertionError:
                return False
        wait_for(pong, 30, 0.05, "redis to answer again")

    def accept_kill_count(self, wait=60):
        """Accept N async calls, SIGKILL Redis, restart it; returns the count
        of accepted tasks that still finish within `wait` seconds."""
        ids = []
        for i in range(N):
            d = self.st.api("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})
            ids.append(d["id"])
        self.kill_and_restart_redis()
        ok = 0
        deadline = time.monotonic() + wait
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for tid in list(pending):
                status, r = self.st.http("GET", f"/api/v1/tasks/{tid}")
                if status == 404:
                    continue  # gone (or not yet visible): polled until the deadline
                s = (r.get("data") or {}).get("status") if isinstance(r, dict) else None
                if s == "success":
                    ok += 1
                    pending.discard(tid)
                elif s in ("failure", "timeout", "crashed", "expired"):
                    pending.discard(tid)
            time.sleep(0.2)
        return ok

    # -- tests ---------------------------------------------------------------
    def test_1_doctor_fails_without_aof(self):
        self.set_aof("yes", "everysec")
        row, rc = self.doctor_check("redis-aof")
        self.assertEqual(row["status"], "ok", row)
        self.assertIn("everysec", row["message"])
        self.set_aof("no")
        try:
            row, rc = self.doctor_check("redis-aof")
            self.assertEqual(row["status"], "FAIL", row)
            self.assertIn("append-only", row["message"])
            self.assertNotEqual(rc, 0)
        finally:
            self.set_aof("yes", "everysec")

    def test_2_sigkill_loses_no_accepted_task_everysec(self):
        self.set_aof("yes", "everysec")
        ok = self.accept_kill_count()
        print(f"\nFIGURE redis SIGKILL after {N} accepted, appendfsync everysec: {ok} survive")
        self.assertEqual(ok, N)

    def test_3_sigkill_loses_no_accepted_task_always(self):
        self.set_aof("yes", "always")
        ok = self.accept_kill_count()
        print(f"\nFIGURE redis SIGKILL after {N} accepted, appendfsync always: {ok} survive")
        self.assertEqual(ok, N)

    def test_4_without_aof_the_loss_is_real(self):
        # the old documented setup: this is what the AOF is for (and why
        # doctor FAILs); the test shows the kill in test_2/3 has teeth
        self.set_aof("no")
        try:
            ok = self.accept_kill_count(wait=15)
            print(f"\nFIGURE redis SIGKILL after {N} accepted, appendonly no: {ok} survive")
            self.assertLess(ok, N)
        finally:
            self.set_aof("yes", "everysec")


if __name__ == "__main__":
    unittest.main(verbosity=2)
