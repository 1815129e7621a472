"""DataFlux Func scripts run unchanged (issue 8): the corpus under
tests/dff-scripts/ is published and run through HTTP on a real one-node
stack, and every DFF member, variable and option answers what DFF answers.
Bad input (a bad env type, a chain too deep, a queue out of range, a bad
@DFF.API option) is a clear error and the worker keeps serving."""

import base64
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SRC, Stack, have_binaries, wait_for  # noqa: E402

CORPUS = os.path.join(SRC, "tests", "dff-scripts")


def corpus(name):
    with open(os.path.join(CORPUS, name + ".py")) as f:
        return f.read()


class DFFRuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker"):
            raise unittest.SkipTest("binaries not built")
        cls.st = Stack(workers=2, name="dffrt").up()
        with open(cls.st.conf, "a") as f:  # DFF.CONFIG reads custom { } (the worker, lazily)
            f.write('custom = { greeting = "hello"; api_password = "s3cret"; };\n')
        for name in ("dffc__members", "dffc__results", "dffc__options", "dffc__chain"):
            cls.st.push_script(name, corpus(name))

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def call(self, func, kwargs=None, expect_ok=True):
        status, r = self.st.http("POST", f"/api/v1/func/{func}", {"kwargs": kwargs or {}}, timeout=60)
        if expect_ok:
            self.assertEqual(status, 200, r)
            return r["data"]["result"]
        return status, r

    def serves(self):
        self.assertEqual(self.call("dffc__results.text"), "plain text")

    # ---- results -------------------------------------------------------------
    def test_results_serialise_as_dff_toolkit_json(self):
        v = self.call("dffc__results.values")
        self.assertEqual(v["dt"], "2024-05-06T07:08:09+00:00")
        self.assertEqual(v["dt_tz"], "2024-05-06T07:08:09+08:00")
        self.assertEqual((v["dec"], v["dec_int"]), (1.5, 42))
        self.assertIsNone(v["nan"])
        self.assertIsNone(v["inf"])
        self.assertEqual(v["tuple"], [1, 2])
        self.assertEqual(v["set"], "{3}")
        self.assertEqual(v["bytes"], "abc")
        self.assertEqual(v["obj"], "<Thing>")
        self.assertEqual(v["nested"], [{"d": 0.25}])
        self.assertEqual(v["1"], "int key")

    # ---- ENV -------------------------------------------------------------------
    def test_env_typed_values_and_password_masked_in_output(self):
        sealed = self.call("dffc__members.seal", {"plain": "hunter2"})
        self.assertTrue(sealed.startswith("sealed:v1:"), sealed)
        rows = [("s_str", "text", "string"), ("s_pw", sealed, "password"), ("s_int", "42", "integer"),
                ("s_float", "2.5", "float"), ("s_bool", "yes", "boolean"),
                ("s_json", '{"a": [1]}', "json"), ("s_arr", "a,b,c", "commaArray"),
                ("s_bad_int", "forty", "integer")]
        self.st.sql("REPLACE INTO env_variable (id, value, value_type) VALUES " +
                    ", ".join("('%s', '%s', '%s')" % r for r in rows))
        self.st.redis("INCR", "tandem:gen")
        time.sleep(0.5)
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.env_typed", {"kwargs": {}})
        self.assertEqual(status, 200, r)
        v = r["data"]["result"]
        self.assertEqual(v["s_str"], "text")
        self.assertEqual(v["s_pw"], "hunter2")
        self.assertEqual((v["s_int"], v["get"], v["s_float"], v["s_bool"]), (42, 42, 2.5, True))
        self.assertEqual(v["s_json"], {"a": [1]})
        self.assertEqual(v["s_arr"], ["a", "b", "c"])
        self.assertIsNone(v["missing"])
        self.assertIn("s_pw", v["keys"])
        task = self.st.wait_task(r["data"]["id"])
        self.assertIn("the password is *****", task.get("output", ""))
        self.assertNotIn("hunter2", task.get("output", ""))
        # a bad env type is a clear failure naming the variable; the worker serves on
        status, r = self.call("dffc__members.env_bad", expect_ok=False)
        self.assertEqual(status, 599, r)
        self.assertIn("env variable `s_bad_int` (type integer)", r["message"])
        self.serves()

    # ---- CACHE -----------------------------------------------------------------
    def test_cache_string_results_and_positional_scope(self):
        v = self.call("dffc__members.cache_strings")
        self.assertEqual(v, {"get": "1", "incr": 2, "incr5": 7, "scoped": "v", "unscoped": None,
                             "getset": "7", "exists": True, "expire": True, "ttl_ok": True,
                             "type": "string", "delete": 1, "type_gone": None, "nx_again": None,
                             "nx": "a", "keys": ["nx"]})
        self.assertEqual(self.st.redis("GET", "tandem:ucache:11:other_scope:k"), "v")

    def test_cache_hash_and_list_methods(self):
        v = self.call("dffc__members.cache_hl")
        self.assertEqual(v["hget"], "1")
        self.assertEqual(v["hgetall"], {"a": "1", "b": "two", "c": "3.5"})
        self.assertEqual(v["hmget"], {"a": "1", "b": "two"})
        self.assertEqual((v["hincr"], v["hkeys"], v["hdel"]), (2, ["a", "b", "c"], 1))
        self.assertEqual((v["llen"], v["lrange"]), (4, ["z", "y", "x", "w"]))
        self.assertEqual((v["pop"], v["rpoplpush"], v["l2"], v["lpop"]), ("w", "x", ["x"], "z"))

    def test_cache_refuses_values_redis_py_refuses(self):
        status, r = self.call("dffc__members.cache_bad", expect_ok=False)
        self.assertEqual(status, 599)
        self.assertIn("invalid input of type dict", r["message"])

    def test_cache_long_keys_are_whole_and_scope_result_is_not_the_result_cache(self):
        # issue 10 defect 8
        self.assertEqual(self.call("dffc__members.cache_keys"), ["long", "short", "mine"])
        self.assertEqual(self.st.redis("KEYS", "tandem:cache:result:x*"), "")
        self.assertEqual(self.st.redis("EXISTS", "tandem:ucache:6:result:x"), "1")

    # ---- STORE, CTX, THREAD, CONFIG, aliases -----------------------------------
    def test_store_with_scope_and_expiry(self):
        v = self.call("dffc__members.store")
        self.assertEqual(v, {"a": {"x": [1, 2]}, "b": "bee", "b_default_scope": None,
                             "gone": None, "a2": 5, "keys": ["a", "a2"], "a_deleted": None})

    def test_ctx_thread_and_lowercase_aliases(self):
        self.assertEqual(self.call("dffc__members.ctx_thread"),
                         {"ctx": 1, "has": True, "threads": [0, 1, 4, 9], "lower": 1,
                          "alias": True})

    def test_config_reads_tandem_conf_custom_group_masked(self):
        self.assertEqual(self.call("dffc__members.config"),
                         {"x": "hello", "prefixed": "hello", "masked": "*****",
                          "unmasked": "s3cret", "missing": "dflt"})

    # ---- variables and output -----------------------------------------------------
    def test_dff_variables(self):
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.variables", {"kwargs": {}})
        v = r["data"]["result"]
        self.assertEqual(v["_DFF_TASK_ID"], r["data"]["id"])
        self.assertEqual(v["_DFF_ROOT_TASK_ID"], r["data"]["id"])
        self.assertEqual((v["_DFF_SCRIPT_SET_ID"], v["_DFF_SCRIPT_ID"], v["_DFF_FUNC_ID"],
                          v["_DFF_FUNC_NAME"]),
                         ("dffc", "dffc__members", "dffc__members.variables", "variables"))
        self.assertEqual(v["_DFF_FUNC_CHAIN"], ["dffc__members.variables"])
        self.assertEqual(v["_DFF_QUEUE"], 1)
        self.assertFalse(v["_DFF_DEBUG"])
        self.assertTrue(abs(v["_DFF_START_TIME"] - time.time()) < 60)
        self.assertEqual(v["_DFF_START_TIME_MS"] // 1000, v["_DFF_START_TIME"])
        self.assertEqual(v["_DFF_TRIGGER_TIME_MS"] // 1000, v["_DFF_TRIGGER_TIME"])

    def test_cron_task_sees_its_cron_variables(self):
        job = {"id": self.st.add_cron_job("dffc__members.cron_vars", "* * * * * *")}
        try:
            def fired():
                rows = self.st.sql("SELECT id FROM task_record WHERE func_id = "
                                   "'dffc__members.cron_vars' AND status = 'success' LIMIT 1")
                return rows[0][0] if rows else None
            tid = wait_for(fired, 40, what="a cron run of cron_vars")
        finally:
            self.st.delete_cron_job(job["id"])
        t = self.st.wait_task(tid)
        self.assertEqual(t["result"], ["cron", job["id"], "* * * * * *", "* * * * * *", 2, True])

    def test_print_lines_carry_dff_prefix_and_line_limit(self):
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.printing", {"kwargs": {}})
        out = self.st.wait_task(r["data"]["id"])["output"].splitlines()
        import re
        pre = r"^\[\d\d-\d\d \d\d:\d\d:\d\d\] \[\+\d+ms\] \[\d+ms\] "
        self.assertRegex(out[0], pre + "hello-world$")
        self.assertRegex(out[1], pre + "via LOG$")
        self.assertRegex(out[2], pre + "via log$")
        self.assertRegex(out[3], pre + r"\[VAR\] type=`<class 'int'>`, value=`42`")
        self.assertRegex(out[4], pre + "x{3000}... <Length: 4000>$")
        self.assertTrue(all(re.match(pre, line) for line in out))

    # ---- RESP ------------------------------------------------------------------
    def test_resp_family_gives_the_resp_object(self):
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.resp", {"kwargs": {}})
        self.assertEqual(r["data"]["result"], "<b>hi</b>")
        t = self.st.wait_task(r["data"]["id"])
        self.assertEqual(t["resp"], {"status_code": 201, "content_type": "html",
                                     "headers": {"X-A": "1"}, "download": None,
                                     "allow_304": False, "large_data": False})
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.redirect", {"kwargs": {}})
        t = self.st.wait_task(r["data"]["id"])
        self.assertEqual(t["resp"]["status_code"], 302)
        self.assertEqual(t["resp"]["headers"], {"Location": "https://example.com/a b"})
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.resp_large", {"kwargs": {}})
        t = self.st.wait_task(r["data"]["id"])
        self.assertEqual((t["result"], t["resp"]["large_data"], t["resp"]["content_type"]),
                         ('{"rows":[1,2,3]}', True, "json"))
        path = os.path.join(self.st.dir, "report.csv")
        with open(path, "w") as f:
            f.write("a,b\n1,2\n")
        status, r = self.st.http("POST", "/api/v1/func/dffc__members.resp_file",
                                 {"kwargs": {"path": path}})
        t = self.st.wait_task(r["data"]["id"])
        self.assertEqual(t["result"], "report.csv")
        self.assertEqual(t["resp"]["download"], "report.csv")
        self.assertEqual(base64.b64decode(t["resp"]["file_base64"]), b"a,b\n1,2\n")

    # ---- options ----------------------------------------------------------------
    def test_api_options_with_dff_aliases_are_reported_at_publish(self):
        funcs = {f["name"]: f for f in self.st.push_script("dffc__options", corpus("dffc__options"))["funcs"]}
        a = funcs["aliased"]
        self.assertEqual((a["timeout"], a["expires"], a["queue"], a["cache_result"]), (20, 60, 7, 2))
        self.assertEqual((a["category"], a["tags"], a["is_hidden"]), ("ops", ["a", "b"], True))
        self.assertEqual(a["dff"]["cacheResult"], 1.5)
        self.assertEqual(funcs["old_cron"]["fixed_cron_expr"], "*/5 * * * *")
        self.assertEqual((funcs["auto_run"]["integration"], funcs["auto_run"]["auto_run_cron_expr"]),
                         ("autoRun", "0 * * * *"))
        # queue=7: a call goes to stream q:7 and runs there (workers serve
        # queues 0-9 by default); its record names the queue
        d = self.st.api("POST", "/api/v1/func/dffc__options.aliased",
                        {"kwargs": {"x": 3}, "options": {"async": True}})
        t = self.st.wait_task(d["id"])
        self.assertEqual(t["status"], "success", t)
        wait_for(lambda: self.st.sql(f"SELECT queue FROM task_record WHERE id = '{d['id']}'"), 20, 0.3,
                 "the task record")
        self.assertEqual(self.st.sql(f"SELECT queue FROM task_record WHERE id = '{d['id']}'")[0][0], "7")

    def test_bad_or_unhonoured_options_are_refused_naming_them(self):
        cases = {
            "queue=0": "can't be 0",
            "queue=10": "`queue` should be one of",
            "timeout=0": "`timeout` should be between",
            "cache_result='x'": "`cache_result` should be an int or a float",
            "delayed_cron_job=[-5]": "Elements of `delayed_cron_job` are delays in seconds",
            "integration='signIn'": "integration `signIn` is not supported",
            "integration='autoRun', integration_config={'on_launch': True}":
                "integration_config `onSystemLaunch` is not supported",
            "colour='red'": "unknown @DFF.API option `colour`",
            "fixed_cron_expr='* *'": "`fixed_cron_expr` is not a valid cron expression",
        }
        for opt, want in cases.items():
            code = "@DFF.API('t', %s)\ndef f():\n    return 1\n" % opt
            self.st.push_script("dffc__bad", code, publish=False)
            status, r = self.st.http("POST", "/api/v1/scripts/dffc__bad/do/publish", timeout=60)
            self.assertEqual(status, 400, (opt, r))
            self.assertIn(want, r["message"], opt)
            self.assertIn("func f", r["message"], opt)
        self.serves()

    # ---- FUNC ------------------------------------------------------------------
    def test_func_chain_deeper_than_five_is_refused_in_the_record(self):
        status, r = self.st.http("POST", "/api/v1/func/dffc__chain.step1", {"kwargs": {"n": 0}})
        self.assertEqual(status, 200, r)
        root = r["data"]["id"]

        def deepest():
            d = self.call("dffc__chain.read", {"key": "depth"})
            return d if d and d["n"] == 4 else None
        d = wait_for(deepest, 30, what="the chain to reach step5")
        self.assertEqual(d["chain"], ["dffc__chain.step%d" % i for i in range(1, 6)])
        self.assertEqual(d["root"], root)

        def step5_failed():
            rows = self.st.sql("SELECT status, message FROM task_record WHERE func_id = "
                               "'dffc__chain.step5' ORDER BY seq DESC LIMIT 1")
            return rows[0] if rows and rows[0][0] == "failure" else None
        st, msg = wait_for(step5_failed, 30, what="step5's failure record")
        self.assertIn("FuncCallChainTooLong", msg)
        self.assertEqual(self.st.sql("SELECT COUNT(*) FROM task_record WHERE func_id = "
                                     "'dffc__chain.step6'"), [["0"]])

    def test_func_circular_call_and_bad_queue_are_refused(self):
        status, r = self.call("dffc__chain.loop", expect_ok=False)
        self.assertEqual(status, 599, r)
        self.assertIn("FuncCircularCall", r["message"])
        status, r = self.call("dffc__chain.bad_queue", expect_ok=False)
        self.assertEqual(status, 599, r)
        self.assertIn("`queue` should be one of", r["message"])
        self.serves()

    # ---- draft runs -----------------------------------------------------------------
    def test_draft_run_answers_result_output_and_traceback_without_publishing(self):
        code = ("import os\n@DFF.API('d')\ndef d(x):\n    print('draft', x, os.getpid())\n"
                "    return {'x': x}\n@DFF.API('e')\ndef e():\n    return 1 / 0\n"
                "@DFF.API('slow')\ndef slow():\n    import time; time.sleep(120)\n")
        self.st.push_script("dffc__draft", code, publish=False)
        v = self.st.api("POST", "/api/v1/scripts/dffc__draft/do/debug",
                        {"funcName": "d", "kwargs": {"x": 5}}, timeout=90)
        self.assertEqual(v["status"], "success", v)
        self.assertEqual((v["result"], v["returnValue"]), ({"x": 5}, "{'x': 5}"))
        self.assertIn("draft 5", v["printLogs"][0])
        self.assertEqual(sorted(f["name"] for f in v["apiFuncs"]), ["d", "e", "slow"])
        v2 = self.st.api("POST", "/api/v1/func-draft/dffc__draft.e", {"kwargs": {}}, timeout=90)
        self.assertEqual((v2["status"], v2["exceptionType"]), ("failure", "ZeroDivisionError"))
        self.assertIn("1 / 0", v2["traceback"])
        # never published, and the serving children are untouched (the pid is a fork's)
        self.assertEqual(self.st.sql("SELECT publish_version FROM script WHERE id='dffc__draft'"),
                         [["0"]])
        p = self.st.ctl("script", "run", "dffc__draft", "d", "--kwargs", '{"x": 7}')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('result: {"x":7}', p.stdout)
        p = self.st.ctl("script", "run", "dffc__draft", "e")
        self.assertEqual(p.returncode, 1)
        self.assertIn("ZeroDivisionError", p.stderr)
        self.serves()

    def test_draft_runs_in_a_throwaway_fork(self):
        # a draft that taints a module, then one that kills its own process:
        # neither reaches the interpreters that serve calls
        code = ("import json, os, signal\n@DFF.API('t')\ndef taint():\n    json.TAINTED = 1\n"
                "    return os.getpid()\n@DFF.API('k')\ndef kill():\n"
                "    os.kill(os.getpid(), signal.SIGKILL)\n")
        self.st.push_script("dffc__fork", code, publish=False)
        v = self.st.api("POST", "/api/v1/scripts/dffc__fork/do/debug", {"funcName": "taint"},
                        timeout=90)
        self.assertEqual(v["status"], "success", v)
        self.assertFalse(os.path.exists("/proc/%d" % v["result"]), "the draft's process is gone")
        v = self.st.api("POST", "/api/v1/scripts/dffc__fork/do/debug", {"funcName": "kill"},
                        timeout=90)
        self.assertEqual(v["status"], "failure", v)
        self.assertIn("killed by signal 9", v["exception"])
        self.st.push_script("dffc__probe", "import json\n@DFF.API('p')\ndef p():\n"
                            "    return hasattr(json, 'TAINTED')\n")
        for _ in range(4):  # every serving child
            self.assertIs(self.call("dffc__probe.p"), False)
        self.serves()


if __name__ == "__main__":
    unittest.main(verbosity=2)
