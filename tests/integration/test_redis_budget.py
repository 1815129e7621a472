"""What a call costs Redis (issue 14), counted on a real stack with INFO
commandstats (commands run inside Lua scripts count too):

- a sync call's status is written once, by the worker's commit (no
  "queued" SET at enqueue): SET calls per sync call stay near 1;
- the worker fetches its next task inside the commit script, so a sync call
  under load costs about one EVALSHA (it was two: commit, then fetch);
- the dispatcher takes outcomes with one BLMPOP per wake-up (no BLPOP and
  LPOP pair), and no EXPIRE rides on the pushes: the keeper gives the reply
  list of a server that is gone 60 s to live, and forgets the server;
- concurrent async calls are group-committed by the server's accept thread:
  fewer Redis pipelines than tasks, every task accepted, journaled and run
  (sync calls go through the same thread);
- a task Redis refuses (OOM) gets 503 EBackend, sync or async, and the
  accept thread keeps serving afterwards;
- idle children wait with one XREAD BLOCK a second each, without looking
  at the streams (no XREADGROUP, no XREVRANGE) between waits;
- at a low rate (one call at a time, every child idle and woken for each
  call) a call costs one XREADGROUP per child and no XREVRANGE: the look
  at 13 empty streams was 13 XREADGROUP + 13 XREVRANGE per child and call;
  and no script (the fetch after the wake and the commit were two).

Two yardsticks, printed side by side: (a) every command Redis ran, those
inside Lua scripts included (INFO commandstats), and (b) the commands
clients sent, i.e. round trips (a MONITOR sample, where commands run by a
script are marked "lua": EVALSHA counts 1).

Counts and ratios, not rates: they hold on a loaded machine. The totals
per call are printed for the record (bench/run measures them properly).

Run: TANDEM_BUILD=build /usr/bin/python3 tests/integration/test_redis_budget.py
"""
import os
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

ST = None
CALLS = 400
CLIENTS = 16

CODE = '''
@DFF.API('Echo')
def echo(x=None):
    return x
'''


def setUpModule():
    global ST
    ST = Stack(name="budget").up()
    ST.push_script("t__bud", CODE)


def tearDownModule():
    if ST:
        ST.down()


def commandstats():
    """{command: calls} from the stack's INFO commandstats."""
    return harness.commandstats(ST.redis("INFO", "commandstats"))


def monitor():
    return harness.Monitor(os.path.join(ST.dir, "redis.sock"))


def fmt(d):
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(d.items()) if v >= 0.01)


def hammer(path, n, clients):
    """n POSTs of path from `clients` threads; returns the answers."""
    answers, lock = [], threading.Lock()
    left = [n]

    def run():
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
                i = left[0]
            status, body = ST.http("POST", path, {"kwargs": {"x": i}}, key=None)
            with lock:
                answers.append((status, body))

    ts = [threading.Thread(target=run) for _ in range(clients)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return answers


def per_call(before, after, n):
    d = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)}
    d = {k: v / n for k, v in d.items() if v > 0}
    total = sum(v for k, v in d.items() if k not in ("info", "config|resetstat"))
    return d, total


