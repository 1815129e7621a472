"""tandem-server against a real stack (redis-server, mariadbd, tandem-worker):
every endpoint of the HTTP API, every kind of bad input answered with a
clear error while the server keeps serving, a slow client cut off after
server.connection_timeout, two servers on one backend, SIGTERM drain.

Run: TANDEM_BUILD=build /usr/bin/python3 tests/integration/test_server_api.py
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

CODE = '''
import time

@DFF.API('Echo')
def echo(a=None, b=None, x=None, y=None):
    return {"a": a, "b": b, "x": x, "y": y}

@DFF.API('Nap', timeout=20)
def nap(s=0):
    time.sleep(float(s))
    return "slept %s" % s

@DFF.API('Boom')
def boom():
    return 1 / 0
'''

ST = None


def setUpModule():
    global ST
    if not harness.have_binaries("tandem-server", "tandem-worker", "tandemctl"):
        raise unittest.SkipTest("tandem-server/worker/tandemctl not built")
    os.environ.setdefault("TANDEM_TEST_PORTS", "18200-18299")
    ST = Stack(name="srv", workers=2).up()
    ST.push_script("t__srv", CODE)


def tearDownModule():
    if ST:
        ST.down()


def raw_request(port, data, read_timeout=10.0):
    """Send raw bytes, return the whole answer (until the server closes or
    read_timeout)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def port_of(st):
    return urllib.parse.urlsplit(st.url).port


class Envelope(unittest.TestCase):
    def assertErr(self, status, body, http, reason, msg_re=None):
        self.assertEqual(status, http, body)
        self.assertIsInstance(body, dict, body)
        self.assertIs(body["ok"], False)
        # DFF's decimal code: <HTTP status>.<two digits>, and the status itself
        self.assertEqual(int(body["error"]), http, body)
        self.assertEqual(body["status"], http, body)
        self.assertEqual(body["reason"], reason, body)
        for k in ("message", "detail", "data", "traceId", "reqTime", "respTime", "reqCost"):
            self.assertIn(k, body)
        if msg_re:
            self.assertRegex(body["message"], msg_re)

    def assertServing(self):
        status, body = ST.http("GET", "/api/v1/do/ping", key=None)
        self.assertEqual(status, 200)
        self.assertEqual(body["data"], "pong")


