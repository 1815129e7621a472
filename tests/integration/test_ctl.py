"""tandemctl against a real stack: every command, its exit code (0 ok, 1
refused/failed, 2 usage, 3 unreachable), human and --json output."""

import json
import os
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

SCRIPT = """\
import logging

@DFF.API('Greet someone', timeout=10)
def greet(name='world'):
    logging.info('greeting %s', name)
    return {'greeting': 'hello, ' + name}

@DFF.API('Divide')
def div(a, b):
    return a / b
"""

BROKEN = """\
@DFF.API('ok')
def f():
    return (1 +
"""

st = None


def setUpModule():
    global st
    st = Stack(name="ctl").up()


def tearDownModule():
    if st:
        st.down()


def run(*args, **kw):
    p = st.ctl(*args, **kw)
    return p.returncode, p.stdout, p.stderr


class CtlUsageTest(unittest.TestCase):
    def test_ctl_usage_errors_exit_2_with_a_message(self):
        cases = [
            ([], "no command"),
            (["frobnicate"], "unknown command"),
            (["call", "demo__x.y", "--kwargs", "{bad"], "--kwargs: invalid JSON at line 1"),
            (["call", "demo__x.y", "--kwargs", "[1]"], "JSON object"),
            (["call", "not-a-func-id"], "func id"),
            (["call", "demo__x.y", "--timeout", "0"], "--timeout"),
            (["script", "push", "/nonexistent/x.py", "--id", "demo__x"], "cannot read '/nonexistent/x.py'"),
            (["script", "push", __file__], "usage"),
            (["script", "push", __file__, "--id", "no-set"], "SET__NAME"),
            (["key", "create"], "usage"),
            (["key", "revoke", "../../etc"], "not a valid id"),
            (["task", "show"], "usage"),
            (["api", "create-sync", "demo__x.y", "--kwargs", "nope"], "invalid JSON"),
            (["api", "create-sync", "demo__x.y", "--bogus"], "unknown option"),
            (["--url", "ftp://example.invalid", "func", "list"], "only http://"),
        ]
        for args, msg in cases:
            code, out, err = run(*args)
            self.assertEqual(code, 2, f"{args}: exit {code}\n{out}{err}")
            self.assertIn(msg, err, f"{args}")

    def test_ctl_unreachable_server_exits_3(self):
        port = harness.free_port()
        code, out, err = run("--url", f"http://127.0.0.1:{port}", "func", "list")
        self.assertEqual(code, 3, out + err)
        self.assertIn("cannot connect", err)
        code, out = st.ctl_json("--url", f"http://127.0.0.1:{port}", "key", "list")
        self.assertEqual(code, 3)
        self.assertIs(out["ok"], False)

    def test_ctl_config_problems_exit_2(self):
        code, _, err = run("-c", "/nonexistent/tandem.conf", "db", "migrate", conf=False)
        self.assertEqual(code, 2)
        self.assertIn("/nonexistent/tandem.conf", err)
        with tempfile.NamedTemporaryFile("w", suffix=".conf", dir=st.dir) as f:
            f.write("server = { port = \"eighty\"; };\n")
            f.flush()
            code, _, err = run("-c", f.name, "db", "status", conf=False)
            self.assertEqual(code, 2)
            self.assertIn("server.port", err)


