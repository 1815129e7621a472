"""Cron jobs end to end: tandemctl cron, the cron-jobs HTTP API, fixed_cron_expr
on publish, run now, overlap, pause (per job and global), expiry, delayed
tasks, and bad input (refused with the field and reason, or recorded while
every other job keeps firing). Real redis-server, mariadbd, worker, beat."""

import json
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, have_binaries, wait_for  # noqa: E402

CODE = '''
import time

@DFF.API('tick')
def tick(n=0):
    return n

@DFF.API('slow')
def slow(s=3):
    time.sleep(s)
    return s

@DFF.API('gone')
def gone():
    return 1

@DFF.API('fixed', fixed_cron_expr='*/2 * * * * *')
def fixed():
    return 'fixed'
'''

DFF_CRON_CODE = r'''
@DFF.API('fixed', fixed_cron_expr='*/2 * * * * *')
def fixed(who):
    return 'fixed ' + who

@DFF.API('auto', integration='autoRun', integration_config={'crontab': '* * * * *'})
def auto():
    return 'auto'
'''


@unittest.skipUnless(have_binaries("tandem-beat", "tandem-server", "tandem-worker", "tandemctl"),
                     "needs a full build")
class BeatApi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="beata").up()
        cls.st.push_script("cj__t", CODE)

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def job(self, expr="* * * * * *", func="cj__t.tick", **data):
        """Adds a job (DFF's cron-jobs/do/add); returns it as do/get answers."""
        return self.st.cron_job(self.st.add_cron_job(func, expr, **data))

    def records(self, job, status=None):
        q = f"SELECT status, reason, message FROM task_record WHERE origin_id = '{job}'"
        if status:
            q += f" AND status = '{status}'"
        return self.st.sql(q)

    def stats(self):
        raw = self.st.redis("HGETALL", "tandem:stats:beat").splitlines()
        return {raw[i]: int(raw[i + 1]) for i in range(0, len(raw) - 1, 2)}

    def test_cron_next_offline_prints_iso_with_offset(self):
        p = self.st.ctl("cron", "next", "30 2 * * *", "--tz", "Europe/Berlin",
                        "--from", "2026-03-27T12:00:00Z", "--count", "3", conf=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        # DFF's rule (croniter): 02:30 does not exist on 2026-03-29, no fire that day.
        self.assertEqual(p.stdout.split(), ["2026-03-28T02:30:00+01:00", "2026-03-30T02:30:00+02:00",
                                            "2026-03-31T02:30:00+02:00"])
        p = self.st.ctl("cron", "next", "0 25 * * *", conf=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("hour field", p.stderr)
        self.assertIn("out of range 0-23", p.stderr)

    def test_bad_jobs_are_refused_naming_field_and_reason(self):
        cases = [
            ({"cronExpr": "*/0 * * * *"}, "cronExpr", "step 0"),
            ({"cronExpr": "* * * * MOON"}, "cronExpr", "day-of-week field"),
            ({"timezone": "Mars/Olympus"}, "timezone", "unknown"),
            ({"funcId": "cj__t.nope"}, "funcId", "not found"),
            ({"funcId": "nonsense"}, "funcId", "must be"),
            ({"funcCallKwargsJSON": [1, 2]}, "funcCallKwargsJSON", "must be a JSON object"),
            ({"funcCallKwargsJSON": "x"}, "funcCallKwargsJSON", "must be a JSON object"),
            ({"overlap": "maybe"}, "overlap", "skip"),
            ({"misfireGrace": -1}, "misfireGrace", "0..86400"),
        ]
        for extra, field, text in cases:
            data = {"funcId": "cj__t.tick", "cronExpr": "* * * * *"}
            data.update(extra)
            status, r = self.st.http("POST", "/api/v1/cron-jobs/do/add", {"data": data})
            # DFF answers an unknown func 404
            self.assertEqual(status, 404 if text == "not found" else 400, (extra, r))
            self.assertEqual(r["reason"], "EClientNotFound" if status == 404 else "EClientBadRequest")
            self.assertIn(text, r["message"], extra)
            self.assertEqual(r["detail"]["field"], field)
        p = self.st.ctl("cron", "add", "cj__t.tick", "61 * * * *")
        self.assertEqual(p.returncode, 1)
        self.assertIn("minute field", p.stderr)

    def test_crud_pause_resume_delete_and_state(self):
        j = self.job(funcCallKwargsJSON={"n": 7}, overlap="allow")
        jid = j["id"]
        self.assertFalse(j["isDisabled"])
        self.assertEqual((j["funcCallKwargsJSON"], j["overlap"]), ({"n": 7}, "allow"))
        self.assertTrue(j["state"]["next_fire"].endswith("+00:00"))
        wait_for(lambda: self.st.cron_job(jid)["state"].get("last_outcome") == "fired",
                 10, 0.2, "a first fire")
        got = self.st.cron_job(jid)
        self.assertIn("last_fire", got["state"])
        listed = {x["id"]: x for x in self.st.cron_jobs("cj__t.tick")}
        self.assertIn("last_fire", listed[jid]["state"])  # the list carries the state too
        rc, data = self.st.ctl_json("cron", "show", jid)
        self.assertEqual(rc, 0)
        self.assertEqual(data["id"], jid)
        p = self.st.ctl("cron", "pause", jid)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(self.st.cron_job(jid)["isDisabled"])
        time.sleep(1.5)
        n = len(self.records(jid))
        time.sleep(3)
        self.assertLessEqual(len(self.records(jid)), n + 1, "a paused job kept firing")
        p = self.st.ctl("cron", "resume", jid)
        self.assertEqual(p.returncode, 0, p.stderr)
        time.sleep(3)
        self.assertEqual(self.records(jid, "missed"), [], "a resumed job recorded its paused time as missed")
        p = self.st.ctl("cron", "list")
        self.assertIn(jid, p.stdout)
        p = self.st.ctl("cron", "delete", jid)
        self.assertEqual(p.returncode, 0, p.stderr)
        status, r = self.st.http("GET", f"/api/v1/cron-jobs/{jid}/do/get")
        self.assertEqual(status, 404)
        self.assertEqual(self.st.redis("EXISTS", f"tandem:cron:state:{jid}"), "0")  # its state went too

    def test_run_now(self):
        jid = self.job(expr="0 0 1 1 *")["id"]
        p = self.st.ctl("cron", "run", jid)
        self.assertEqual(p.returncode, 0, p.stderr)
        t = self.st.wait_task(p.stdout.strip())
        self.assertEqual(t["status"], "success")
        status, r = self.st.http("POST", "/api/v1/cron/cron-doesnotexist")
        self.assertEqual(status, 404)

    def test_overlap_skip_records_skipped_and_worker_releases(self):
        jid = self.job(func="cj__t.slow", funcCallKwargsJSON={"s": 2})["id"]
        wait_for(lambda: self.records(jid, "skipped"), 15, 0.5, "a skipped record")
        rec = self.records(jid, "skipped")[0]
        self.assertEqual(rec[1], "ECronOverlap")
        self.st.set_cron_enabled(jid, False)
        wait_for(lambda: self.st.redis("EXISTS", f"tandem:cron:running:{jid}") == "0", 10, 0.2,
                 "the worker to release the overlap key")

    def test_global_pause(self):
        jid = self.job(overlap="allow")["id"]
        time.sleep(2)
        p = self.st.ctl("cron", "pause", "--all")
        self.assertEqual(p.returncode, 0, p.stderr)
        time.sleep(1.5)
        n = len(self.records(jid))
        time.sleep(3)
        self.assertLessEqual(len(self.records(jid)), n + 1)
        p = self.st.ctl("cron", "resume", "--all")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_for(lambda: len(self.records(jid)) > n + 2, 10, 0.5, "fires after the resume")
        self.assertEqual(self.records(jid, "missed"), [])
        self.st.set_cron_enabled(jid, False)

    def test_unpublished_func_is_recorded_and_others_keep_firing(self):
        bad = self.job(func="cj__t.gone", overlap="allow")["id"]
        good = self.job(overlap="allow")["id"]
        # republish without gone()
        self.st.push_script("cj__t", CODE.replace("@DFF.API('gone')\ndef gone():\n    return 1\n", ""))
        wait_for(lambda: self.records(bad, "failure"), 15, 0.5, "a failure record for the gone func")
        reasons = {r[1] for r in self.records(bad, "failure")}
        self.assertIn("EFuncNotFound", reasons)
        n = len(self.records(good, "success"))
        wait_for(lambda: len(self.records(good, "success")) >= n + 3, 15, 0.5, "the good job to keep firing")
        self.st.push_script("cj__t", CODE)
        for j in (bad, good):
            self.st.set_cron_enabled(j, False)

    def test_expiry_stops_the_job(self):
        exp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
        jid = self.job(overlap="allow", expireTime=exp)["id"]
        time.sleep(6)
        n = len(self.records(jid))
        self.assertGreater(n, 0)
        time.sleep(3)
        self.assertEqual(len(self.records(jid)), n, "an expired job kept firing")

    def test_long_outage_is_recorded_without_a_flood(self):
        jid = self.job(overlap="allow", misfireGrace=2, isDisabled=True)["id"]
        # the job "changed" 300 s ago and no beat fired it since: 300 slots
        # are due, all but the last 2 s past their grace
        # A global resume since then would (rightly) forgive the older slots:
        # the last one goes back first. The other order races the beat's
        # periodic reload: a reload between the two would start the job's
        # cursor at the recent resume, and the 300 s would never be due.
        self.st.sql("UPDATE setting SET updated_at = NOW(3) - INTERVAL 400 SECOND WHERE k = 'cron.paused'")
        self.st.sql(f"UPDATE cron_job SET enabled = 1, updated_at = NOW(3) - INTERVAL 300 SECOND "
                    f"WHERE id = '{jid}'")
        self.st.redis("INCR", "tandem:gen")
        wait_for(lambda: len(self.records(jid, "success")) >= 3, 20, 0.5, "fires after the catch-up")
        self.st.set_cron_enabled(jid, False)
        try:
            wait_for(lambda: len(self.records(jid, "missed")) >= 101, 20, 0.5, "the missed records")
        except Exception:
            pass
        time.sleep(1.5)
        missed = self.records(jid, "missed")
        self.assertEqual(len(missed), 101, "100 missed slots one by one, then one summary")
        summary = [m for m in missed if "recorded as this one record" in m[2]]
        self.assertEqual(len(summary), 1, missed[-3:])

    def test_fired_slot_hash_task_status_and_legacy_fired_keys(self):
        """A fired slot is the field <job> of the hash tandem:fired:<slot>
        (value: the task id, with a TTL), the task's status resolves as soon
        as the job's state names it, and after a takeover the catch-up does
        not fire a slot that an older beat marked with a per-slot key
        tandem:fired:<job>:<slot>."""
        jid = self.job(overlap="allow")["id"]

        def fired():
            v = self.st.redis("HMGET", f"tandem:cron:state:{jid}", "last_slot", "last_task",
                              "last_outcome").splitlines()
            return v if len(v) == 3 and v[2] == "fired" else None
        slot, tid, _ = wait_for(fired, 10, 0.05, "a fire")
        status, r = self.st.http("GET", f"/api/v1/tasks/{tid}")
        self.assertEqual(status, 200, r)
        self.assertIn(r["data"]["status"], ("queued", "running", "success"), r)
        self.assertEqual(r["data"]["id"], tid)
        self.assertEqual(self.st.redis("HGET", f"tandem:fired:{slot}", jid), tid)
        self.assertGreater(int(self.st.redis("TTL", f"tandem:fired:{slot}")), 60)

        beat = int(self.st.pids()["beat"])
        os.kill(beat, signal.SIGSTOP)
        try:
            t = int(time.time())
            legacy = [t + 1, t + 2, t + 3]  # not due before the freeze: nobody fired them
            for s in legacy:
                self.st.redis("SET", f"tandem:fired:{jid}:{s}", "task-legacy", "EX", "600")
            time.sleep(t + 5.5 - time.time())  # past the 3 s lease
        finally:
            os.kill(beat, signal.SIGCONT)

        def rows():
            got = {}
            for ts, st in self.st.sql("SELECT FLOOR(UNIX_TIMESTAMP(nominal_at)), status FROM task_record "
                                      f"WHERE origin_id = '{jid}' AND nominal_at IS NOT NULL"):
                got.setdefault(int(ts), []).append(st)
            return got if all(s in got for s in (t + 4, t + 5, t + 7)) else None
        got = wait_for(rows, 30, 0.5, "the catch-up after the freeze")
        self.st.set_cron_enabled(jid, False)
        for s in legacy:
            self.assertNotIn(s, got, f"slot {s} was marked fired by a per-slot key, yet fired again")
            self.assertEqual(self.st.redis("HGET", f"tandem:fired:{s}", jid), "")
        for s in (t + 4, t + 5, t + 7):
            self.assertEqual(got[s], ["success"], f"slot {s}")

    def test_metrics_show_beat_counters(self):
        wait_for(lambda: self.stats().get("fired_total", 0) > 0, 20, 0.5, "a fire")
        status, body = self.st.http("GET", "/metrics", key=None, raw=True)
        self.assertEqual(status, 200)
        text = body.decode() if isinstance(body, bytes) else body
        self.assertIn("tandem_beat_fired_total", text)
        self.assertIn("tandem_beat_latency_ms_count", text)

    def test_delayed_task_runs_when_due(self):
        status, r = self.st.http("POST", "/api/v1/func/cj__t.tick",
                                 {"kwargs": {"n": 3}, "options": {"async": True, "delay": 2}})
        self.assertEqual(status, 200, r)
        tid = r["data"]["id"]
        t0 = time.time()
        time.sleep(1)
        self.assertEqual(self.st.redis("ZCARD", "tandem:delayed"), "1")
        t = self.st.wait_task(tid, timeout=15)
        self.assertEqual(t["status"], "success")
        self.assertGreaterEqual(time.time() - t0, 1.5)
        self.assertEqual(self.st.redis("ZCARD", "tandem:delayed"), "0")


@unittest.skipUnless(have_binaries("tandem-beat", "tandem-server", "tandem-worker", "tandemctl"),
                     "needs a full build")
class DffCronOptions(unittest.TestCase):
    """DFF's cron options on their own stack: fixed_cron_expr fixes the
    expression of the jobs configured for a func, integration='autoRun'
    creates the one job with no kwargs."""

    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="beatd").up()
        cls.st.push_script("cjd__t", DFF_CRON_CODE)

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def job(self, expr="* * * * * *", func="cjd__t.fixed", **data):
        return self.st.cron_job(self.st.add_cron_job(func, expr, **data))

    def records(self, job, status=None):
        q = f"SELECT status, reason, message FROM task_record WHERE origin_id = '{job}'"
        if status:
            q += f" AND status = '{status}'"
        return self.st.sql(q)

    def test_fixed_cron_expr_overrides_configured_jobs_and_creates_none(self):
        # DFF: fixed_cron_expr only fixes the expression of the jobs the user
        # configured for the func; a job with no kwargs would fail every tick
        self.assertEqual(self.st.cron_jobs("cjd__t.fixed"), [], "publish created no job for fixed_cron_expr")
        jid = self.job(func="cjd__t.fixed", expr="0 0 1 1 *", funcCallKwargsJSON={"who": "ops"},
                       overlap="allow")["id"]
        # the job's own expression fires once a year; the fixed one every 2 s
        wait_for(lambda: len(self.records(jid, "success")) >= 2, 15, 0.5,
                 "the job firing on the func's fixed expression")
        self.st.set_cron_enabled(jid, False)

    def test_auto_run_integration_creates_one_job_with_no_kwargs(self):
        jobs = self.st.cron_jobs("cjd__t.auto")
        self.assertEqual(len(jobs), 1)
        self.assertTrue(jobs[0]["isFixed"])
        self.assertEqual(jobs[0]["cronExpr"], "* * * * *")
        self.assertEqual(jobs[0]["funcCallKwargsJSON"], {})
        status, r = self.st.http("POST", f"/api/v1/cron-jobs/{jobs[0]['id']}/do/modify",
                                 {"data": {"cronExpr": "5 * * * *"}})
        self.assertEqual(status, 400, r)
        self.assertIn("autoRun", r["message"])

if __name__ == "__main__":
    unittest.main(verbosity=2)