class TestEndpoints(Envelope):
    def test_ping_is_the_dff_envelope(self):
        status, body = ST.http("GET", "/api/v1/do/ping", key=None)
        self.assertEqual(status, 200)
        self.assertEqual(set(body), {"ok", "error", "message", "data", "traceId", "reqTime", "respTime", "reqCost"})
        self.assertIs(body["ok"], True)
        self.assertEqual(body["data"], "pong")
        self.assertRegex(body["reqTime"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_health_reports_redis_db_workers(self):
        d = wait_for(lambda: ST.api("GET", "/api/v1/health", key=None), 15, what="healthy")
        self.assertIs(d["redis"], True)
        self.assertIs(d["db"], True)
        self.assertGreaterEqual(d["workers"], 1)
        self.assertIn("epoch", d)

    def test_func_call_sync_async_and_task_status(self):
        d = ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 1}})
        self.assertTrue(d["id"].startswith("task-"))
        self.assertEqual(d["result"], {"a": 1, "b": None, "x": None, "y": None})
        d = ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"b": "z"}, "options": {"async": True}})
        t = ST.wait_task(d["id"])
        self.assertEqual(t["status"], "success")
        self.assertEqual(t["result"]["b"], "z")

    def test_failure_is_599_with_traceback(self):
        status, body = ST.http("POST", "/api/v1/func/t__srv.boom", {})
        self.assertErr(status, body, 599, "EFuncFailed", "ZeroDivisionError")
        self.assertIn("Traceback", body["detail"].get("traceback", ""))

    def test_delayed_call_is_accepted_into_the_delayed_zset(self):
        d = ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 2}, "options": {"delay": 3600}})
        self.assertTrue(d["id"].startswith("task-"))
        members = ST.redis("ZRANGE", "tandem:delayed", 0, -1)
        self.assertIn(d["id"], members)
        d = ST.api("POST", "/api/v1/func/t__srv.echo", {"options": {"eta": "2099-01-01T00:00:00Z"}})
        score = ST.redis("ZSCORE", "tandem:delayed",
                         [m for m in ST.redis("ZRANGE", "tandem:delayed", 0, -1).splitlines() if d["id"] in m][0])
        self.assertEqual(int(float(score)), 4070908800000)

    def test_sync_api_every_form_and_alias(self):
        sid = ST.create_sync_api("t__srv.echo", kwargs={"a": "fixed"})
        self.assertTrue(sid.startswith("sapi-"))
        q = urllib.parse.quote(json.dumps({"b": 2}))
        for path in (f"/api/v1/sync/{sid}?kwargs={q}", f"/api/v1/al/{sid}?kwargs={q}"):
            status, body = ST.http("GET", path, key=None)
            self.assertEqual(status, 200, body)
            self.assertEqual(body, {"a": "fixed", "b": 2, "x": None, "y": None})  # raw return value
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"b": [1]}}, key=None)
        self.assertEqual((status, body["b"]), (200, [1]))
        status, body = ST.http("GET", f"/api/v1/sync/{sid}/simplified?x=1&y=two", key=None)
        self.assertEqual(body, {"a": "fixed", "b": None, "x": "1", "y": "two"})
        status, body = ST.http("POST", f"/api/v1/al/{sid}/simplified", {"x": 5}, key=None)
        self.assertEqual((status, body["x"]), (200, 5))
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/simplified", "x=h%C3%A9+llo&y=", key=None,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, body["x"], body["y"]), (200, "h\u00e9 llo", ""), body)
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/simplified", "x=%FF", key=None,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertErr(status, body, 400, "EClientBadRequest", "form")

    def test_async_api_and_alias(self):
        aid = ST.create_async_api("t__srv.echo", kwargs={"a": 7})
        for path in (f"/api/v1/async/{aid}", f"/api/v1/bat/{aid}/simplified?x=3"):
            d = ST.api("GET", path, key=None)
            t = ST.wait_task(d["id"])
            self.assertEqual(t["status"], "success")
            self.assertEqual(t["result"]["a"], 7)

    def test_api_crud_and_disabled_api(self):
        for kind in ("sync-apis", "async-apis"):
            aid = ST.api("POST", f"/api/v1/{kind}/do/add",
                         {"data": {"funcId": "t__srv.echo", "title": "T", "timeout": 5}})["id"]
            d = ST.api("GET", f"/api/v1/{kind}/{aid}/do/get")
            self.assertEqual((d["title"], d["timeout"], d["isDisabled"], d["needKey"]), ("T", 5, False, False))
            self.assertIn(aid, [x["id"] for x in ST.api("GET", f"/api/v1/{kind}/do/list")])
            ST.api("POST", f"/api/v1/{kind}/{aid}/do/modify",
                   {"data": {"isDisabled": True, "funcCallKwargsJSON": {"a": 1}, "timeout": None}})
            d = ST.api("GET", f"/api/v1/{kind}/{aid}/do/get")
            self.assertEqual((d["isDisabled"], d["funcCallKwargsJSON"], d["timeout"]), (True, {"a": 1}, None))
            call = "/api/v1/sync/" if kind == "sync-apis" else "/api/v1/async/"
            status, body = ST.http("GET", call + aid, key=None)
            self.assertErr(status, body, 403, "EBizCondition.SyncAPIDisabled" if kind == "sync-apis"
                           else "EBizCondition.AsyncAPIDisabled", "disabled")
            ST.api("GET", f"/api/v1/{kind}/{aid}/do/delete")
            status, body = ST.http("GET", f"/api/v1/{kind}/{aid}/do/get")
            self.assertErr(status, body, 404, "EClientNotFound")
            status, body = ST.http("GET", call + aid, key=None)
            self.assertErr(status, body, 404, "EClientNotFound")

    def test_scripts_crud_and_funcs(self):
        ST.push_script("t__draft", "x = 1\n", publish=False, title="Draft")
        d = ST.api("GET", "/api/v1/scripts/t__draft/do/get")
        self.assertEqual((d["id"], d["title"], d["publishVersion"], d["code"]), ("t__draft", "Draft", 0, None))
        ids = [s["id"] for s in ST.api("GET", "/api/v1/scripts/do/list")]
        self.assertIn("t__draft", ids)
        self.assertIn("t__srv", ids)
        d = ST.api("GET", "/api/v1/scripts/t__srv/do/get")
        self.assertGreaterEqual(d["publishVersion"], 1)
        self.assertEqual(d["code"], d["codeDraft"])
        names = {f["id"] for f in ST.api("GET", "/api/v1/funcs/do/list?scriptId=t__srv")}
        self.assertEqual(names, {"t__srv.echo", "t__srv.nap", "t__srv.boom"})
        ST.api("GET", "/api/v1/scripts/t__draft/do/delete")
        status, body = ST.http("GET", "/api/v1/scripts/t__draft/do/get")
        self.assertErr(status, body, 404, "EClientNotFound")

    def test_publish_bumps_version_and_deleted_script_funcs_vanish(self):
        p1 = ST.push_script("t__gone", "@DFF.API('F')\ndef f():\n    return 1\n")
        self.assertEqual([f["name"] for f in p1["funcs"]], ["f"])
        self.assertEqual(ST.api("POST", "/api/v1/func/t__gone.f", {})["result"], 1)
        p2 = ST.push_script("t__gone", "@DFF.API('F')\ndef f():\n    return 2\n")
        self.assertEqual(p2["publish_version"], p1["publish_version"] + 1)
        self.assertEqual(ST.api("POST", "/api/v1/func/t__gone.f", {})["result"], 2)
        ST.api("GET", "/api/v1/scripts/t__gone/do/delete")
        status, body = ST.http("POST", "/api/v1/func/t__gone.f", {})
        self.assertErr(status, body, 404, "EClientNotFound")

    def test_publish_syntax_error_names_the_line(self):
        ST.push_script("t__bad", "x = 1\ndef f(:\n    pass\n", publish=False)
        status, body = ST.http("POST", "/api/v1/scripts/t__bad/do/publish", timeout=90)
        self.assertErr(status, body, 400, "EScriptSyntaxError", "line 2")
        self.assertEqual(body["detail"]["line"], 2)
        self.assertServing()

    def test_env_variables_crud(self):
        d = ST.api("POST", "/api/v1/env-variables/do/add", {"data": {"id": "SRV_TEST", "valueTEXT": "v1"}})
        self.assertEqual(d["id"], "SRV_TEST")
        ST.api("POST", "/api/v1/env-variables/SRV_TEST/do/modify", {"data": {"valueTEXT": "v2"}})
        self.assertEqual(ST.api("GET", "/api/v1/env-variables/SRV_TEST/do/get")["valueTEXT"], "v2")
        self.assertIn("SRV_TEST", [e["id"] for e in ST.api("GET", "/api/v1/env-variables/do/list")])
        ST.api("GET", "/api/v1/env-variables/SRV_TEST/do/delete")
        status, body = ST.http("GET", "/api/v1/env-variables/SRV_TEST/do/delete")
        self.assertErr(status, body, 404, "EClientNotFound")
        # Tandem's first paths for env variables are gone: DFF's shapes only
        status, body = ST.http("PUT", "/api/v1/env-variables/SRV_TEST", {"value": "v"})
        self.assertErr(status, body, 404, "EClientNotFound")

    def test_access_keys_secret_once_hashed_and_revocable(self):
        d = ST.api("POST", "/api/v1/access-keys/do/add", {"data": {"name": "srv-test"}})
        kid, secret = d["id"], d["secret"]
        self.assertTrue(secret.startswith("tk_"))
        listed = [k for k in ST.api("GET", "/api/v1/access-keys/do/list", key=secret) if k["id"] == kid][0]
        self.assertNotIn("secret", listed)
        self.assertNotIn(secret, json.dumps(ST.sql("SELECT id, name, secret_sha256, scope FROM access_key")))
        ST.api("GET", f"/api/v1/access-keys/{kid}/do/delete")
        status, body = ST.http("GET", "/api/v1/access-keys/do/list", key=secret)
        self.assertErr(status, body, 401, "EAPIAuth", "revoked")
        self.assertServing()

    def test_task_records_filters_and_paging(self):
        for i in range(3):
            ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": i}})
        q = "/api/v1/task-records/do/list?funcId=t__srv.echo&status=success&origin=direct&pageSize=2"

        def enough():
            # records are flushed in batches: wait for this test's own calls
            status, r = ST.http("GET", q)
            return r if status == 200 and r["pageInfo"]["totalCount"] >= 3 else None
        r = wait_for(enough, 30, 0.5, "task records flushed")
        self.assertEqual((r["pageInfo"]["pageNumber"], r["pageInfo"]["pageSize"], len(r["data"])), (1, 2, 2))
        self.assertTrue(all(it["funcId"] == "t__srv.echo" for it in r["data"]))
        for _ in range(20):
            # records of other tests' calls may land between the two pages:
            # compare pages read while the total stayed the same
            r1 = ST.http("GET", q)[1]
            r2 = ST.http("GET", q + "&pageNumber=2")[1]
            if r1["pageInfo"]["totalCount"] == r2["pageInfo"]["totalCount"]:
                break
        self.assertTrue(set(i["id"] for i in r2["data"]).isdisjoint(i["id"] for i in r1["data"]))
        # Tandem's time range (on the end time) and its own status names
        r = ST.http("GET", "/api/v1/task-records/do/list?funcId=t__srv.echo&since=2099-01-01T00:00:00Z")[1]
        self.assertEqual(r["pageInfo"]["totalCount"], 0)
        since = int(time.time()) - 3600
        r = ST.http("GET", f"/api/v1/task-records/do/list?origin=direct&since={since}"
                           "&until=2099-01-01T00:00:00Z&tandemStatus=success&pageSize=1")[1]
        self.assertGreaterEqual(r["pageInfo"]["totalCount"], 3)
        # a task whose Redis key is gone is still found in its record
        tid = r["data"][0]["id"]
        ST.redis("DEL", f"tandem:task:{tid}")
        self.assertEqual(ST.api("GET", f"/api/v1/tasks/{tid}")["id"], tid)

    def test_failover_events_newest_first_paged(self):
        ST.sql("INSERT INTO failover_event (node, from_state, to_state, cause, epoch, at) VALUES "
               "('node-a','BACKUP','MASTER','test one',1,'2026-01-01 00:00:00'),"
               "('node-b','BACKUP','MASTER','test two',2,'2026-01-02 00:00:00')")
        d = ST.api("GET", "/api/v1/failover-events?pageSize=1")
        self.assertEqual(d["pageSize"], 1)
        self.assertGreaterEqual(d["total"], 2)
        self.assertEqual(d["items"][0]["cause"], "test two")
        self.assertEqual(ST.api("GET", "/api/v1/failover-events?pageSize=1&page=2")["items"][0]["cause"], "test one")

    def test_metrics_prometheus_text(self):
        ST.api("POST", "/api/v1/func/t__srv.echo", {})
        ST.redis("HSET", "tandem:stats:beat", "fired", "3")
        status, text = ST.http("GET", "/metrics", key=None, raw=True)
        self.assertEqual(status, 200)
        text = text.decode()
        for needle in ('tandem_http_requests_total{route="call",status="2xx"}', 'tandem_calls_total{outcome="success"}',
                       "tandem_http_request_duration_seconds_bucket", 'tandem_queue_length{queue="sync"}',
                       'tandem_queue_pending{queue="async"}', "tandem_workers_live ", "tandem_beat_fired 3",
                       "tandem_worker_tasks "):
            self.assertIn(needle, text)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                self.assertRegex(line, r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})? -?[0-9.e+Inf]+$')

    def test_server_heartbeat_key(self):
        pid = ST.pids()["server"]
        hb = json.loads(ST.redis("GET", f"tandem:hb:server:local:{pid}"))
        self.assertEqual((hb["kind"], hb["pid"]), ("server", pid))
        ttl = int(ST.redis("PTTL", f"tandem:hb:server:local:{pid}"))
        self.assertTrue(0 < ttl <= 5000, ttl)

    def test_cron_routes_reach_the_cron_module(self):
        status, body = ST.http("GET", "/api/v1/cron-jobs/_settings")
        self.assertEqual(status, 200, body)
        self.assertIn("paused", body["data"])