class CtlAdminTest(unittest.TestCase):
    def test_ctl_db_migrate_is_idempotent(self):
        code, out, err = run("db", "migrate")
        self.assertEqual(code, 0, err)
        self.assertIn("applied 0 migrations", out)
        code, out = st.ctl_json("db", "status")
        self.assertEqual((code, out), (0, {"pending": 0}))

    def test_ctl_wrong_key_is_refused_with_exit_1(self):
        code, out, err = run("--key", "tk_" + "0" * 40, "func", "list")
        self.assertEqual(code, 1, out + err)
        self.assertIn("401", err)
        code, out = st.ctl_json("--key", "tk_" + "0" * 40, "func", "list")
        self.assertEqual(code, 1)
        self.assertEqual(out.get("reason"), "EAPIAuth")

    def test_ctl_url_and_key_from_the_environment(self):
        code, out, err = run("script", "list", conf=False, env={"TANDEM_URL": st.url, "TANDEM_KEY": st.key})
        self.assertEqual(code, 0, err)
        # --key beats $TANDEM_KEY
        code, out, err = run("--key", "tk_wrong", "script", "list", conf=False,
                             env={"TANDEM_URL": st.url, "TANDEM_KEY": st.key})
        self.assertEqual(code, 1, out + err)

    def test_ctl_key_create_list_revoke(self):
        code, out, err = run("key", "create", "ops")
        self.assertEqual(code, 0, err)
        vals = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        secret, kid = vals["KEY"], vals["ID"]
        self.assertTrue(secret.startswith("tk_") and kid.startswith("ak-"), out)
        status, body = st.http("GET", "/api/v1/scripts/do/list", key=secret)
        self.assertEqual(status, 200, body)
        code, keys = st.ctl_json("key", "list")
        self.assertEqual(code, 0)
        self.assertIn(kid, [k["id"] for k in keys])
        self.assertNotIn(secret, json.dumps(keys), "key list must not show secrets")
        code, out, err = run("key", "list")
        self.assertEqual(code, 0)
        self.assertIn(kid, out)
        code, out, err = run("key", "revoke", kid)
        self.assertEqual(code, 0, err)
        wait_for(lambda: st.http("GET", "/api/v1/scripts/do/list", key=secret)[0] == 401, 5, what="revoked key refused")
        code, out, err = run("key", "revoke", "ak-doesnotexist")
        self.assertEqual(code, 1, out + err)

    def test_ctl_key_create_bootstrap_goes_straight_to_mariadb(self):
        code, out = st.ctl_json("key", "create", "boot2", "--bootstrap")
        self.assertEqual(code, 0)
        self.assertEqual(out["name"], "boot2")
        rows = st.sql(f"SELECT name, revoked_at FROM access_key WHERE id = '{out['id']}'")
        self.assertEqual(rows, [["boot2", None]])
        # the running server sees it once gen moved
        wait_for(lambda: st.http("GET", "/api/v1/scripts/do/list", key=out["secret"])[0] == 200, 5,
                 what="bootstrapped key accepted")
        code, out, err = run("key", "create", "x", "--bootstrap", conf=False)
        self.assertEqual(code, 2, "bootstrap without a config must be a usage error")


class CtlFunctionsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.path = os.path.join(st.dir, "greet.py")
        with open(cls.path, "w") as f:
            f.write(SCRIPT)
        code, out, err = run("script", "push", cls.path, "--id", "ctltest__greet")
        assert code == 0, f"script push: {code} {out} {err}"
        code, out, err = run("script", "publish", "ctltest__greet")
        assert code == 0, f"script publish: {code} {out} {err}"
        cls.publish_out = out

    def test_ctl_publish_lists_the_funcs(self):
        self.assertIn("greet", self.publish_out)
        self.assertIn("div", self.publish_out)
        code, scripts = st.ctl_json("script", "list")
        self.assertEqual(code, 0)
        self.assertIn("ctltest__greet", [s["id"] for s in scripts])

    def test_ctl_publish_refuses_a_syntax_error_with_its_line(self):
        path = os.path.join(st.dir, "broken.py")
        with open(path, "w") as f:
            f.write(BROKEN)
        code, out, err = run("script", "push", path, "--id", "ctltest__broken")
        self.assertEqual(code, 0, err)
        code, out, err = run("script", "publish", "ctltest__broken")
        self.assertEqual(code, 1, out + err)
        self.assertIn("SyntaxError", err)
        self.assertRegex(err, r"line [34]")
        code, out = st.ctl_json("script", "publish", "ctltest__broken")
        self.assertEqual(code, 1)
        self.assertEqual(out.get("reason"), "EScriptSyntaxError")

    def test_ctl_func_list(self):
        code, funcs = st.ctl_json("func", "list", "--script", "ctltest__greet")
        self.assertEqual(code, 0)
        self.assertEqual(sorted(f["id"] for f in funcs), ["ctltest__greet.div", "ctltest__greet.greet"])
        code, out, err = run("func", "list")
        self.assertEqual(code, 0, err)
        self.assertIn("ctltest__greet.greet", out)

    def test_ctl_call_sync_prints_the_result(self):
        code, out, err = run("call", "ctltest__greet.greet", "--kwargs", '{"name": "ops"}')
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out), {"greeting": "hello, ops"})
        code, out = st.ctl_json("call", "ctltest__greet.div", "--kwargs", '{"a": 6, "b": 3}', "--timeout", "5")
        self.assertEqual(code, 0)
        self.assertEqual(out["result"], 2.0)
        self.assertTrue(out["id"].startswith("task-"))

    def test_ctl_call_failure_exits_1_with_the_error(self):
        code, out, err = run("call", "ctltest__greet.div", "--kwargs", '{"a": 1, "b": 0}')
        self.assertEqual(code, 1, out + err)
        self.assertIn("ZeroDivisionError", err)
        code, out = st.ctl_json("call", "ctltest__greet.div", "--kwargs", '{"a": 1, "b": 0}')
        self.assertEqual(code, 1)
        self.assertEqual(out.get("reason"), "EFuncFailed")
        code, out, err = run("call", "ctltest__greet.nosuch")
        self.assertEqual(code, 1, out + err)
        self.assertIn("404", err)

    def test_ctl_call_async_then_task_show(self):
        code, out, err = run("call", "ctltest__greet.greet", "--async", "--kwargs", '{"name": "bg"}')
        self.assertEqual(code, 0, err)
        tid = out.strip()
        self.assertTrue(tid.startswith("task-"), out)

        def done():
            c, t = st.ctl_json("task", "show", tid)
            return t if c == 0 and t.get("status") == "success" else None
        t = wait_for(done, 20, 0.2, f"task {tid} to succeed")
        self.assertEqual(t["result"], {"greeting": "hello, bg"})
        code, out, err = run("task", "show", tid)
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["id"], tid)
        code, out, err = run("task", "show", "task-000000000000000000000000")
        self.assertEqual(code, 1, out + err)

    def test_ctl_api_create_sync_and_async(self):
        code, out, err = run("api", "create-sync", "ctltest__greet.greet", "--kwargs", '{"name": "fixed"}')
        self.assertEqual(code, 0, err)
        vals = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
        sid = vals["ID"]
        self.assertTrue(sid.startswith("sapi-"), out)
        self.assertEqual(vals["URL"], f"{st.url}/api/v1/sync/{sid}")
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(
            st.http("GET", f"/api/v1/sync/{sid}", key=None)), 5, what="sync API answers")
        self.assertEqual(body, {"greeting": "hello, fixed"})

        code, d = st.ctl_json("api", "create-sync", "ctltest__greet.greet", "--need-key")
        self.assertEqual(code, 0)
        status, _ = wait_for(lambda: (lambda r: r if r[0] != 404 else None)(
            st.http("GET", f"/api/v1/sync/{d['id']}", key=None)), 5, what="sync API known")
        self.assertEqual(status, 401)

        code, d = st.ctl_json("api", "create-async", "ctltest__greet.greet")
        self.assertEqual(code, 0)
        self.assertTrue(d["id"].startswith("aapi-"), d)
        code, apis = st.ctl_json("api", "list")
        self.assertEqual(code, 0)
        self.assertIn(sid, [a["id"] for a in apis["sync"]])
        self.assertIn(d["id"], [a["id"] for a in apis["async"]])


class CtlBackendDownTest(unittest.TestCase):
    def test_ctl_backend_down_exits_3(self):
        # its own stack: this one loses its Redis
        with Stack(name="ctl") as b:
            b.push_script("ctltest__one", "@DFF.API('one')\ndef f():\n    return 1\n")
            p = b.ctl("call", "ctltest__one.f")
            self.assertEqual((p.returncode, p.stdout.strip()), (0, "1"), p.stderr)
            os.kill(b.pids()["redis"], signal.SIGKILL)
            p = wait_for(lambda: (lambda p: p if p.returncode != 0 else None)(b.ctl("call", "ctltest__one.f")), 5,
                         what="call to fail")
            self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
            self.assertIn("503", p.stderr)
            code, out = b.ctl_json("call", "ctltest__one.f")
            self.assertEqual((code, out.get("reason")), (3, "EBackend"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
