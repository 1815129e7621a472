"""The accept thread's retry after a broken connection queues no task twice
(issue 10's gap in the grouped enqueue).

The server's accept thread sends each batch of calls to Redis in one
pipeline. When the connection breaks with answers outstanding, Redis may
have run any part of the batch; the batch goes again on a fresh connection,
and that retry must skip what Redis already holds, or an accepted task
(async or sync) runs twice.

TANDEM_TEST_ENQUEUE_CUT=1 makes tandem-server's every first try send the
first half of its batch (at least one task), wait until Redis has run it,
and lose the connection without reading the answers. Every call therefore
goes through the retry; the first half of every batch is already in Redis
when it does (async: status key and stream entry; sync: stream entry only,
or the worker's outcome). Each call's func appends its number to a file:
every number must be there exactly once, every call answered 200, and
/metrics must show that the retry found tasks already in Redis.

Run: TANDEM_BUILD=build /usr/bin/python3 tests/integration/test_enqueue_retry.py
"""
import os
import sys
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, wait_for  # noqa: E402

ST = None
RUNS = None  # the file each run appends its number to

CODE = '''
import time

@DFF.API('Mark')
def mark(n=0, path=''):
    time.sleep(0.02)  # keeps sync entries in the stream while the retry looks
    with open(path, 'a') as f:
        f.write('%d\\n' % n)
    return n
'''


def setUpModule():
    global ST, RUNS
    os.environ["TANDEM_TEST_ENQUEUE_CUT"] = "1"
    try:
        ST = Stack(name="enqretry", workers=2).up()
    finally:
        del os.environ["TANDEM_TEST_ENQUEUE_CUT"]
    RUNS = os.path.join(ST.dir, "runs.txt")
    open(RUNS, "w").close()
    ST.push_script("t__retry", CODE)


def tearDownModule():
    if ST:
        ST.down()


def hammer(path, numbers, clients):
    """POST each number's call from `clients` threads at once; [(n, status, body)]."""
    todo = list(numbers)
    lock = threading.Lock()
    answers = []

    def run():
        while True:
            with lock:
                if not todo:
                    return
                n = todo.pop()
            status, body = ST.http("POST", path, {"kwargs": {"n": n, "path": RUNS}}, key=None)
            with lock:
                answers.append((n, status, body))

    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return answers


def runs():
    with open(RUNS) as f:
        return [int(x) for x in f.read().split()]


class EnqueueRetry(unittest.TestCase):
    def test_each_call_runs_once_after_a_connection_lost_mid_batch(self):
        aid = ST.create_async_api("t__retry.mark")
        sid = ST.create_sync_api("t__retry.mark")
        r0, f0 = ST.metric("tandem_server_accept_retried"), ST.metric("tandem_server_accept_retry_found")
        async_n, sync_n = range(1, 61), range(1001, 1031)
        got = {}
        ta = threading.Thread(target=lambda: got.setdefault("a", hammer(f"/api/v1/async/{aid}", async_n, 12)))
        ts = threading.Thread(target=lambda: got.setdefault("s", hammer(f"/api/v1/sync/{sid}", sync_n, 6)))
        ta.start()
        ts.start()
        ta.join()
        ts.join()
        self.assertEqual([a for a in got["a"] if a[1] != 200], [])
        self.assertEqual([a for a in got["s"] if a[1] != 200 or a[2] != a[0]], [])
        ids = [a[2]["data"]["id"] for a in got["a"]]
        for tid in ids:
            self.assertEqual(ST.wait_task(tid, timeout=60)["status"], "success", tid)
        # a second copy would be queued before the call was answered: once
        # the streams are empty, every copy has run
        wait_for(lambda: ST.redis("XLEN", "tandem:q:async") == "0"
                 and ST.redis("XLEN", "tandem:q:sync") == "0", 60, 0.2, what="empty queues")
        seen = [n for n in runs() if n < 2000]  # the delayed test's numbers are 2001..
        twice = sorted({n for n in seen if seen.count(n) > 1})
        self.assertEqual(twice, [], f"ran more than once: {twice}")
        self.assertEqual(sorted(seen), sorted(list(async_n) + list(sync_n)))
        retried = ST.metric("tandem_server_accept_retried") - r0
        found = ST.metric("tandem_server_accept_retry_found") - f0
        print(f"\n{len(seen)} calls: {retried:.0f} sent again after the cut, {found:.0f} of them "
              "already in Redis", file=sys.stderr)
        # every batch was cut, and the half Redis ran before the cut was found
        self.assertEqual(retried, len(async_n) + len(sync_n))
        self.assertGreaterEqual(found, (len(async_n) + len(sync_n)) / 2)
        self.assertIn("were already in Redis", ST.log("server"))

    def test_delayed_calls_are_queued_once_after_a_cut(self):
        """A direct call with options.delay goes to Pdelayed (a ZSET keyed
        by its JSON): the retry re-adds it there, where a second ZADD of
        the same member is no second task; each runs once, after its delay."""
        r0 = ST.metric("tandem_server_accept_retried")
        numbers = range(2001, 2021)
        answers = []
        lock = threading.Lock()

        def call(n):
            st, body = ST.http("POST", "/api/v1/func/t__retry.mark",
                               {"kwargs": {"n": n, "path": RUNS}, "options": {"delay": 2}})
            with lock:
                answers.append((n, st, body))

        ts = [threading.Thread(target=call, args=(n,)) for n in numbers]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual([a for a in answers if a[1] != 200], [])
        self.assertEqual(ST.metric("tandem_server_accept_retried") - r0, len(numbers))
        waiting = ST.redis("ZCARD", "tandem:delayed")
        self.assertEqual(waiting, str(len(numbers)), "Pdelayed holds each delayed call once")
        for a in answers:
            self.assertEqual(ST.wait_task(a[2]["data"]["id"], timeout=60)["status"], "success")
        seen = [n for n in runs() if n in numbers]
        self.assertEqual(sorted(seen), list(numbers), "each delayed call ran exactly once")


if __name__ == "__main__":
    unittest.main(verbosity=2)