class TestBadInput(Envelope):
    def test_malformed_json_names_position(self):
        status, body = ST.http("POST", "/api/v1/func/t__srv.echo", '{"kwargs": {"a": 1}')
        self.assertErr(status, body, 400, "EClientBadRequest", r"malformed JSON.*position \d+")
        self.assertIn("position", body["detail"])
        status, body = ST.http("POST", "/api/v1/scripts/t__x/do/modify", "not json")
        self.assertErr(status, body, 400, "EClientBadRequest", "malformed JSON")
        status, body = ST.http("GET", "/api/v1/sync/whatever?kwargs=%7B", key=None)
        self.assertIn(status, (400, 404))
        self.assertServing()

    def test_wrong_types_name_the_field(self):
        cases = [
            ("POST", "/api/v1/func/t__srv.echo", {"kwargs": []}, "kwargs"),
            ("POST", "/api/v1/func/t__srv.echo", {"options": {"async": "yes"}}, "async"),
            ("POST", "/api/v1/func/t__srv.echo", {"options": {"timeout": 0}}, "timeout"),
            ("POST", "/api/v1/func/t__srv.echo", {"options": {"eta": "soon"}}, "eta"),
            ("POST", "/api/v1/func/t__srv.echo", [1, 2], "object"),
            ("POST", "/api/v1/scripts/do/add", {"data": {"id": "t__x", "codeDraft": 5}}, "codeDraft"),
            ("POST", "/api/v1/scripts/do/add", {"data": {"codeDraft": "x = 1"}}, "id"),
            ("POST", "/api/v1/sync-apis/do/add", {"data": {"funcId": "t__srv.echo", "needKey": "no"}},
             "needKey"),
            ("POST", "/api/v1/sync-apis/do/add", {"data": {"funcId": "nodots"}}, "funcId"),
            ("POST", "/api/v1/env-variables/do/add", {"data": {"id": "X", "valueTEXT": {"a": 1}}}, "valueTEXT"),
            ("GET", "/api/v1/task-records/do/list?pageNumber=0", None, "pageNumber"),
            ("GET", "/api/v1/task-records/do/list?since=yesterday", None, "since"),
        ]
        for method, path, body, field in cases:
            status, ans = ST.http(method, path, body)
            self.assertErr(status, ans, 400, "EClientBadRequest")
            self.assertIn(field, ans["message"], (path, body, ans))
        self.assertServing()

    def test_body_over_limit_is_413_without_reading_it(self):
        limit = 1 << 20
        # the answer comes before the body is read: a raw client sees it
        head = (f"POST /api/v1/func/t__srv.echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ST.key}\r\n"
                f"Content-Length: {limit + 10}\r\n\r\n").encode()
        s = socket.create_connection(("127.0.0.1", port_of(ST)), timeout=10)
        s.sendall(head)
        try:
            s.sendall(b"x" * 65536)
        except OSError:
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:
            pass
        s.close()
        self.assertIn(b" 413 ", out.split(b"\r\n", 1)[0], out[:200])
        body = json.loads(out.split(b"\r\n\r\n", 1)[1])
        self.assertErr(413, body, 413, "EClientBodyTooLarge", "body_limit")
        # chunked: no Content-Length to refuse up front
        head = (f"POST /api/v1/func/t__srv.echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ST.key}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        chunks = b"".join(b"%x\r\n%s\r\n" % (65536, b"y" * 65536) for _ in range(20)) + b"0\r\n\r\n"
        out = raw_request(port_of(ST), head + chunks)
        self.assertIn(b" 413 ", out.split(b"\r\n", 1)[0])
        self.assertIn(b"EClientBodyTooLarge", out)
        self.assertServing()

    def test_unknown_and_unpublished_func(self):
        status, body = ST.http("POST", "/api/v1/func/t__srv.nope", {})
        self.assertErr(status, body, 404, "EClientNotFound", "t__srv.nope")
        ST.push_script("t__unpub", "@DFF.API('U')\ndef u():\n    return 1\n", publish=False)
        status, body = ST.http("POST", "/api/v1/func/t__unpub.u", {})
        self.assertErr(status, body, 404, "EClientNotFound", "not published")
        status, body = ST.http("POST", "/api/v1/func/bad-id", {})
        self.assertErr(status, body, 400, "EClientBadRequest", "func id")
        sid = ST.create_sync_api("t__unpub.u")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None)
        self.assertErr(status, body, 404, "EClientNotFound")
        status, body = ST.http("GET", "/api/v1/sync/sapi-doesnotexist", key=None)
        self.assertErr(status, body, 404, "EClientNotFound", "sapi-doesnotexist")
        self.assertServing()

    def test_missing_unknown_and_revoked_keys(self):
        status, body = ST.http("GET", "/api/v1/scripts/do/list", key=None)
        self.assertErr(status, body, 401, "EAPIAuth", "missing")
        status, body = ST.http("GET", "/api/v1/scripts/do/list", key="tk_" + "0" * 40)
        self.assertErr(status, body, 401, "EAPIAuth")
        status, body = ST.http("GET", "/api/v1/scripts/do/list", headers={"Authorization": "Basic abc"},
                               key=None)
        self.assertErr(status, body, 401, "EAPIAuth", "Bearer")
        # a Sync API that needs a key
        sid = ST.create_sync_api("t__srv.echo", need_key=True)
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None)
        self.assertErr(status, body, 401, "EAPIAuth")
        d = ST.api("POST", "/api/v1/access-keys/do/add", {"data": {"name": "caller", "scope": "call"}})
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=d["secret"])
        self.assertEqual(status, 200, body)
        ST.api("GET", f"/api/v1/access-keys/{d['id']}/do/delete")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=d["secret"])
        self.assertErr(status, body, 401, "EAPIAuth", "revoked")
        self.assertServing()

    def test_unknown_route_404_wrong_method_405(self):
        status, body = ST.http("GET", "/api/v1/nothing-here")
        self.assertErr(status, body, 404, "EClientNotFound", "no such route")
        status, body = ST.http("DELETE", "/api/v1/do/ping")
        self.assertErr(status, body, 405, "EClientMethodNotAllowed")
        self.assertEqual(body["detail"]["allow"], "GET")
        status, body = ST.http("GET", "/api/v1/func/t__srv.echo")
        self.assertErr(status, body, 405, "EClientMethodNotAllowed")
        self.assertServing()

    def test_garbage_http_is_answered_or_closed(self):
        out = raw_request(port_of(ST), b"THIS IS NOT HTTP\r\n\r\n", read_timeout=5)
        self.assertTrue(out == b"" or out.startswith(b"HTTP/1."), out[:100])
        out = raw_request(port_of(ST), b"GET /api/v1/do/ping HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 100000
                          + b"\r\n\r\n", read_timeout=5)
        self.assertTrue(out == b"" or re.match(rb"HTTP/1.1 4\d\d", out), out[:100])
        self.assertServing()

    def test_random_requests_never_hurt_the_server(self):
        """300 mutated requests (seeded): every one gets an HTTP answer or a
        closed connection, never a crash or a hang."""
        import random
        rnd = random.Random(4466)
        paths = ["/api/v1/func/t__srv.echo", "/api/v1/sync/x", "/api/v1/scripts/t__x/do/modify",
                 "/api/v1/sync-apis/do/add", "/api/v1/tasks/task-1", "/api/v1/task-records/do/list?pageNumber=1",
                 "/api/v1/env-variables/E/do/modify", "/metrics"]
        bodies = [b'{"kwargs":{"a":1}}', b'{"options":{"async":true,"eta":"2030-01-01T00:00:00Z"}}',
                  b'{"data":{"codeDraft":"x=1"}}', b'{"data":{"funcId":"a__b.c","funcCallKwargsJSON":{}}}',
                  b'{"data":{"valueTEXT":"v"}}']
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "BREW"]
        for i in range(300):
            body = bytearray(rnd.choice(bodies))
            for _ in range(rnd.randint(0, 4)):
                op = rnd.randint(0, 2)
                pos = rnd.randint(0, len(body))
                if op == 0:
                    body[pos:pos] = bytes([rnd.randint(0, 255)])
                elif op == 1 and body:
                    del body[min(pos, len(body) - 1)]
                else:
                    body[pos:pos] = rnd.choice([b'"', b"{", b"]", b"\\u0000", b"\xff", b"1e999", b"[" * 50])
            path = rnd.choice(paths)
            if rnd.random() < 0.2:
                path += urllib.parse.quote(bytes(rnd.randint(1, 255) for _ in range(5)), safe="")
            method = rnd.choice(methods)
            head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ST.key}\r\n"
            if rnd.random() < 0.8:
                head += f"Content-Length: {len(body)}\r\n"
            out = raw_request(port_of(ST), head.encode() + b"Connection: close\r\n\r\n" + bytes(body),
                              read_timeout=15)
            self.assertTrue(out == b"" or out.startswith(b"HTTP/1.1 "), (i, method, path, bytes(body), out[:200]))
            status = int(out.split(b" ", 2)[1]) if out else 0
            self.assertNotEqual(status, 500, (i, method, path, bytes(body), out[:400]))
        self.assertServing()
        self.assertEqual(ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 1}})["result"]["a"], 1)