class RedisBudget(unittest.TestCase):
    def test_1_sync_call_writes_its_status_once_and_fetches_inside_the_commit(self):
        sid = ST.create_sync_api("t__bud.echo")
        for a in hammer(f"/api/v1/sync/{sid}", 40, 4):  # warm: children, caches
            self.assertEqual(a[0], 200, a)
        t0, b0 = ST.metric("tandem_server_accept_tasks"), ST.metric("tandem_server_accept_batches")
        before = commandstats()
        t_start = time.monotonic()
        with monitor() as mon:
            answers = hammer(f"/api/v1/sync/{sid}", CALLS, CLIENTS)
            busy_s = time.monotonic() - t_start
            after = commandstats()
        # the same length of time without calls: the scripts others run
        # anyway (keeper, beat)
        with monitor() as idle:
            time.sleep(busy_s)
        self.assertEqual([a for a in answers if a[0] != 200], [])
        d, total = per_call(before, after, CALLS)
        c, sent, in_lua = mon.per_call(CALLS)
        tasks = ST.metric("tandem_server_accept_tasks") - t0
        batches = ST.metric("tandem_server_accept_batches") - b0
        print(f"\n{CALLS} sync calls from {CLIENTS} clients, Redis commands per call: "
              f"(a) all {total:.2f} ({fmt(d)}); (b) sent by clients {sent:.2f} ({fmt(c)}), "
              f"run by scripts {in_lua:.2f}; {tasks:.0f} enqueues in {batches:.0f} pipelines",
              file=sys.stderr)
        self.assertEqual(tasks, CALLS)  # every sync call went through the accept thread
        # one SET per call (the worker's status); the enqueue's "queued" SET
        # made it two
        self.assertLessEqual(d.get("set", 0), 1.1, d)
        # one commit script per call, fetching the next task itself (two
        # scripts before, commit then fetch): scripts clients sent per call,
        # less the fetches after an XREAD wake-up (at most one each) and
        # what runs anyway (idle window)
        scripts = c.get("evalsha", 0) + c.get("eval", 0) - c.get("xread", 0)
        ic = idle.per_call(CALLS)[0]
        background = ic.get("evalsha", 0) + ic.get("eval", 0) - ic.get("xread", 0)
        print(f"scripts per call beyond XREAD wake-ups {scripts:.2f}, of which background "
              f"{background:.2f} ({busy_s:.1f} s of calls)", file=sys.stderr)
        self.assertLessEqual(scripts - background, 1.4, (c, ic))
        # the reply list gets no EXPIRE per push (the keeper's sweep covers
        # the lists of servers that are gone: test_4)
        self.assertLess(d.get("expire", 0), 0.05, d)
        self.assertGreater(d.get("blmpop", 0), 0, d)
        self.assertNotIn("blpop", d)
        self.assertNotIn("lpop", d)

    def test_2_concurrent_async_calls_share_pipelines_and_all_run(self):
        aid = ST.create_async_api("t__bud.echo")
        t0, b0 = ST.metric("tandem_server_accept_tasks"), ST.metric("tandem_server_accept_batches")
        done0 = int(ST.redis("HGET", "tandem:stats:worker", "tasks") or 0)
        before = commandstats()
        answers = hammer(f"/api/v1/async/{aid}", CALLS, CLIENTS)
        after = commandstats()
        self.assertEqual([a for a in answers if a[0] != 200], [])
        ids = {a[1]["data"]["id"] for a in answers}
        self.assertEqual(len(ids), CALLS)
        tasks = ST.metric("tandem_server_accept_tasks") - t0
        batches = ST.metric("tandem_server_accept_batches") - b0
        print(f"\n{CALLS} async calls from {CLIENTS} clients: {tasks:.0f} tasks in "
              f"{batches:.0f} Redis pipelines ({tasks / max(batches, 1):.1f} per round trip); "
              f"XADD per call {per_call(before, after, CALLS)[0].get('xadd', 0):.2f}",
              file=sys.stderr)
        self.assertEqual(tasks, CALLS)
        # group commit: while one batch is in Redis/MariaDB the next gathers
        self.assertLess(batches, CALLS * 0.75)
        # accepted = journaled (or already pruned because recorded) and run
        wait_for(lambda: int(ST.redis("HGET", "tandem:stats:worker", "tasks") or 0) - done0 >= CALLS,
                 120, 0.2, what="every accepted task run")
        some = sorted(ids)[:5]
        for tid in some:
            self.assertEqual(ST.wait_task(tid)["status"], "success")

    def test_3_a_task_redis_refuses_gets_503_and_the_accept_thread_serves_on(self):
        aid = ST.create_async_api("t__bud.echo")
        sid = ST.create_sync_api("t__bud.echo")
        policy = ST.redis("CONFIG", "GET", "maxmemory-policy").split()[-1]
        ST.redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
        ST.redis("CONFIG", "SET", "maxmemory", "1")
        try:
            got = [ST.http("POST", f"/api/v1/{kind}/{i}", {"kwargs": {"x": 1}}, key=None)
                   for kind, i in (("async", aid), ("sync", sid))]
        finally:
            ST.redis("CONFIG", "SET", "maxmemory", "0")
            ST.redis("CONFIG", "SET", "maxmemory-policy", policy)
        for status, body in got:  # async: the accept thread's answer; sync: pending_fail's
            self.assertEqual(status, 503, body)
            self.assertEqual(body.get("reason"), "EBackend", body)
            self.assertIn("cannot enqueue", body.get("message", ""), body)
            self.assertIn("OOM", body.get("message", ""), body)
        d = ST.api("POST", f"/api/v1/async/{aid}", {"kwargs": {"x": 2}}, key=None)
        self.assertEqual(ST.wait_task(d["id"])["status"], "success")
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"x": 3}}, key=None)
        self.assertEqual((status, body), (200, 3))

    def test_4_the_reply_list_of_a_gone_server_expires_and_it_is_forgotten(self):
        # two servers that are gone: one left outcomes behind, one nothing
        ST.redis("SADD", "tandem:reply:servers", "ghost:1:aa", "ghost:2:bb")
        ST.redis("RPUSH", "tandem:reply:ghost:1:aa", '{"id":"task-x"}')
        wait_for(lambda: 0 < int(ST.redis("TTL", "tandem:reply:ghost:1:aa")) <= 60, 20, 0.5,
                 what="the keeper's EXPIRE on a gone server's reply list")
        wait_for(lambda: "ghost:2:bb" not in ST.redis("SMEMBERS", "tandem:reply:servers").split(),
                 20, 0.5, what="a gone server without a list forgotten")
        # the live server stays a member, and its list never gets a TTL
        live = [m for m in ST.redis("SMEMBERS", "tandem:reply:servers").split()
                if not m.startswith("ghost:")]
        self.assertEqual(len(live), 1, live)
        sid = ST.create_sync_api("t__bud.echo")
        self.assertEqual(ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"x": 5}}, key=None),
                         (200, 5))
        self.assertIn(ST.redis("TTL", f"tandem:reply:{live[0]}"), ("-1", "-2"))

    def test_5_idle_children_wait_without_looking(self):
        time.sleep(1.5)  # the last calls' children back in their XREAD BLOCK
        before = commandstats()
        with monitor() as mon:
            time.sleep(IDLE_S)
        after = commandstats()
        d = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        print(f"\nidle {IDLE_S} s, {ST.workers} children: (a) all commands "
              f"{fmt({k: v for k, v in d.items() if v})}; (b) sent by clients "
              f"{fmt(mon.client)}", file=sys.stderr)
        # each child: one XREAD BLOCK 1000 a second, then the next one
        # straight away (a fetch after a timeout was 13 XREADGROUP + 13
        # XREVRANGE + a script each)
        self.assertEqual(d.get("xreadgroup", 0), 0, d)
        self.assertEqual(d.get("xrevrange", 0), 0, d)
        self.assertLessEqual(mon.client.get("xread", 0), ST.workers * (IDLE_S + 1), mon.client)

    def test_6_one_call_at_a_time_costs_one_xreadgroup_per_child(self):
        sid = ST.create_sync_api("t__bud.echo")
        for a in hammer(f"/api/v1/sync/{sid}", 10, 1):
            self.assertEqual(a[0], 200, a)
        time.sleep(0.3)
        before = commandstats()
        with monitor() as mon:
            answers = hammer(f"/api/v1/sync/{sid}", SLOW_CALLS, 1)
            after = commandstats()
        self.assertEqual([a for a in answers if a[0] != 200], [])
        d, total = per_call(before, after, SLOW_CALLS)
        c, sent, in_lua = mon.per_call(SLOW_CALLS)
        print(f"\n{SLOW_CALLS} sync calls one at a time, {ST.workers} children, Redis commands "
              f"per call: (a) all {total:.2f} ({fmt(d)}); (b) sent by clients {sent:.2f} "
              f"({fmt(c)}), run by scripts {in_lua:.2f}", file=sys.stderr)
        # every idle child wakes for the call and tries the one stream it
        # woke for, nothing else; the winner's next fetch is one XREAD look
        self.assertLessEqual(d.get("xreadgroup", 0), ST.workers + 0.3, d)
        self.assertLess(d.get("xrevrange", 0), 0.1, d)
        self.assertLessEqual(d.get("xread", 0), ST.workers + 1.3, d)
        # no script on a call's way: after the wake-up for one stream the
        # fetch is a plain XREADGROUP, and the commit tries sync by another
        # and, finding it empty, the child goes to its XREAD BLOCK (the
        # fetch script, then the commit script that looked at all 13
        # streams, made it two a call); what is left is the beat's and the
        # keeper's
        self.assertLess(c.get("evalsha", 0) + c.get("eval", 0), 0.5, c)


IDLE_S = 4
SLOW_CALLS = 60

if __name__ == "__main__":
    unittest.main(verbosity=2)
