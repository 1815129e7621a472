"""tandem-worker behind tandem-server (appliance/local via harness.Stack):
publishing goes through the worker's __sys.inspect, calls come back through
the server's reply dispatcher, and the worker's failure reasons reach the
client as DFF's 599 envelopes. Each test names the promise it checks."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, have_binaries, wait_for  # noqa: E402

CODE = r'''
import os, time

@DFF.API('Add', timeout=5)
def add(x, y=1):
    print('adding', x, y)
    return x + y

@DFF.API('Boom')
def boom():
    raise ValueError('nope')

@DFF.API('Hang', timeout=2)
def hang():
    while True:
        time.sleep(0.1)

@DFF.API('Exit')
def die():
    os._exit(3)

@DFF.API('Env')
def env(name):
    return DFF.ENV(name)

@DFF.API('Version')
def version():
    return 1

@DFF.API('Stamp', cache_result=60)
def stamp(k):
    return {'k': k, 'ns': time.time_ns()}
'''


@unittest.skipUnless(have_binaries("tandem-server", "tandem-worker", "tandemctl"), "not built")
class WorkerE2E(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="worker-e2e").up()
        cls.pub = cls.st.push_script("demo__w", CODE)

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def call(self, func, kwargs=None):
        return self.st.http("POST", "/api/v1/func/" + func, {"kwargs": kwargs or {}})

    def test_publish_reports_the_funcs_the_worker_inspected(self):
        names = {f["name"]: f for f in self.pub["funcs"]}
        self.assertIn("add", names)
        self.assertEqual(names["add"]["timeout"], 5)
        self.assertEqual(names["add"]["args"], ["x", "y"])

    def test_publish_of_bad_code_is_refused_with_the_line(self):
        self.st.push_script("demo__bad", "x = 1\ndef f(:\n", publish=False)
        status, r = self.st.http("POST", "/api/v1/scripts/demo__bad/do/publish")
        self.assertEqual(status, 400, r)
        self.assertEqual(r["reason"], "EScriptSyntaxError")
        self.assertIn("line 2", r["message"])

    def test_cache_result_answers_repeat_calls_from_the_cache(self):
        status, first = self.call("demo__w.stamp", {"k": 1})
        self.assertEqual(status, 200, first)
        # The worker caches after recording; the server reads the same key.
        wait_for(lambda: self.st.redis("KEYS", "tandem:cache:result:demo__w.stamp:*").strip(),
                 5, what="result cached")
        status, again = self.call("demo__w.stamp", {"k": 1})
        self.assertEqual(status, 200, again)
        self.assertEqual(again["data"]["result"], first["data"]["result"])
        status, other = self.call("demo__w.stamp", {"k": 2})
        self.assertEqual(status, 200, other)
        self.assertNotEqual(other["data"]["result"]["ns"], first["data"]["result"]["ns"])

    def test_sync_call_succeeds(self):
        status, r = self.call("demo__w.add", {"x": 40, "y": 2})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["data"]["result"], 42)

    def test_failures_reach_the_client_as_599(self):
        status, r = self.call("demo__w.boom")
        self.assertEqual((status, r["reason"]), (599, "EFuncFailed"), r)
        self.assertIn("ValueError: nope", r["message"])
        status, r = self.call("demo__w.hang")
        self.assertEqual((status, r["reason"]), (599, "EFuncTimeout"), r)
        status, r = self.call("demo__w.die")
        self.assertEqual((status, r["reason"]), (599, "EWorkerCrashed"), r)
        status, r = self.call("demo__w.add", {"x": 1})
        self.assertEqual((status, r["data"]["result"]), (200, 2), r)

    def test_async_call_runs_and_is_recorded(self):
        status, r = self.st.http("POST", "/api/v1/func/demo__w.add",
                                 {"kwargs": {"x": 1, "y": 1}, "options": {"async": True}})
        self.assertEqual(status, 200, r)
        t = self.st.wait_task(r["data"]["id"])
        self.assertEqual(t["status"], "success", t)
        wait_for(lambda: self.st.sql("SELECT status FROM task_record WHERE id='%s'"
                                     % r["data"]["id"]), 10, what="task_record row")

    def test_env_variable_change_is_seen(self):
        self.st.api("POST", "/api/v1/env-variables/do/add", {"data": {"id": "greeting", "valueTEXT": "hi"}})
        self.assertEqual(self.call("demo__w.env", {"name": "greeting"})[1]["data"]["result"], "hi")
        self.st.api("POST", "/api/v1/env-variables/greeting/do/modify", {"data": {"valueTEXT": "hello"}})
        time.sleep(0.3)
        got = {self.call("demo__w.env", {"name": "greeting"})[1]["data"]["result"]
               for _ in range(4)}
        self.assertEqual(got, {"hello"})

    def test_republish_is_picked_up_without_restart(self):
        self.st.push_script("demo__v", "@DFF.API('v')\ndef v():\n    return 1\n")
        self.assertEqual(self.call("demo__v.v")[1]["data"]["result"], 1)
        self.st.push_script("demo__v", "@DFF.API('v')\ndef v():\n    return 2\n")
        got = {self.call("demo__v.v")[1]["data"]["result"] for _ in range(4)}
        self.assertEqual(got, {2})


if __name__ == "__main__":
    unittest.main(verbosity=2)