class TestSecondServer(Envelope):
    """A second tandem-server with a copy of the config on another port,
    connection_timeout 2 s and a 4 KiB body limit."""

    @classmethod
    def setUpClass(cls):
        cls.port = harness.free_port()
        with open(ST.conf) as f:
            conf = f.read()
        conf = re.sub(r"server = \{[^}]*\};",
                      f'server = {{ listen = "127.0.0.1"; port = {cls.port}; connection_timeout = 2; '
                      f"body_limit = 4096; }};", conf)
        cls.conf = os.path.join(ST.dir, "tandem-2.conf")
        with open(cls.conf, "w") as f:
            f.write(conf)
        cls.log = open(os.path.join(ST.dir, "log", "server-2.log"), "ab")
        cls.proc = subprocess.Popen([os.path.join(harness.BIN, "tandem-server"), "-c", cls.conf],
                                    stdout=cls.log, stderr=cls.log, stdin=subprocess.DEVNULL)
        cls.url = f"http://127.0.0.1:{cls.port}"
        wait_for(lambda: cls.get("/api/v1/do/ping")[0] == 200, 10, what="second server up")

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()

    @classmethod
    def get(cls, path, method="GET", body=None, key=harness.ADMIN, timeout=60):
        # Stack.http only reads .url and .key: aim it at this server
        # without touching ST (other threads use ST at the same time)
        return Stack.http(types.SimpleNamespace(url=cls.url, key=ST.key), method, path, body, key=key,
                          timeout=timeout)

    def test_two_servers_on_one_backend_each_serve_sync_calls(self):
        results = {}

        def call(name, fn, i):
            results[(name, i)] = fn("/api/v1/func/t__srv.echo", "POST", {"kwargs": {"a": i}})

        def first(path, method, body):
            return ST.http(method, path, body)
        threads = [threading.Thread(target=call, args=(n, fn, i))
                   for i in range(10) for n, fn in (("one", first), ("two", self.get))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for (name, i), (status, body) in results.items():
            self.assertEqual(status, 200, (name, body))
            self.assertEqual(body["data"]["result"]["a"], i, (name, body))
        hb = ST.redis("KEYS", "tandem:hb:server:*").split()
        self.assertGreaterEqual(len(hb), 2, hb)

    def test_admin_write_on_one_server_reaches_the_others_cache(self):
        sid = ST.create_sync_api("t__srv.echo", kwargs={"a": "via-one"})
        t0 = time.monotonic()
        status, body = wait_for(lambda: (lambda r: r if r[0] == 200 else None)(self.get(f"/api/v1/sync/{sid}",
                                                                                         key=None)),
                                5, 0.05, "the second server to know the new API")
        self.assertEqual(body["a"], "via-one")
        self.assertLess(time.monotonic() - t0, 2)
        ST.api("POST", f"/api/v1/sync-apis/{sid}/do/modify", {"data": {"isDisabled": True}})
        wait_for(lambda: self.get(f"/api/v1/sync/{sid}", key=None)[0] == 403, 5, 0.05, "disable to propagate")

    def test_body_limit_from_config(self):
        status, body = self.get("/api/v1/func/t__srv.echo", "POST", {"kwargs": {"a": "x" * 5000}})
        self.assertErr(status, body, 413, "EClientBodyTooLarge")
        status, body = self.get("/api/v1/func/t__srv.echo", "POST", {"kwargs": {"a": "x" * 3000}})
        self.assertEqual(status, 200, body)

    def test_slow_client_is_cut_off_while_others_are_served(self):
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"POST /api/v1/func/t__srv.echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"kw")
        t0 = time.monotonic()
        # meanwhile other clients are served
        for _ in range(3):
            self.assertEqual(self.get("/api/v1/do/ping", key=None)[0], 200)
        s.settimeout(15)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        took = time.monotonic() - t0
        s.close()
        self.assertTrue(data == b"" or data.startswith(b"HTTP/1.1 4"), data[:100])
        self.assertLess(took, 8, "slow client not closed after connection_timeout")
        self.assertGreaterEqual(took, 1.5)
        self.assertEqual(self.get("/api/v1/do/ping", key=None)[0], 200)

    def test_zz_sigterm_answers_in_flight_then_exits_0(self):
        res = {}

        def slow():
            res["r"] = self.get("/api/v1/func/t__srv.nap", "POST", {"kwargs": {"s": 1.5}})
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGTERM)
        t.join(30)
        self.assertEqual(self.proc.wait(30), 0)
        status, body = res["r"]
        self.assertEqual(status, 200, body)
        self.assertEqual(body["data"]["result"], "slept 1.5")
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
        # the first server never noticed
        self.assertServing()


