"""A Redis restored from an older snapshot loses no cron slot and fires none
twice (issue 10, point 1; the redis-snapshot drill's missing slot).

Each slot must end with exactly one record in task_record (one task id):

1. The workers (and their keeper) are stopped while a per-second job with
   overlap=skip keeps firing: the first slot's task waits in the stream, the
   next slots are recorded `skipped` by the beat's fire script into
   Ptaskrec, which the stopped keeper does not flush. Redis then comes back
   from a snapshot taken before: the waiting task and the skipped records
   are gone from Redis. The beat journals both (task_accept queues "cron"
   and "record"); the keeper's reconciler queues the task again and writes
   the records. Before the records were journaled, the skipped slots
   vanished without a trace.
2. The beat is SIGKILLed and Redis comes back from a snapshot taken a few
   seconds earlier, then a new beat starts: the restored Redis has the old
   cursor (cron:state next) and none of the fired marks of the slots since.
   The new beat must learn from MariaDB (journal + task_record) that those
   slots were handled, or it fires them all again (misfire grace 60 s).
3. A beat dies right after its fire script (TANDEM_TEST_BEAT_DIE_AFTER_FIRE)
   with the workers stopped, another beat takes over and fires the next
   slots, then Redis comes back from a snapshot taken before: the dead
   beat's fires are gone from Redis. When the beat journaled after the
   fire they were gone everywhere (vanished slots); journaled ahead of the
   fire, the reconciler queues them again, each slot once.
4. DFF's delayed cron runs and a delayed direct call (options.delay) wait
   in Pdelayed when Redis comes back from a snapshot taken before they were
   made: each is queued again from the journal into Pdelayed and runs once,
   not before its due time. Before, neither was journaled: lost silently.
"""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_durability as dur  # noqa: E402  (its Redis kill/restore helpers)
from harness import BIN, Stack, have_binaries, wait_for  # noqa: E402

DELAY = 6  # s: the delayed runs wait this long in Pdelayed

CODE = '''
@DFF.API('tick')
def tick():
    return 1

@DFF.API('late', delayed_cron_job=[%d])
def late():
    return 1

@DFF.API('later')
def later():
    return 1
''' % DELAY


