"""Which task a worker child takes next (issue 8 queues, issue 10 defects 9
and 10): DFF's numbered queues are streams of their own and a worker serves
only its worker.queues; sync load cannot starve cron or async; a child
claims one entry at a time, so none waits claimed behind a long task.

The stack's own worker is replaced by one this module starts (one child,
queues sync, cron, async and 5: not 7), so what runs where is exact."""
import json
import os
import re
import signal
import subprocess
import sys
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Stack, commandstats, have_binaries, wait_for  # noqa: E402
from resp import Redis  # noqa: E402

CODE = r'''
import time

@DFF.API('Nap', timeout=30)
def nap(s=0.0, tag=''):
    time.sleep(s)
    return tag
'''

P = "tandem:"


def task(queue, s=0.0, tag="", reply="", origin="func"):
    tid = "task-" + uuid.uuid4().hex
    return tid, json.dumps({"id": tid, "func": "demo__q.nap", "kwargs": {"s": s, "tag": tag},
                            "origin": origin, "origin_id": "", "timeout": 30, "reply": reply,
                            "queue": queue, "enq": int(time.time() * 1000), "epoch": 0, "ver": 0})


@unittest.skipUnless(have_binaries("tandem-server", "tandem-worker", "tandemctl"), "not built")
class WorkerQueues(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="wqueues", workers=1).up()
        cls.st.push_script("demo__q", CODE)
        # Replace the stack's worker by one serving every queue but 7.
        os.kill(cls.st.pids()["worker"], signal.SIGTERM)
        with open(cls.st.conf) as f:
            conf = f.read()
        conf, n = re.subn(r"worker = \{[^}]*\};",
                          'worker = { children = 1; queues = ["sync", "cron", "async", "5"]; };', conf)
        assert n == 1, conf
        cls.conf = os.path.join(cls.st.dir, "queues.conf")
        with open(cls.conf, "w") as f:
            f.write(conf)
        cls.log = open(os.path.join(cls.st.dir, "log", "worker-queues.log"), "w")
        cls.worker = subprocess.Popen([os.path.join(BIN, "tandem-worker"), "-c", cls.conf],
                                      stdout=cls.log, stderr=cls.log)
        cls.r = Redis(os.path.join(cls.st.dir, "redis.sock"))

        def one_child():
            hbs = [json.loads(cls.r.cmd("GET", k) or "null") for k in cls.r.cmd("SMEMBERS", P + "hb:worker")]
            return any(h and h["pid"] == cls.worker.pid and h["children"] == 1 for h in hbs)
        wait_for(one_child, 30, what="the module's worker to have its child up")

    @classmethod
    def tearDownClass(cls):
        cls.worker.terminate()
        try:
            cls.worker.wait(30)
        except subprocess.TimeoutExpired:
            cls.worker.kill()
        cls.log.close()
        cls.r.close()
        cls.st.down()

    def add(self, queue, **kw):
        tid, t = task(queue, **kw)
        self.r.cmd("XADD", P + "q:" + queue, "*", "t", t)
        return tid

    def status(self, tid):
        s = self.r.cmd("GET", P + "task:" + tid)
        return json.loads(s) if s else None

    def wait_done(self, tids, timeout=60):
        def done():
            st = [self.status(t) for t in tids]
            return st if all(s and s["status"] not in ("queued", "running") for s in st) else None
        return wait_for(done, timeout, 0.05, f"{len(tids)} tasks to finish")

    def ensure_group(self, queue):
        try:
            self.r.cmd("XGROUP", "CREATE", P + "q:" + queue, "workers", "0", "MKSTREAM")
        except Exception:
            pass  # BUSYGROUP

    def test_a_numbered_queue_runs_only_where_it_is_served(self):
        self.ensure_group("7")
        t7 = self.add("7", tag="seven")
        t5 = self.add("5", tag="five")
        s5 = self.wait_done([t5], 20)[0]
        self.assertEqual(s5["status"], "success", s5)
        self.assertEqual(s5["result"], "five")
        self.assertEqual(s5["queue"], "5")
        time.sleep(1.5)  # a worker serving 7 would have taken it by now
        self.assertIsNone(self.status(t7))
        self.assertEqual(self.r.cmd("XLEN", P + "q:7"), 1)
        groups = self.r.cmd("XINFO", "GROUPS", P + "q:7")
        g = dict(zip(groups[0][::2], groups[0][1::2]))
        self.assertEqual(g["pending"], 0, g)  # nobody claimed it
        hb = [json.loads(self.r.cmd("GET", k) or "null") for k in self.r.cmd("SMEMBERS", P + "hb:worker")]
        mine = [h for h in hb if h and h["pid"] == self.worker.pid]
        self.assertEqual(mine[0]["queues"], ["sync", "cron", "async", "5"])
        self.r.cmd("DEL", P + "q:7")

    def test_b_sync_load_does_not_starve_cron_or_async(self):
        blocker = self.add("sync", s=1.0, tag="blocker", reply="nobody")
        wait_for(lambda: (self.status(blocker) or {}).get("status") == "running" or
                 self.r.cmd("XINFO", "GROUPS", P + "q:sync")[0][5] == 1, 10, 0.02, "the blocker to start")
        syncs = [self.add("sync", s=0.05, tag=f"s{i}", reply="nobody") for i in range(30)]
        cron = self.add("cron", tag="cron", origin="cron")
        asyn = self.add("async", tag="async")
        self.wait_done([blocker, cron, asyn] + syncs, 60)
        starts = sorted((self.status(t)["start"], t) for t in syncs + [cron, asyn])
        rank = {t: i for i, (_, t) in enumerate(starts)}
        # Strict sync-first would run both after all 30 sync tasks.
        self.assertLess(rank[cron], 10, rank[cron])
        self.assertLess(rank[asyn], 15, rank[asyn])

    def test_c_a_child_never_holds_an_entry_it_is_not_running(self):
        """Entries land on three streams at once just as the idle child
        goes back to waiting: it must claim one, not one per stream (a
        claimed entry waiting behind a long task is re-queued by XAUTOCLAIM
        and runs twice)."""
        worst = 0
        for i in range(40):
            first = self.add("sync", s=0.0, tag="lead", reply="qtest")
            self.r.cmd("BLPOP", P + "reply:qtest", 10)
            if i % 4:
                time.sleep((i % 4) * 0.0003)
            burst = []
            for q in ("sync", "cron", "async"):
                tid, t = task(q, s=0.15, tag=q)
                burst.append(tid)
                self.r.cmd("XADD", P + "q:" + q, "*", "t", t)
            time.sleep(0.05)
            for q in ("sync", "cron", "async"):
                p = self.r.cmd("XPENDING", P + "q:" + q, "workers")
                worst = max([worst] + [int(c[1]) for c in (p[3] or [])])
            total = sum(self.r.cmd("XPENDING", P + "q:" + q, "workers")[0] for q in ("sync", "cron", "async"))
            self.assertLessEqual(total, 1, f"round {i}: {total} entries claimed by one child")
            self.wait_done([first] + burst, 20)
        self.assertLessEqual(worst, 1)

    def test_d_a_dead_consumers_entry_on_a_numbered_queue_is_requeued(self):
        self.ensure_group("5")
        tid, t = task("5", tag="orphaned")
        # Added and claimed at once (MULTI) by a consumer no heartbeat knows,
        # as if its worker had been killed right after: our idle child must
        # not get it first.
        rep = self.r.pipeline([("MULTI",), ("XADD", P + "q:5", "*", "t", t),
                               ("XREADGROUP", "GROUP", "workers", "ghost-node:424242", "COUNT", "1",
                                "STREAMS", P + "q:5", ">"), ("EXEC",)])
        self.assertTrue(rep[3] and rep[3][1], f"the ghost consumer claimed nothing: {rep!r}")
        st = self.wait_done([tid], 30)[0]  # keeper pass every 5 s, idle >= 3 s
        self.assertEqual(st["status"], "success", st)
        self.assertEqual(st["result"], "orphaned")

    def calls(self):
        """{command: calls} from INFO commandstats."""
        return commandstats(self.r.cmd("INFO", "commandstats"))

    def test_e_a_busy_async_stream_costs_no_look_per_task_and_sync_still_goes_first(self):
        """With async entries waiting and sync empty, a task's commit tries
        sync then async in a two-command script (issue 14): the commit
        script that looked at all 13 streams ran once per task. A sync
        entry added meanwhile is still taken at the next commit."""
        n = 300
        tids = []
        cmds = []
        for i in range(n):
            tid, t = task("async", s=0.002, tag=f"a{i}")
            tids.append(tid)
            cmds.append(("XADD", P + "q:async", "*", "t", t))
        before = self.calls()
        self.r.pipeline(cmds)
        # the child is busy with the async stream: now a sync task
        wait_for(lambda: sum(1 for t in tids[:40] if self.status(t)) >= 20, 20, 0.005,
                 "the child to be through 20 async tasks")
        added = time.time()
        stid = self.add("sync", tag="sync", reply="nobody")
        self.wait_done(tids + [stid], 60)
        after = self.calls()
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        looks = d.get("evalsha", 0) / n  # the commit and fetch scripts
        print(f"\n{n} async tasks on one child: per task evalsha {looks:.2f}, "
              f"eval {d.get('eval', 0) / n:.2f}, xread {d.get('xread', 0) / n:.2f}", file=sys.stderr)
        self.assertLess(looks, 0.6, d)  # was one or more per task
        self.assertLess(d.get("xread", 0) / n, 0.6, d)
        # the sync task started before all but at most two async tasks that
        # were still waiting when it came
        s_start = self.status(stid)["start"]
        waiting = [t for t in tids if self.status(t)["start"] >= added * 1000 - 5]
        ahead = [t for t in waiting if self.status(t)["start"] < s_start]
        self.assertGreater(len(waiting), 20, "the async stream ran dry before the sync task came")
        self.assertLessEqual(len(ahead), 2, f"{len(ahead)} async tasks ran before the sync task")


if __name__ == "__main__":
    unittest.main()