class TestZBackendDown(Envelope):
    """Runs last: the backends stop (SIGSTOP) and come back."""

    def test_redis_down_is_503_then_recovers(self):
        rpid = ST.pids()["redis"]
        os.kill(rpid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            status, body = ST.http("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 1}}, timeout=30)
            self.assertErr(status, body, 503, "EBackend", "redis")
            self.assertLess(time.monotonic() - t0, 10)
            self.assertServing()  # ping needs no backend
        finally:
            os.kill(rpid, signal.SIGCONT)
        d = wait_for(lambda: ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 3}}), 30, 0.5,
                     "calls again after redis is back")
        self.assertEqual(d["result"]["a"], 3)

    def test_db_down_admin_is_503_calls_still_work(self):
        ST.api("GET", "/api/v1/scripts/do/list")  # make sure the thread's connection exists
        for i in range(8):  # every worker child has the script's code cached
            ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": i}})
        mpid = ST.pids()["mariadb"]
        os.kill(mpid, signal.SIGSTOP)
        try:
            # calls need no SQL: served from the cache
            d = ST.api("POST", "/api/v1/func/t__srv.echo", {"kwargs": {"a": 9}}, timeout=30)
            self.assertEqual(d["result"]["a"], 9)
            status, body = ST.http("GET", "/api/v1/scripts/do/list", timeout=60)
            self.assertErr(status, body, 503, "EBackend", "database")
        finally:
            os.kill(mpid, signal.SIGCONT)
        wait_for(lambda: ST.api("GET", "/api/v1/scripts/do/list"), 30, 0.5, "admin again after the db is back")


if __name__ == "__main__":
    unittest.main(verbosity=2)
