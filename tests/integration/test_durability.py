"""Durable accepted (issue 10, point 1): a Redis SIGKILLed right after async
calls were accepted gives every one of them back when it restarts, because
the stack's Redis keeps an append-only file; and `tandemctl doctor` FAILs on
a Redis that keeps none.

Each case accepts N async calls, SIGKILLs redis-server at once, starts it
again with the same command line and counts the tasks that still finish.
The figures (also for appendonly no, the old documented setup) are printed
for bench/RESULTS-failover.md.

Past the append-only file, the accept journal (server_journal.c, MariaDB
task_accept) and the keeper's reconciler (worker_reconcile.c) make a task
accepted before Redis lost it (no AOF, or a restore from an older snapshot)
run anyway, or be reported lost (ETaskLost): tests 4-8.
"""
import json
import os
import shutil
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

    def kill_and_restart_redis(self, snapshot=None):
        """SIGKILL redis-server and start it again; with snapshot (an .rdb
        path) it comes back from that file alone, as after restoring a backup."""
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
        if snapshot:
            shutil.rmtree(os.path.join(cfg["dir"], "appendonlydir"), ignore_errors=True)
            shutil.copy(snapshot, os.path.join(cfg["dir"], cfg["dbfilename"]))
        args = ["redis-server", "--port", "0", "--unixsocket", cfg["unixsocket"], "--unixsocketperm", "700",
                "--dir", cfg["dir"], "--dbfilename", cfg["dbfilename"],
                "--appendonly", "no" if snapshot else cfg["appendonly"],
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
        if snapshot and cfg["appendonly"] == "yes":
            self.set_aof("yes")  # an AOF started now begins from the snapshot's data

    def accept_kill_count(self, wait=60):
        """Accept N async calls, SIGKILL Redis, restart it; returns the count
        of accepted tasks that still finish within `wait` seconds."""
        ids = []
        for i in range(N):
            # the first call on a server thread whose Redis connection the
            # previous case's kill broke is refused (503, not accepted: no
            # promise is at stake) while the thread reconnects: call again
            for attempt in range(3):
                status, r = self.st.http("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})
                if status != 503:
                    break
                time.sleep(0.1)
            self.assertEqual(status, 200, r)
            ids.append(r["data"]["id"])
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

    def reconciled(self):
        """Pstats:reconcile: what the keeper queued again / recorded lost."""
        raw = self.st.redis("HGETALL", "tandem:stats:reconcile").splitlines()
        h = dict(zip(raw[0::2], raw[1::2]))
        return int(h.get("requeued_total", 0)), int(h.get("lost_total", 0))

    def test_4_without_aof_the_journal_gives_them_back(self):
        # the old documented setup: Redis loses what it held (requeued_total
        # rises: the kill has teeth), the accept journal gives every task back
        self.set_aof("no")
        try:
            rq0, _ = self.reconciled()
            ok = self.accept_kill_count()
            rq1, _ = self.reconciled()
            print(f"\nFIGURE redis SIGKILL after {N} accepted, appendonly no: {ok} finish, "
                  f"{rq1 - rq0} of them queued again from the accept journal")
            self.assertGreater(rq1 - rq0, 0, "Redis without AOF lost nothing: the test has no teeth")
            self.assertEqual(ok, N)
        finally:
            self.set_aof("yes", "everysec")

    def test_5_accept_record_is_committed_before_the_answer(self):
        ids = [self.st.api("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})["id"]
               for i in range(5)]
        q = ",".join("'%s'" % i for i in ids)
        have = {r[0] for r in self.st.sql(
            f"SELECT id FROM task_accept WHERE id IN ({q}) UNION SELECT id FROM task_record WHERE id IN ({q})")}
        self.assertEqual(have, set(ids), "an async call was answered before its accept record was written")
        for tid in ids:
            self.st.wait_task(tid)
        # done tasks leave the journal (pruned once their record is in)
        wait_for(lambda: self.st.sql(f"SELECT COUNT(*) FROM task_accept WHERE id IN ({q})")[0][0] == "0",
                 30, 0.2, "the journal rows of finished tasks to be pruned")

    def test_6_restore_from_an_older_snapshot_loses_no_accepted_task(self):
        st = self.st
        self.set_aof("yes", "everysec")
        self.assertEqual(st.redis("SAVE"), "OK")
        snap = os.path.join(st.dir, "snapshot.rdb")
        shutil.copy(os.path.join(st.dir, "redis.rdb"), snap)
        rq0, _ = self.reconciled()
        ids = [st.api("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})["id"] for i in range(N)]
        self.kill_and_restart_redis(snapshot=snap)
        for tid in ids:
            t = st.wait_task(tid, timeout=60)
            self.assertEqual(t["status"], "success", t)
        rq1, _ = self.reconciled()
        print(f"\nFIGURE redis restored from an older snapshot after {N} accepted: all {N} finish, "
              f"{rq1 - rq0} queued again from the accept journal")
        self.assertGreater(rq1 - rq0, 0, "the restore lost nothing: the test has no teeth")

    def journal_row(self, tid, requeued):
        """A journal row for a task Redis never had (accepted a minute ago)."""
        now = int(time.time() * 1000) - 60000
        task = {"id": tid, "func": "dur__main.slow", "kwargs": {"n": 7}, "origin": "async-api",
                "origin_id": self.aapi, "timeout": 30, "queue": "async", "enq": now}
        self.st.sql("INSERT INTO task_accept (id, queue, task, accepted_ms, requeued) VALUES "
                    "('%s', 'async', '%s', %d, %d)" % (tid, json.dumps(task), now, requeued))

    def test_7_missing_from_redis_is_queued_again_once(self):
        self.journal_row("task-journal-requeue-1", 0)
        self.journal_row("task-journal-lost-1", 1)  # queued again once already
        self.kill_and_restart_redis()  # a new run_id: the keeper compares at once
        t = self.st.wait_task("task-journal-requeue-1", timeout=30)
        self.assertEqual(t["status"], "success", t)
        t = self.st.wait_task("task-journal-lost-1", timeout=30)
        self.assertEqual((t["status"], t["reason"]), ("failure", "ETaskLost"), t)
        self.assertIn("lost", t["message"])

    def test_8_a_leftover_row_of_a_finished_task_is_dropped_not_run_again(self):
        # as older versions left behind when retention kept no record: the
        # status key holds the outcome, task_record has nothing
        tid = "task-journal-done-1"
        self.journal_row(tid, 0)
        self.st.redis("SET", f"tandem:task:{tid}",
                      json.dumps({"id": tid, "status": "success", "result": "first run"}), "EX", "3600")
        self.kill_and_restart_redis()  # a new run_id: the keeper sweeps at once
        left = lambda: self.st.sql(f"SELECT COUNT(*) FROM task_accept WHERE id = '{tid}'")[0][0]
        wait_for(lambda: left() == "0", 30, 0.2, "the leftover journal row to be dropped")
        time.sleep(1)
        self.assertEqual(json.loads(self.st.redis("GET", f"tandem:task:{tid}"))["result"], "first run",
                         "a finished task was run again from a leftover journal row")
        self.assertEqual(self.st.sql(f"SELECT COUNT(*) FROM task_record WHERE id = '{tid}'")[0][0], "0")


class JournalUnderRetention(unittest.TestCase):
    """A finished task leaves the accept journal even when retention keeps
    none of its record: with retention.async_api = 2, 30 async calls keep
    2 records at most, yet all 30 journal rows go. Before, a row left only
    once its record was in task_record: the journal grew without bound
    under any busy Async API, and a day later (its status key expired) the
    reconciler took each leftover row for a task Redis lost and ran it
    again."""

    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="jret", workers=1, conf_extra="retention = { async_api = 2; };").up()
        cls.st.push_script("dur__main", CODE)
        cls.aapi = cls.st.create_async_api("dur__main.slow")

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def test_finished_tasks_leave_the_journal_whatever_retention_keeps(self):
        st = self.st
        ids = [st.api("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})["id"]
               for i in range(30)]
        for tid in ids:
            t = st.wait_task(tid)
            self.assertEqual(t["status"], "success", t)
        q = ",".join("'%s'" % i for i in ids)
        wait_for(lambda: int(st.sql(f"SELECT COUNT(*) FROM task_record WHERE id IN ({q})")[0][0]) <= 2,
                 30, 0.2, "retention to keep at most 2 of the 30 records")
        left = lambda: int(st.sql(f"SELECT COUNT(*) FROM task_accept WHERE id IN ({q})")[0][0])
        try:
            wait_for(lambda: left() == 0, 20, 0.2, "the journal rows of the 30 finished tasks to go")
        except Exception:
            self.fail(f"{left()} of 30 finished tasks are still in the accept journal")

    def test_the_journal_is_deleted_from_by_id_after_it_grew(self):
        # the keeper's DELETE ... WHERE id IN (the ids of a flushed batch)
        # must go by the id index however fast the table grew since its
        # statistics were last sampled: sampled at 100 rows, grown to 1,000,
        # a 201-id DELETE scanned the whole table with persistent statistics
        # (a copy, so the reconciler never sees these rows)
        st = self.st
        st.sql("DROP TABLE IF EXISTS ta_growth")
        st.sql("CREATE TABLE ta_growth LIKE task_accept")
        try:
            fill = ("INSERT INTO ta_growth (id, queue, task, accepted_ms) SELECT CONCAT('g-', seq), "
                    "'async', REPEAT('x', 700), 1700000000000 + seq FROM seq_{}_to_{}")
            st.sql(fill.format(1, 100))
            st.sql("ANALYZE TABLE ta_growth")
            st.sql(fill.format(101, 1000))
            ids = ",".join(f"'g-{i}'" for i in range(100, 301))
            plan = st.sql(f"EXPLAIN DELETE FROM ta_growth WHERE id IN ({ids})")[0]
            self.assertEqual(plan[3:6], ["range", "id", "id"], f"the DELETE's plan: {plan}")
        finally:
            st.sql("DROP TABLE IF EXISTS ta_growth")


if __name__ == "__main__":
    unittest.main(verbosity=2)
