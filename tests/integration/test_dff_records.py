"""DFF's delayed cron runs, request/eta/delay variables and task-record
fields (issues 8 and 9): a func with delayed_cron_job makes one run per
delay for every fired slot, exactly once; a function called through a Sync
API sees _DFF_HTTP_REQUEST (credentials masked); a delayed call sees
_DFF_ETA/_DFF_DELAY; task records keep kwargs, return value (capped), call
chain, root task and trigger time, and the read paths answer them under
DFF's names."""

import collections
import datetime
import json
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, Stack, have_binaries, wait_for  # noqa: E402

SCRIPT = "dffc__records"


class DFFRecordsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker", "tandem-beat"):
            raise unittest.SkipTest("binaries not built")
        cls.st = Stack(workers=2, name="dffrec").up()
        with open(os.path.join(SRC, "tests", "dff-scripts", SCRIPT + ".py")) as f:
            cls.st.push_script(SCRIPT, f.read())

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def records(self, func, cols):
        return self.st.sql(f"SELECT {cols} FROM task_record WHERE func_id = '{SCRIPT}.{func}' "
                           "ORDER BY seq")

    # ---- delayed cron runs ----------------------------------------------------------
    def test_delayed_cron_runs_once_per_slot_and_delay(self):
        jobs = [self.st.add_cron_job(f"{SCRIPT}.{f}", "* * * * * *")
                for f in ("tick_at_and_after", "tick_after")]
        try:
            wait_for(lambda: len(self.records("tick_after", "id")) >= 6, 40, 0.3,
                     "delayed runs of tick_after")
        finally:
            for j in jobs:
                self.st.delete_cron_job(j)
        # the runs already waiting in the delayed zset still run (once)
        wait_for(lambda: self.st.redis("ZCARD", "tandem:delayed") == "0", 20, 0.2,
                 "the delayed zset to drain")
        time.sleep(1.5)  # the last moved runs finish and their records flush
        for func, delays in (("tick_at_and_after", [0, 2]), ("tick_after", [1, 2])):
            rows = self.records(func, "UNIX_TIMESTAMP(nominal_at), UNIX_TIMESTAMP(started_at), "
                                      "status, return_value_json, UNIX_TIMESTAMP(trigger_at)")
            self.assertTrue(rows, func)
            per_slot = collections.defaultdict(list)
            for nominal, started, status, rv, trig in rows:
                self.assertEqual(status, "success", (func, rows))
                v = json.loads(rv)
                slot = int(float(nominal))
                self.assertEqual(v["cron_job_delay"], v["delay"])
                self.assertEqual(v["trigger"], slot)          # _DFF_TRIGGER_TIME = the slot
                self.assertEqual(int(float(trig)), slot)      # the record's trigger time too
                # a delayed run does not start before slot + delay
                self.assertGreaterEqual(float(started) + 0.05, slot + v["delay"], (func, v))
                per_slot[slot].append(v["delay"])
            for slot, got in per_slot.items():
                # exactly once per slot and delay: never a duplicate, never a missing run
                self.assertEqual(sorted(got), delays, (func, slot, dict(per_slot)))
            fired = [s for s in per_slot
                     if self.st.redis("HGET", f"tandem:fired:{s}", jobs[0 if delays[0] == 0 else 1])]
            self.assertEqual(len(fired), len(per_slot), func)
        self.assertEqual(self.records("tick_at_and_after", "COUNT(*)")[0][0],
                         str(2 * len({r[0] for r in self.records("tick_at_and_after",
                                                                 "nominal_at")})))

    def test_delayed_cron_runs_once_while_two_beats_trade_the_lease(self):
        with open(os.path.join(self.st.dir, "log", "beat-two.log"), "ab") as log:
            b2 = subprocess.Popen([os.path.join(BIN, "tandem-beat"), "-c", self.st.conf],
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  start_new_session=True)
        try:
            job = self.st.add_cron_job(f"{SCRIPT}.tick_at_and_after", "* * * * * *", overlap="allow")
            t0 = int(time.time()) + 1
            # the lease is yanked every 2 s, each change racing the old
            # holder's next fire; a slot fired twice would enqueue its
            # delayed run twice
            for _ in range(4):
                time.sleep(2)
                self.st.redis("DEL", "tandem:beat:lease")
            t1 = int(time.time()) - 1
            self.st.set_cron_enabled(job, False)
            self.assertIsNone(b2.poll(), "the second beat died")
        finally:
            b2.terminate()
            b2.wait(10)

        def per_slot():
            out = collections.defaultdict(list)
            for nominal, rv in self.st.sql(
                    "SELECT FLOOR(UNIX_TIMESTAMP(nominal_at)), return_value_json FROM task_record "
                    f"WHERE origin_id = '{job}'"):
                out[int(nominal)].append(json.loads(rv)["delay"] if rv else None)
            return out if all(len(out.get(t, [])) >= 2 for t in range(t0, t1 + 1)) else None
        got = wait_for(per_slot, 30, 0.5, "both runs of every slot")
        time.sleep(1)
        got = per_slot()
        # the window's slots: one fired between t1 and the PATCH may still
        # have its +2 s run to come
        self.assertEqual({t: sorted(v) for t, v in got.items()
                          if t0 <= t <= t1 and sorted(v) != [0, 2]}, {},
                         "slots with a run missing or twice")
        self.assertEqual({t: v for t, v in got.items() if len(v) > len(set(v))}, {},
                         "a run twice outside the window")

    def test_bad_delayed_cron_job_is_refused_at_publish(self):
        for opt, want in (("[-1]", "delays in seconds"), ("['5']", "should be int"),
                          ("list(range(61))", "at most 60")):
            code = "@DFF.API('t', delayed_cron_job=%s)\ndef f():\n    return 1\n" % opt
            self.st.push_script("dffc__badrec", code, publish=False)
            status, r = self.st.http("POST", "/api/v1/scripts/dffc__badrec/do/publish", timeout=60)
            self.assertEqual(status, 400, (opt, r))
            self.assertIn(want, r["message"], opt)

    # ---- _DFF_HTTP_REQUEST, _DFF_ETA, _DFF_DELAY ------------------------------------
    def test_sync_api_func_sees_the_http_request_without_credentials(self):
        sapi = self.st.create_sync_api(f"{SCRIPT}.req_info")
        status, r = self.st.http("GET", f"/api/v1/sync/{sapi}/simplified?x=7&y=z",
                                 headers={"X-Probe": "p1", "Cookie": "sid=secret"})
        self.assertEqual(status, 200, r)
        req = r["req"]
        self.assertEqual(req["method"], "GET")
        self.assertEqual(req["url"], f"/api/v1/sync/{sapi}/simplified")
        self.assertEqual(req["query"], {"x": "7", "y": "z"})
        self.assertEqual(req["headers"]["x-probe"], "p1")
        self.assertEqual(req["headers"]["authorization"], "*****")
        self.assertEqual(req["headers"]["cookie"], "*****")
        self.assertNotIn(self.st.key, json.dumps(req))
        self.assertEqual(req["ip"], "127.0.0.1")
        # Express's other fields, as DFF passes them
        self.assertEqual((req["hostname"], req["protocol"], req["ips"], req["xhr"]),
                         ("127.0.0.1", "http", [], False))
        self.assertEqual(req["host"].split(":")[0], "127.0.0.1")
        self.assertIsNone(r["eta"])
        self.assertEqual(r["delay"], 0)
        # a POST body is there too
        status, r = self.st.http("POST", f"/api/v1/sync/{sapi}", {"kwargs": {"x": 1}})
        self.assertEqual(status, 200, r)
        self.assertEqual((r["req"]["method"], r["req"]["body"]), ("POST", {"kwargs": {"x": 1}}))

    def test_direct_call_with_delay_or_eta_sees_them(self):
        path = f"/api/v1/func/{SCRIPT}.req_info"
        status, r = self.st.http("POST", path, {"kwargs": {"x": 1}, "options": {"delay": 1}})
        self.assertEqual(status, 200, r)
        t0 = time.time()
        v = self.st.wait_task(r["data"]["id"], 30)["result"]
        self.assertGreaterEqual(time.time() - t0, 0.3)
        self.assertEqual((v["delay"], v["eta"]), (1, None))
        self.assertEqual(v["req"]["method"], "POST")
        self.assertEqual(v["req"]["body"]["options"], {"delay": 1})
        eta = (datetime.datetime.now(datetime.timezone.utc) +
               datetime.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        status, r = self.st.http("POST", path, {"kwargs": {}, "options": {"eta": eta}})
        self.assertEqual(status, 200, r)
        v = self.st.wait_task(r["data"]["id"], 30)["result"]
        self.assertEqual((v["eta"], v["delay"]), (eta, 0))
        # a plain call has neither
        v = self.st.api("POST", path, {"kwargs": {}})["result"]
        self.assertEqual((v["eta"], v["delay"]), (None, 0))

    # ---- task records ----------------------------------------------------------------
    def test_timeout_record_keeps_the_kwargs(self):
        # the child is killed: the master writes the record, and reads the
        # kwargs back from the task's stream entry
        status, r = self.st.http("POST", f"/api/v1/func/{SCRIPT}.too_slow", {"kwargs": {"n": 7}})
        self.assertEqual((status, r["reason"]), (599, "EFuncTimeout"), r)
        rows = wait_for(lambda: self.records("too_slow", "status, kwargs_json, root_task_id") or None,
                        30, 0.2, "the timeout record")
        status, kwargs, root = rows[-1]
        self.assertEqual(status, "timeout")
        self.assertEqual(json.loads(kwargs), {"n": 7})
        self.assertEqual(root, "ROOT")

    def test_task_records_keep_kwargs_result_chain_root_and_trigger(self):
        d = self.st.api("POST", f"/api/v1/func/{SCRIPT}.chain_root", {"kwargs": {"n": 5}})
        root = d["id"]
        rows = wait_for(lambda: self.records("chain_leaf", "id") or None, 30, 0.2, "the leaf record")
        leaf = rows[-1][0]
        wait_for(lambda: self.records("chain_root", "id") or None, 30, 0.2, "the root record")

        def listed(func):
            d = self.st.api("GET", f"/api/v1/task-records/do/list?funcId={SCRIPT}.{func}")
            return d[0]
        lr, rr = listed("chain_leaf"), listed("chain_root")
        self.assertEqual(lr["id"], leaf)
        self.assertEqual(lr["rootTaskId"], root)
        self.assertEqual(json.loads(lr["callChainJSON"]),
                         [f"{SCRIPT}.chain_root", f"{SCRIPT}.chain_leaf"])
        self.assertEqual(json.loads(lr["funcCallKwargsJSON"]), {"n": 5, "who": "root"})
        self.assertEqual(json.loads(lr["returnValueJSON"]), {"n": 5, "who": "root", "root": root})
        self.assertLessEqual(lr["triggerTimeMs"], lr["startTimeMs"])
        self.assertEqual(rr["rootTaskId"], "ROOT")  # DFF's value for a task nobody called
        self.assertEqual(json.loads(rr["callChainJSON"]), [f"{SCRIPT}.chain_root"])
        self.assertEqual(json.loads(rr["returnValueJSON"]), "called")
        # DFF's filter for a chain: the root task itself and its subtasks
        sub = self.st.api("GET", f"/api/v1/task-records/do/list?rootTaskId={root}")
        self.assertEqual(sorted(x["id"] for x in sub), sorted([root, leaf]))

        # /api/v1/tasks/<id> from the record once the Redis status is gone
        self.st.redis("DEL", f"tandem:task:{leaf}")
        t = self.st.api("GET", f"/api/v1/tasks/{leaf}")
        self.assertEqual(t["kwargs"], {"n": 5, "who": "root"})
        self.assertEqual(t["result"], {"n": 5, "who": "root", "root": root})
        self.assertEqual(t["root_task_id"], root)
        self.assertEqual(t["call_chain"], [f"{SCRIPT}.chain_root", f"{SCRIPT}.chain_leaf"])
        self.assertTrue(t["trigger_at"])

    def test_records_keep_cron_expr_delay_timeout_and_expires(self):
        # DFF's cronExpr, delay, timeout and expires (migration 011)
        def listed(**q):
            qs = "&".join(f"{k}={v}" for k, v in q.items())
            return self.st.api("GET", f"/api/v1/task-records/do/list?{qs}")

        path = f"/api/v1/func/{SCRIPT}.req_info"
        timed = self.st.api("POST", path, {"kwargs": {"x": "t"},
                                           "options": {"async": True, "timeout": 17, "expires": 40}})
        delayed = self.st.api("POST", path, {"kwargs": {"x": "d"}, "options": {"delay": 1}})
        plain = self.st.api("POST", path, {"kwargs": {"x": "p"}})["id"]
        job = self.st.add_cron_job(f"{SCRIPT}.req_info", "*/2 * * * * *")
        try:
            cron = wait_for(lambda: listed(originId=job), 30, 0.3, "a record of the cron job")
        finally:
            self.st.delete_cron_job(job)
        self.assertEqual(cron[0]["cronExpr"], "*/2 * * * * *")
        self.assertEqual(cron[0]["origin"], "cronJob")

        for tid in (timed["id"], delayed["id"]):
            self.st.wait_task(tid, 30)
        recs = wait_for(lambda: (lambda d: d if len(d) == 3 else None)(
            listed(id=",".join((timed["id"], delayed["id"], plain)))), 30, 0.2, "the three records")
        by_id = {r["id"]: r for r in recs}
        t, d, p = by_id[timed["id"]], by_id[delayed["id"]], by_id[plain]
        self.assertEqual((t["timeout"], t["expires"], t["delay"], t["cronExpr"]), (17, 40, 0, None))
        self.assertEqual(d["delay"], 1)
        self.assertGreaterEqual(d["startTimeMs"] - d["triggerTimeMs"], 500)
        self.assertGreater(p["timeout"], 0)
        self.assertEqual(p["delay"], 0)
        # a sync call starts within its timeout or not at all: that is its expiry
        self.assertEqual(p["expires"], p["timeout"])
        # /api/v1/tasks/<id> under the same names, from Redis and from the record
        got = self.st.api("GET", f"/api/v1/tasks/{timed['id']}")
        self.assertEqual((got["timeout"], got["expires"], got["delay"]), (17, 40, 0))
        self.st.redis("DEL", f"tandem:task:{timed['id']}")
        got = self.st.api("GET", f"/api/v1/tasks/{timed['id']}")
        self.assertEqual((got["timeout"], got["expires"], got["delay"], got["cronExpr"]),
                         (17, 40, 0, None))

    def test_huge_return_value_is_cut_in_the_record_not_in_the_answer(self):
        n = 300000
        v = self.st.api("POST", f"/api/v1/func/{SCRIPT}.big", {"kwargs": {"n": n}})["result"]
        self.assertEqual(len(v), n)  # the caller gets all of it
        rows = wait_for(lambda: self.records("big", "LENGTH(return_value_json), return_value_json")
                        or None, 30, 0.2, "the record of big")
        length, text = rows[-1]
        self.assertLessEqual(int(length), 64 * 1024)
        self.assertIn("...[cut: %d bytes in all]" % (n + 2), text)
        # the keeper kept writing: a later record goes in too
        self.st.api("POST", f"/api/v1/func/{SCRIPT}.big", {"kwargs": {"n": 3}})
        wait_for(lambda: [r for r in self.records("big", "return_value_json") if r[0] == '"vvv"'],
                 30, 0.2, "the small record")


if __name__ == "__main__":
    unittest.main()
