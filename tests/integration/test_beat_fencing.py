"""Beat fencing, end to end, on real redis-server + mariadbd + worker.

Promise 1 (exactly once per slot): two beats on one backend, the lease
holder SIGKILLed, the holder frozen past its lease (SIGSTOP/SIGCONT), Redis
restarted, MariaDB frozen: every slot of every job runs once, none twice,
and slots that could not run in their misfire grace are recorded `missed`.

Evidence is the task_record table the worker writes: one row per slot
(success / missed / skipped), keyed by the job id and the nominal time.
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Stack, have_binaries, wait_for  # noqa: E402

CODE = '''
@DFF.API('tick')
def tick(n=0):
    return n
'''


@unittest.skipUnless(have_binaries("tandem-beat", "tandem-server", "tandem-worker", "tandemctl"),
                     "needs a full build")
class BeatFencing(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="beatf").up()
        cls.st.push_script("fence__t", CODE)
        cls.extra = []  # Popen of beats this test started

    @classmethod
    def tearDownClass(cls):
        for p in cls.extra:
            if p.poll() is None:
                p.kill()
                p.wait()
        cls.st.down()

    # -- helpers -----------------------------------------------------------
    def start_beat(self, tag, *extra):
        with open(os.path.join(self.st.dir, "log", f"beat-{tag}.log"), "ab") as log:
            p = subprocess.Popen([os.path.join(BIN, "tandem-beat"), "-c", self.st.conf, *extra],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.extra.append(p)
        return p

    def beat_pids(self):
        """pids of live beats: the stack's and ours."""
        pids = []
        sp = self.st.pids().get("beat")
        if sp and os.path.exists(f"/proc/{sp}"):
            pids.append(int(sp))
        pids += [p.pid for p in self.extra if p.poll() is None]
        return pids

    def holder_pid(self):
        """pid of the beat whose heartbeat names the current lease."""
        lease = self.st.redis("GET", "tandem:beat:lease")
        if not lease:
            return None
        for pid in self.beat_pids():
            hb = self.st.redis("GET", f"tandem:hb:beat:local:{pid}")
            if hb and f'"lease":"{lease}"' in hb:
                return pid
        return None

    def add_job(self, expr="* * * * * *", **data):
        return self.st.add_cron_job("fence__t.tick", expr, **dict({"overlap": "allow"}, **data))

    def pause(self, job):
        self.st.set_cron_enabled(job, False)

    def slots(self, job):
        """{nominal unix s: [statuses]} from task_record."""
        rows = self.st.sql("SELECT FLOOR(UNIX_TIMESTAMP(nominal_at)), status FROM task_record "
                           f"WHERE origin_id = '{job}' AND nominal_at IS NOT NULL")
        out = {}
        for ts, status in rows:
            out.setdefault(int(ts), []).append(status)
        return out

    def assert_each_slot_once(self, job, t_from, t_to, allowed=("success",)):
        """Every whole second in [t_from, t_to] has exactly one record."""
        def complete():
            s = self.slots(job)
            return s if all(t in s for t in range(t_from, t_to + 1)) else None
        try:
            s = wait_for(complete, timeout=30, interval=0.5, what=f"records of {job}")
        except Exception:
            s = self.slots(job)
            missing = [t for t in range(t_from, t_to + 1) if t not in s]
            self.fail(f"{job}: {len(missing)} slot(s) without a record, e.g. {missing[:10]}")
        dups = {t: v for t, v in s.items() if len(v) > 1}
        self.assertEqual(dups, {}, f"{job}: slots recorded more than once")
        for t in range(t_from, t_to + 1):
            self.assertIn(s[t][0], allowed, f"{job}: slot {t} is {s[t][0]}")
        return s

    def stats(self):
        raw = self.st.redis("HGETALL", "tandem:stats:beat").splitlines()
        return {raw[i]: int(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}

    # -- tests -------------------------------------------------------------
    def test_1_two_beats_fire_each_slot_once(self):
        b2 = self.start_beat("two")
        jobs = [self.add_job() for _ in range(3)]
        t0 = int(time.time()) + 2
        # 60 s of two beats; every 5 s the lease is yanked so they trade it,
        # each change racing the old holder's next fire.
        end = time.time() + 62
        yanks = 0
        while time.time() < end:
            time.sleep(5)
            self.st.redis("DEL", "tandem:beat:lease")
            yanks += 1
        t1 = int(time.time()) - 2
        for j in jobs:
            self.pause(j)
        self.assertIsNone(b2.poll(), "second beat died")
        for j in jobs:
            self.assert_each_slot_once(j, t0, t1)
        st = self.stats()
        self.assertGreaterEqual(st.get("lease_takeovers_total", 0), 2)
        b2.terminate()
        b2.wait(10)

    def test_2_sigkill_of_the_holder_the_other_takes_over_and_catches_up(self):
        self.start_beat("kill")
        job = self.add_job()
        time.sleep(4)
        holder = wait_for(self.holder_pid, 10, 0.2, "a lease holder")
        old_lease = self.st.redis("GET", "tandem:beat:lease")
        t0 = int(time.time())
        os.kill(holder, signal.SIGKILL)
        killed_at = time.time()
        # the survivor holds the lease within the lease time (3 s) plus its
        # retry interval (0.5 s): watched on the lease key itself
        wait_for(lambda: self.st.redis("GET", "tandem:beat:lease") not in ("", old_lease), 8, 0.05,
                 "the other beat to take the lease")
        took = time.time() - killed_at
        self.assertLess(took, 4.5, f"takeover took {took:.1f} s")
        def new_holder():
            h = self.holder_pid()
            return h if h and h != holder else None
        nh = wait_for(new_holder, 5, 0.1, "the new holder's heartbeat")
        time.sleep(5)
        t1 = int(time.time()) - 2
        self.pause(job)
        # slots during the gap were caught up (fired late, within grace), once
        self.assert_each_slot_once(job, t0 - 2, t1)
        self.assertIsNotNone(nh)

    def test_3_frozen_holder_fires_nothing_stale(self):
        if len(self.beat_pids()) < 2:
            self.start_beat("freeze2")
        job = self.add_job()
        time.sleep(3)
        holder = wait_for(self.holder_pid, 10, 0.2, "a lease holder")
        t0 = int(time.time())
        os.kill(holder, signal.SIGSTOP)
        try:
            time.sleep(6)  # twice the lease
            other = self.holder_pid()
            self.assertIsNotNone(other)
            self.assertNotEqual(other, holder)
        finally:
            os.kill(holder, signal.SIGCONT)
        time.sleep(4)
        t1 = int(time.time()) - 2
        self.pause(job)
        self.assert_each_slot_once(job, t0, t1)
        logs = "".join(open(os.path.join(self.st.dir, "log", f), errors="replace").read()
                       for f in os.listdir(os.path.join(self.st.dir, "log")) if f.startswith("beat"))
        self.assertIn("lost the lease", logs)

    def test_4_slots_older_than_the_grace_are_recorded_missed(self):
        job = self.add_job(misfireGrace=2)
        time.sleep(2)
        pids = self.beat_pids()
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        t_stop = int(time.time())
        try:
            time.sleep(8)
        finally:
            for p in pids:
                os.kill(p, signal.SIGCONT)
        time.sleep(4)
        t1 = int(time.time()) - 2
        self.pause(job)
        s = self.assert_each_slot_once(job, t_stop - 1, t1, allowed=("success", "missed"))
        missed = [t for t in range(t_stop - 1, t1 + 1) if s[t][0] == "missed"]
        # 8 s frozen with a 2 s grace: at least 4 slots are too late to run
        self.assertGreaterEqual(len(missed), 4, s)
        row = self.st.sql(f"SELECT reason, message FROM task_record WHERE origin_id = '{job}' "
                          "AND status = 'missed' LIMIT 1")
        self.assertEqual(row[0][0], "ECronMissed")
        self.assertIn("misfire grace", row[0][1])
        self.assertGreater(self.stats().get("missed_total", 0), 0)

    def test_5_redis_restart_no_double_fire(self):
        job = self.add_job()
        time.sleep(3)
        pid = int(self.st.pids()["redis"])
        # as appliance/local starts it (redis rewrites its own cmdline)
        cmd = ["redis-server", "--port", "0", "--unixsocket", os.path.join(self.st.dir, "redis.sock"),
               "--unixsocketperm", "700", "--dir", self.st.dir, "--dbfilename", "redis.rdb",
               "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
               "--logfile", "", "--bind", "127.0.0.1"]
        t0 = int(time.time())
        os.kill(pid, signal.SIGTERM)  # flushes its append-only file on the way out
        wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20, 0.1, "redis to exit")
        time.sleep(2)
        with open(os.path.join(self.st.dir, "log", "redis.log"), "ab") as log:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        # appliance/local down stops what its pid file names
        pidfile = [f for f in os.listdir(os.path.join(self.st.dir, "pids")) if f.endswith("-redis.pid")][0]
        with open(os.path.join(self.st.dir, "pids", pidfile), "w") as f:
            f.write(f"{p.pid}\n")
        wait_for(lambda: self.st.redis("PING") == "PONG", 20, 0.2, "redis to answer")
        time.sleep(6)
        t1 = int(time.time()) - 2
        self.pause(job)
        self.assert_each_slot_once(job, t0, t1)

    def test_6_mariadb_frozen_beat_keeps_firing(self):
        job = self.add_job()
        time.sleep(3)
        before = self.stats().get("fired_total", 0)
        mpid = int(self.st.pids()["mariadb"])
        os.kill(mpid, signal.SIGSTOP)
        try:
            self.st.redis("INCR", "tandem:gen")  # the beat tries to reload and cannot
            time.sleep(6)
            during = self.stats().get("fired_total", 0)
        finally:
            os.kill(mpid, signal.SIGCONT)
        self.assertGreaterEqual(during - before, 4, "beat stopped firing while MariaDB was away")
        time.sleep(3)
        self.pause(job)

    def test_7_a_newer_epoch_fences_the_old_beats(self):
        job = self.add_job()
        time.sleep(2)
        t0 = int(time.time())
        stale = self.start_beat("epoch1", "--epoch", "1")
        new = self.start_beat("epoch5", "--epoch", "5")
        self.st.redis("SET", "tandem:epoch", "5")  # the promotion that started `new`
        wait_for(lambda: ":5:" in self.st.redis("GET", "tandem:beat:lease"), 10, 0.1,
                 "a beat with epoch 5 to hold the lease")
        time.sleep(5)
        t1 = int(time.time()) - 2
        self.pause(job)
        self.assert_each_slot_once(job, t0, t1)
        # the beat started with --epoch 1 never leads once epoch 5 exists
        self.assertNotIn(":1:", self.st.redis("GET", "tandem:beat:lease"))
        hb = self.st.redis("GET", f"tandem:hb:beat:local:{stale.pid}")
        self.assertIn('"leader":false', hb)
        self.assertIsNone(new.poll())


if __name__ == "__main__":
    unittest.main(verbosity=2)
