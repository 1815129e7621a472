"""Idle worker children take turns to wait on the queues (issue 14,
worker_listen.c): one new entry wakes one child, not all of them, and no
entry is left behind by the ids one child hands to the next.

Before, every idle child blocked in its own XREAD, so with three children
one sync call cost three wakeups, three fetch scripts and three new XREADs.
Redis's own command counts show which: XREAD calls (the blocking wait plus
the look inside a fetch script) per sync call, made one at a time."""
import os
import random
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, commandstats  # noqa: E402

CODE = '''
@DFF.API("echo")
def echo(n=0):
    return n
'''


def calls(info, cmd):
    return commandstats(info).get(cmd, 0)


class IdleTurn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="wturn", workers=3).up()
        cls.sapi = cls.st.deploy("turn__main", CODE, "echo")
        cls.aapi = cls.st.create_async_api("turn__main.echo")
        for i in range(5):  # every child has its interpreter and script
            cls.st.api("POST", f"/api/v1/sync/{cls.sapi}", {"kwargs": {"n": i}})

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def test_a_one_call_at_a_time_wakes_one_child(self):
        st = self.st
        n = 60
        time.sleep(1.5)  # every child idle, each in its wait
        st.redis("CONFIG", "RESETSTAT")
        for i in range(n):
            r = st.api("POST", f"/api/v1/sync/{self.sapi}", {"kwargs": {"n": i}})
            self.assertEqual(r, i)
            time.sleep(0.01)  # the children go idle between calls
        info = st.redis("INFO", "commandstats")
        xread, fetch = calls(info, "xread"), calls(info, "evalsha")
        print(f"\n3 idle children, {n} sync calls one at a time: {xread / n:.2f} XREAD and "
              f"{fetch / n:.2f} EVALSHA per call", file=sys.stderr)
        # one wait that wakes and the look in a fetch or commit script; the
        # three children of the old way made 3 waits and 3 fetches a call
        self.assertLess(xread / n, 2.6, info)
        self.assertLess(fetch / n, 2.6, info)

    def test_b_bursts_from_many_callers_leave_no_entry_behind(self):
        # callers come and go at random, so children go idle and busy and
        # the turn changes hands all the time; an entry skipped by the ids
        # handed over would wait for the 60 s id reset (or until the call's
        # timeout): every call must come back soon
        st = self.st
        rnd = random.Random(14)
        slow = []
        errors = []

        def caller(k):
            r = random.Random(k)
            for i in range(40):
                t0 = time.monotonic()
                status, body = st.http("POST", f"/api/v1/sync/{self.sapi}", {"kwargs": {"n": i}})
                took = time.monotonic() - t0
                if status != 200:
                    errors.append((status, body))
                elif took > 3:
                    slow.append(took)
                time.sleep(r.choice((0, 0, 0.002, 0.02, 0.1)))

        threads = [threading.Thread(target=caller, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        ids = []
        for i in range(60):  # async calls meanwhile: another stream to wake for
            ids.append(st.api("POST", f"/api/v1/async/{self.aapi}", {"kwargs": {"n": i}})["id"])
            time.sleep(rnd.choice((0, 0.01, 0.05)))
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(slow, [], "sync calls that waited more than 3 s")
        t0 = time.monotonic()
        for tid in ids:
            self.assertEqual(st.wait_task(tid, timeout=10)["status"], "success")
        self.assertLess(time.monotonic() - t0, 10)


if __name__ == "__main__":
    unittest.main(verbosity=2)