def tree(root):
    """root and every process below it (the worker master, its children
    and its keeper)."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += [c for c, pp in parent.items() if pp == p]
    return out


@unittest.skipUnless(have_binaries("tandem-beat", "tandem-server", "tandem-worker"), "needs a full build")
class CronSnapshot(unittest.TestCase):
    kill_and_restart_redis = dur.Durability.kill_and_restart_redis
    set_aof = dur.Durability.set_aof

    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="cronsnap", workers=1).up()
        cls.st.push_script("snap__t", CODE)
        cls.beats = []  # beats this test started (Popen)

    @classmethod
    def tearDownClass(cls):
        for p in cls.beats:
            if p.poll() is None:
                p.kill()
                p.wait()
        cls.st.down()

    def add_job(self, overlap):
        return self.st.add_cron_job("snap__t.tick", "* * * * * *", overlap=overlap)

    def slots(self, job):
        """{nominal unix s: [(task id, status)]} from task_record."""
        rows = self.st.sql("SELECT FLOOR(UNIX_TIMESTAMP(nominal_at)), id, status FROM task_record "
                           f"WHERE origin_id = '{job}' AND nominal_at IS NOT NULL")
        out = {}
        for ts, tid, status in rows:
            out.setdefault(int(ts), []).append((tid, status))
        return out

    def assert_each_slot_once(self, job, lo, hi, allowed):
        def complete():
            s = self.slots(job)
            return s if all(t in s for t in range(lo, hi + 1)) else None
        try:
            s = wait_for(complete, 40, 0.5, f"a record for every slot {lo}..{hi} of {job}")
        except AssertionError:
            s = self.slots(job)
            missing = [t for t in range(lo, hi + 1) if t not in s]
            self.fail(f"{job}: {len(missing)} slot(s) of {lo}..{hi} vanished (no record): {missing}; "
                      f"records: { {t: s[t] for t in sorted(s) if lo - 2 <= t <= hi + 2} }")
        twice = {t: v for t, v in s.items() if lo <= t <= hi and len({tid for tid, _ in v}) > 1}
        self.assertEqual(twice, {}, f"{job}: slots handled by more than one task")
        for t in range(lo, hi + 1):
            self.assertIn(s[t][0][1], allowed, f"{job}: slot {t}: {s[t]}")
        return s

    def snapshot(self, name):
        self.assertEqual(self.st.redis("SAVE"), "OK")
        snap = os.path.join(self.st.dir, name)
        shutil.copy(os.path.join(self.st.dir, "redis.rdb"), snap)
        return snap

    def start_beat(self, name, env=None):
        with open(os.path.join(self.st.dir, "log", f"{name}.log"), "ab") as log:
            p = subprocess.Popen([os.path.join(BIN, "tandem-beat"), "-c", self.st.conf],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, env=dict(os.environ, **(env or {})))
        self.beats.append(p)
        return p

    def kill_beats(self):
        """SIGKILL every beat: the stack's and those this test started."""
        pids = [p.pid for p in self.beats if p.poll() is None]
        try:
            pids.append(int(self.st.pids()["beat"]))
        except (KeyError, ValueError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.beats:
            p.poll() is None and p.wait(10)

        def dead(pid):
            try:
                with open(f"/proc/{pid}/stat") as f:
                    return f.read().rsplit(")", 1)[1].split()[0] == "Z"
            except OSError:
                return True
        wait_for(lambda: all(dead(p) for p in pids), 10, 0.05, "the beats to die")

    @contextlib.contextmanager
    def workers_stopped(self):
        """The worker tree (its children and keeper) SIGSTOPped meanwhile."""
        workers = tree(self.st.pids()["worker"])
        for p in workers:
            os.kill(p, signal.SIGSTOP)
        try:
            yield
        finally:
            for p in workers:
                os.kill(p, signal.SIGCONT)

    def reconciled(self, field):
        raw = self.st.redis("HGETALL", "tandem:stats:reconcile").splitlines()
        return int(dict(zip(raw[0::2], raw[1::2])).get(field, 0))

    def test_1_skipped_slots_survive_a_restore(self):
        st = self.st
        job = self.add_job("skip")
        wait_for(lambda: len(self.slots(job)) >= 2, 30, 0.2, f"{job} to run")
        snap = self.snapshot("snap1.rdb")
        time.sleep(1.2)  # the snapshot's running task (if any) has ended
        t_stop = int(time.time())
        with self.workers_stopped():
            time.sleep(3.5)  # one slot fires and waits, the next are skipped
            w0 = self.reconciled("records_written_total")
            self.kill_and_restart_redis(snapshot=snap)
            t_back = int(time.time())
        s = self.assert_each_slot_once(job, t_stop - 1, t_back + 3, ("success", "skipped"))
        skipped = [t for t in range(t_stop, t_back) if s[t][0][1] == "skipped"]
        # teeth: slots were skipped while the keeper was stopped, so their
        # records were only in Redis when it went back
        self.assertTrue(skipped, f"no slot was skipped during the stop: the test tested nothing: {s}")
        self.assertGreater(self.reconciled("records_written_total"), w0,
                           "no record came from the journal: the restore lost none?")
        print(f"\nFIGURE restore with the keeper stopped: slots {t_stop}..{t_back - 1}: "
              f"{len(skipped)} skipped records written from the accept journal", flush=True)
        st.set_cron_enabled(job, False)

    def test_2_a_beat_started_after_a_restore_fires_no_slot_again(self):
        st = self.st
        job = self.add_job("allow")
        wait_for(lambda: len(self.slots(job)) >= 2, 30, 0.2, f"{job} to run")
        snap = self.snapshot("snap2.rdb")
        t_snap = int(time.time())
        # the slots after the snapshot run and are recorded; their journal
        # rows are pruned (only task_record knows them then)
        time.sleep(5 - (time.time() % 1) + 0.5)
        # (mid-second; a kill between a fire and its journal row is test 3)
        self.kill_beats()
        self.kill_and_restart_redis(snapshot=snap)
        self.start_beat("beat-2")
        t_back = int(time.time())
        self.assert_each_slot_once(job, t_snap - 1, t_back + 3, ("success",))
        log = st.log("beat-2")
        self.assertIn("already handled (journal)", log, "the new beat did not consult the journal")

    def test_3_a_beat_dying_between_fire_and_journal_loses_no_slot(self):
        st = self.st
        job = self.add_job("allow")
        wait_for(lambda: len(self.slots(job)) >= 2, 30, 0.2, f"{job} to run")
        snap = self.snapshot("snap3.rdb")
        t_snap = int(time.time())
        with self.workers_stopped():  # the fires after the snapshot stay in Redis alone
            self.kill_beats()
            a = self.start_beat("beat-3a", {"TANDEM_TEST_BEAT_DIE_AFTER_FIRE": job})
            self.assertEqual(a.wait(30), 9, "the beat did not die after a fire (test hook)")
            self.start_beat("beat-3b")  # takes over, fires the next slots
            wait_for(lambda: st.redis("HGET", "tandem:cron:state:" + job, "last_slot") and
                     int(st.redis("HGET", "tandem:cron:state:" + job, "last_slot")) > time.time() - 1.5,
                     20, 0.1, "the next beat to fire")
            time.sleep(2)
            self.kill_and_restart_redis(snapshot=snap)
            t_back = int(time.time())
        died = [ln for ln in st.log("beat-3a").splitlines() if "TANDEM_TEST_BEAT_DIE_AFTER_FIRE" in ln]
        self.assertTrue(died, "beat-3a's log does not say where it died")
        self.assert_each_slot_once(job, t_snap - 1, t_back + 3, ("success",))
        st.set_cron_enabled(job, False)

    def delayed_ids(self):
        raw = self.st.redis("ZRANGE", "tandem:delayed", "0", "-1")
        return [json.loads(m) for m in raw.splitlines() if m.startswith("{")]

    def test_4_delayed_runs_survive_a_restore(self):
        st = self.st
        snap = self.snapshot("snap4.rdb")
        job = st.add_cron_job("snap__t.late", "* * * * * *", overlap="allow")
        status, r = st.http("POST", "/api/v1/func/snap__t.later",
                            {"kwargs": {}, "options": {"delay": DELAY + 2}})
        self.assertEqual(status, 200, r)
        call = r["data"]["id"]
        wait_for(lambda: len([t for t in self.delayed_ids() if t.get("origin_id") == job]) >= 3,
                 20, 0.1, f"{job}'s delayed runs")
        st.set_cron_enabled(job, False)
        time.sleep(1.2)  # a fire in flight lands
        waiting = {t["id"]: t for t in self.delayed_ids()}
        self.assertIn(call, waiting, "the delayed call is not in Pdelayed")
        slots = sorted(t["nominal"] for t in waiting.values() if t.get("origin_id") == job)
        with self.workers_stopped():  # the keeper's reconciler waits until we looked
            self.kill_and_restart_redis(snapshot=snap)
            self.assertEqual(st.redis("ZCARD", "tandem:delayed"), "0",
                             "the restore did not lose the delayed tasks: the test tested nothing")

        def done():
            rows = st.sql("SELECT id, origin_id, FLOOR(UNIX_TIMESTAMP(nominal_at)), status, "
                          "UNIX_TIMESTAMP(started_at) FROM task_record WHERE id IN (%s) OR origin_id = '%s'"
                          % (",".join(f"'{i}'" for i in waiting), job))
            ids = {r[0] for r in rows}
            return rows if all(i in ids for i in waiting) else None
        try:
            rows = wait_for(done, DELAY + 30, 0.5, "every delayed task to run")
        except AssertionError:
            rows = st.sql(f"SELECT id, status FROM task_record WHERE origin_id = '{job}' OR id = '{call}'")
            self.fail(f"delayed tasks lost with the restore: {sorted(set(waiting) - {r[0] for r in rows})}")
        per_slot = {}
        for tid, origin_id, nominal, status, started in rows:
            self.assertEqual(status, "success", rows)
            if origin_id == job:
                per_slot.setdefault(int(nominal), []).append(tid)
                # a delayed run does not start before its slot + delay
                self.assertGreaterEqual(float(started) + 0.05, int(nominal) + DELAY, rows)
            else:
                self.assertGreaterEqual(float(started) + 0.05, waiting[tid].get("due", 0) / 1000.0, rows)
        self.assertEqual({t: v for t, v in per_slot.items() if len(v) != 1}, {},
                         "a slot's delayed run ran twice")
        for t in slots:
            self.assertIn(t, per_slot, f"slot {t}'s delayed run vanished")
        print(f"\nFIGURE restore with {len(waiting)} delayed task(s) waiting: all run once from the "
              f"journal ({self.reconciled('requeued_total')} queued again so far)", flush=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
