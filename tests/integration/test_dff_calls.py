"""Sync/Async API calls as DataFlux Func serves them, against a real stack:
fixed kwargs and placeholders, call formats and paths, request bodies
(text, binary, multipart uploads), raw results and DFF.RESP rendering,
disabled/expired APIs, throttling and the queue-depth cap, API Auth (fixed
field, HTTP Basic, HTTP Digest as python-requests does it, auth func), the
func's queue/expires/api_timeout, and public failures without tracebacks.

Run: TANDEM_BUILD=build /usr/bin/python3 tests/integration/test_dff_calls.py
"""
import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import types
import unittest
import urllib.parse

import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

CODE = '''
import time

@DFF.API('Add')
def add(x, y=100):
    return float(x) + float(y)

@DFF.API('Floats')
def floats(x, y):
    return float(x) + float(y)

@DFF.API('Floats in an object')
def floats_obj():
    return {'a': 30.0, 'b': 0.5, 'c': [2.0, 1e300]}

@DFF.API('Echo')
def echo(**kwargs):
    return kwargs

@DFF.API('Text')
def text(s='hello'):
    return s

@DFF.API('Nothing')
def nothing():
    return None

@DFF.API('Boom')
def boom():
    return 1 / 0

@DFF.API('Files')
def files(files=None, **kwargs):
    out = []
    for f in files or []:
        with open(f['filePath'], 'rb') as fh:
            data = fh.read()
        out.append({'name': f['originalname'], 'size': f['size'], 'mimetype': f['mimetype'],
                    'path': f['filePath'], 'hex': data.hex()})
    return {'files': out, 'fields': kwargs}

@DFF.API('Auth')
def auth(req):
    return req['headers'].get('x-my-token') == '<TOKEN>'

@DFF.API('Nap')
def nap(s=0):
    time.sleep(float(s))
    return 'slept'

@DFF.API('Cached', cache_result=30)
def cached():
    return 'at %r' % time.time()

@DFF.API('Held', queue=7, expires=600)
def held():
    time.sleep(6)
    return 'real'

@DFF.API('HeldLong', queue=7, api_timeout=50)
def held_long():
    time.sleep(6)
    return 'real'
'''

SID = "t__calls"
ST = None


def setUpModule():
    global ST
    if not harness.have_binaries("tandem-server", "tandem-worker", "tandemctl"):
        raise unittest.SkipTest("tandem-server/worker/tandemctl not built")
    os.environ.setdefault("TANDEM_TEST_PORTS", "18600-18699")
    ST = Stack(name="calls", workers=2).up()
    ST.push_script(SID, CODE)


def tearDownModule():
    if ST:
        ST.down()


def q(s):
    """SQL string literal."""
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def sync_api(func, kwargs=None, table="sync_api"):
    if table == "sync_api":
        return ST.create_sync_api(f"{SID}.{func}", kwargs=kwargs)
    return ST.create_async_api(f"{SID}.{func}", kwargs=kwargs)


_marker = {"id": None, "n": 0}


def sql_and_reload(*stmts):
    """Run SQL, bump the generation and wait until the server's cache holds
    it: a marker API's fixed kwargs change in the same generation and are
    polled (an event, not a sleep)."""
    if _marker["id"] is None:
        _marker["id"] = sync_api("echo")
    _marker["n"] += 1
    n = _marker["n"]
    ST.sql("; ".join(list(stmts) + [
        f"UPDATE sync_api SET kwargs_json = '{{\"gen\": {n}}}' WHERE id = '{_marker['id']}'"]))
    ST.redis("INCR", "tandem:gen")
    wait_for(lambda: ST.http("GET", f"/api/v1/sync/{_marker['id']}", key=None)[1] == {"gen": n}, 10, 0.05,
             "the server's cache to reload")


def multipart(fields, files, boundary="----tandemtestboundary"):
    out = b""
    for k, v in fields.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n").encode()
    for k, (name, data, ctype) in files.items():
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"{name}\"\r\n"
                f"Content-Type: {ctype}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return out, f"multipart/form-data; boundary={boundary}"


def raw_http(method, path, body=None, headers=None, url=None):
    """(status, headers dict lower-cased, body bytes)."""
    import http.client
    u = urllib.parse.urlsplit(url or ST.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def stream_tasks(queue):
    """Task JSON objects on the stream tandem:q:<queue>."""
    out = ST.redis("XRANGE", f"tandem:q:{queue}", "-", "+")
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


class Case(unittest.TestCase):
    def assertErr(self, status, body, http, reason, msg_re=None):
        self.assertEqual(status, http, body)
        self.assertIsInstance(body, dict, body)
        self.assertIs(body["ok"], False)
        # DFF's decimal codes (403.21) or the plain status: its integer part
        self.assertEqual(int(float(body["error"])), http, body)
        self.assertEqual(body["reason"], reason, body)
        if msg_re:
            self.assertRegex(body["message"], msg_re)

    def assertServing(self):
        status, body = ST.http("GET", "/api/v1/do/ping", key=None)
        self.assertEqual(status, 200)


class TestKwargs(Case):
    def test_placeholders_fill_or_vanish_and_fixed_kwargs_cannot_be_overridden(self):
        sid = sync_api("add", {"x": "INPUT_BY_CALLER", "y": "FROM_PARAMETER"})
        kw = urllib.parse.quote(json.dumps({"x": 1, "y": 2}))
        self.assertEqual(ST.http("GET", f"/api/v1/sync/{sid}?kwargs={kw}", key=None), (200, 3.0))
        # y not given: the placeholder is dropped and the func's default applies
        kw = urllib.parse.quote(json.dumps({"x": 1}))
        self.assertEqual(ST.http("GET", f"/api/v1/sync/{sid}?kwargs={kw}", key=None), (200, 101.0))
        sid = sync_api("add", {"x": "INPUT_BY_CALLER", "y": 5})
        self.assertEqual(ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"x": 1}}, key=None), (200, 6.0))
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"x": 1, "y": 7}}, key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "fixed kwargs field")
        self.assertEqual((body["detail"]["kwargsField"], body["detail"]["kwargsValue"]), ("y", 7))
        status, body = ST.http("GET", f"/api/v1/sync/{sid}/s?x=1&y=7", key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "fixed kwargs field")

    def test_formats_and_paths(self):
        sid = sync_api("echo", {"fixed": 1})
        kw = urllib.parse.quote(json.dumps({"a": 1}))
        for path in (f"/api/v1/sync/{sid}?kwargs={kw}", f"/api/v1/sync/{sid}/normal?kwargs={kw}",
                     f"/api/v1/al/{sid}/normal/any/tail.csv?kwargs={kw}"):
            self.assertEqual(ST.http("GET", path, key=None), (200, {"fixed": 1, "a": 1}), path)
        for path in (f"/api/v1/sync/{sid}/simplified?a=x", f"/api/v1/sync/{sid}/s?a=x",
                     f"/api/v1/sync/{sid}/s/some/file.txt?a=x"):
            self.assertEqual(ST.http("GET", path, key=None), (200, {"fixed": 1, "a": "x"}), path)
        self.assertEqual(ST.http("POST", f"/api/v1/sync/{sid}/s/x", {"a": [1]}, key=None),
                         (200, {"fixed": 1, "a": [1]}))
        # normal form posted as a form: kwargs as JSON text
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", "kwargs=%7B%22a%22%3A2%7D", key=None,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, body), (200, {"fixed": 1, "a": 2}))
        status, body = ST.http("GET", f"/api/v1/sync/{sid}/fancy", key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "format")

    def test_bad_kwargs_are_400_naming_the_problem(self):
        sid = sync_api("echo")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}?kwargs=%7B%22a%22", key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "bad JSON format")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}?kwargs=%5B1%5D", key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "JSON object")
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": "nope"}, key=None)
        self.assertErr(status, body, 400, "EClientBadRequest", "bad JSON format")
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/s", "[1, 2]", key=None,
                               headers={"Content-Type": "application/json"})
        self.assertErr(status, body, 400, "EClientBadRequest", "JSON object")
        self.assertServing()

    def test_text_and_binary_bodies(self):
        sid = sync_api("echo")
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/s", "hello, world", key=None,
                               headers={"Content-Type": "text/plain"})
        self.assertEqual((status, body), (200, {"text": "hello, world"}))
        status, body = ST.http("POST", f"/api/v1/sync/{sid}", b"\x00\x01\xff", key=None,
                               headers={"Content-Type": "application/octet-stream"})
        self.assertEqual((status, body), (200, {"base64": "AAH/"}))


class TestUploads(Case):
    def test_sync_upload_reaches_the_func_and_is_removed_after(self):
        sid = sync_api("files")
        data, ctype = multipart({"note": "hi"}, {"f1": ("a.txt", b"alpha\n", "text/plain"),
                                                 "f2": ("b.bin", bytes(range(256)), "application/octet-stream")})
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/s", data, key=None, headers={"Content-Type": ctype})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["fields"], {"note": "hi"})
        got = {f["name"]: f for f in body["files"]}
        self.assertEqual(bytes.fromhex(got["a.txt"]["hex"]), b"alpha\n")
        self.assertEqual(got["a.txt"]["size"], 6)
        self.assertEqual(bytes.fromhex(got["b.bin"]["hex"]), bytes(range(256)))
        self.assertEqual(got["b.bin"]["mimetype"], "application/octet-stream")
        # the client's file name never becomes a path; the files are gone now
        self.assertNotIn("a.txt", got["a.txt"]["path"])
        self.assertFalse(os.path.exists(got["a.txt"]["path"]))
        self.assertFalse(os.path.exists(os.path.dirname(got["a.txt"]["path"])))

    def test_async_upload_stays_until_the_worker_ran(self):
        aid = sync_api("files", table="async_api")
        data, ctype = multipart({}, {"f": ("c.txt", b"gamma", "text/plain")})
        status, body = ST.http("POST", f"/api/v1/async/{aid}/s", data, key=None, headers={"Content-Type": ctype})
        self.assertEqual(status, 200, body)
        t = ST.wait_task(body["data"]["id"])
        self.assertEqual(t["status"], "success", t)
        self.assertEqual(bytes.fromhex(t["result"]["files"][0]["hex"]), b"gamma")

    def test_malformed_multipart_is_400(self):
        sid = sync_api("files")
        status, body = ST.http("POST", f"/api/v1/sync/{sid}/s", b"--x\r\nnonsense", key=None,
                               headers={"Content-Type": "multipart/form-data"})
        self.assertErr(status, body, 400, "EClientBadRequest", "multipart")
        self.assertServing()


class TestResults(Case):
    def test_string_results_are_raw_and_none_is_empty(self):
        sid = sync_api("text")
        kw = urllib.parse.quote(json.dumps({"s": "h\u00e9llo \"q\""}))
        status, hdrs, body = raw_http("GET", f"/api/v1/sync/{sid}?kwargs={kw}")
        self.assertEqual((status, body), (200, "h\u00e9llo \"q\"".encode()))
        self.assertTrue(hdrs["content-type"].startswith("text/plain"), hdrs)
        sid = sync_api("nothing")
        status, hdrs, body = raw_http("GET", f"/api/v1/sync/{sid}")
        self.assertEqual((status, body), (200, b""))
        # an Async API answers the task id in the envelope
        aid = sync_api("text", table="async_api")
        status, body = ST.http("GET", f"/api/v1/async/{aid}", key=None)
        self.assertEqual(status, 200, body)
        self.assertEqual(ST.wait_task(body["data"]["id"])["result"], "hello")

    def test_integral_floats_are_written_as_dff_writes_them(self):
        # DFF's own suite: test_func returns float(x) + float(y) and compares
        # str(answer) with str(x + y); its Node.js server writes 30.0 as 30
        sid = sync_api("floats")
        status, hdrs, body = raw_http("GET", f"/api/v1/sync/{sid}?x=10&y=20".replace("?", "/s?"))
        self.assertEqual((status, body), (200, b"30"))
        status, body = ST.http("POST", "/api/v1/func/t__calls.floats_obj", {"kwargs": {}})
        self.assertEqual(status, 200, body)
        self.assertEqual(body["data"]["result"], {"a": 30, "b": 0.5, "c": [2, 1e300]})
        self.assertIsInstance(body["data"]["result"]["a"], int)

    def test_cached_result_is_served_with_dffs_cache_header(self):
        sid = sync_api("cached")
        status, hdrs, first = raw_http("GET", f"/api/v1/sync/{sid}")
        self.assertEqual(status, 200)
        self.assertNotIn("x-dff-cache", hdrs)
        status, hdrs, again = wait_for(lambda: (lambda a: a if "x-dff-cache" in a[1] else None)(
            raw_http("GET", f"/api/v1/sync/{sid}")), 10, 0.1, "a cached answer")
        self.assertEqual((status, again, hdrs["x-dff-cache"]), (200, first, "Cached"))

    def test_public_failure_gives_reason_and_message_but_no_traceback(self):
        sid = sync_api("boom")
        status, hdrs, raw = raw_http("GET", f"/api/v1/sync/{sid}")
        body = json.loads(raw)
        self.assertErr(status, body, 599, "EFuncFailed", "ZeroDivisionError")
        self.assertNotIn(b"Traceback", raw)
        self.assertNotIn("traceback", body["detail"])
        # the operator still finds it in the task
        t = ST.wait_task(body["detail"]["id"])
        self.assertIn("ZeroDivisionError", t.get("traceback") or "", t)
        # the task id alone (no key) shows the status, not the traceback
        status, pub = ST.http("GET", f"/api/v1/tasks/{t['id']}", key=None)
        self.assertEqual((status, pub["data"]["status"]), (200, "failure"), pub)
        self.assertNotIn("traceback", pub["data"])
        self.assertNotIn("output", pub["data"])

    def _inject(self, func, outcome, path_tail=""):
        """Call a Sync API of `func` (queue 7, sleeping: no real answer comes
        first), take its task off the stream and push `outcome` to the
        server's reply list as a worker would. Returns (status, headers, body, task)."""
        sid = sync_api(func)
        res = {}

        def call():
            res["r"] = raw_http("GET", f"/api/v1/sync/{sid}{path_tail}")
        th = threading.Thread(target=call)
        th.start()
        task = wait_for(lambda: next((t for t in stream_tasks(7) if t.get("origin_id") == sid), None), 10, 0.05,
                        "the task on tandem:q:7")
        o = dict(outcome, id=task["id"])
        ST.redis("LPUSH", f"tandem:reply:{task['reply']}", json.dumps(o))
        th.join(30)
        return res["r"] + (task,)

    def test_dff_resp_status_content_type_headers(self):
        status, hdrs, body, task = self._inject("held_long", {
            "status": "success", "result": "a,b\n1,2\n",
            "resp": {"status_code": 201, "content_type": "csv", "headers": {"X-Extra": "yes", "Bad\r\nX": "no"},
                     "download": None, "allow_304": False}})
        self.assertEqual((status, body), (201, b"a,b\n1,2\n"))
        self.assertTrue(hdrs["content-type"].startswith("text/csv"), hdrs)
        self.assertEqual(hdrs.get("x-extra"), "yes")
        self.assertIn("last-modified", hdrs)
        # api_timeout=50 beats the 35 s sync default; the func's queue=7
        self.assertEqual((task["timeout"], task["queue"]), (50, "7"))

    def test_dff_resp_file_download(self):
        png = b"\x89PNG\r\n\x1a\nfake"
        status, hdrs, body, _ = self._inject("held_long", {
            "status": "success", "result": "pic.png",
            "resp": {"file_base64": base64.b64encode(png).decode(), "download": "my \"pic\".png",
                     "allow_304": True}})
        self.assertEqual((status, body), (200, png))
        self.assertEqual(hdrs["content-type"], "image/png")
        self.assertEqual(hdrs["content-disposition"], 'attachment; filename="my _pic_.png"')
        self.assertNotIn("last-modified", hdrs)

    def test_injected_failure_with_traceback_is_not_shown(self):
        status, hdrs, raw, _ = self._inject("held_long", {
            "status": "failure", "reason": "EFuncFailed", "message": "ValueError: no",
            "traceback": "Traceback (most recent call last): secret", "output": "secret print"})
        self.assertEqual(status, 599)
        self.assertNotIn(b"secret", raw)
        self.assertEqual(json.loads(raw)["message"], "ValueError: no")


class TestLimits(Case):
    def test_disabled_and_expired_apis(self):
        sid = sync_api("text")
        aid = sync_api("text", table="async_api")
        sql_and_reload(f"UPDATE sync_api SET enabled = 0 WHERE id = '{sid}'",
                       f"UPDATE async_api SET enabled = 0 WHERE id = '{aid}'")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None)
        self.assertErr(status, body, 403, "EBizCondition.SyncAPIDisabled", "disabled")
        status, body = ST.http("GET", f"/api/v1/async/{aid}", key=None)
        self.assertErr(status, body, 403, "EBizCondition.AsyncAPIDisabled", "disabled")
        sql_and_reload(f"UPDATE sync_api SET enabled = 1, expire_time = NOW(3) - INTERVAL 1 SECOND "
                       f"WHERE id = '{sid}'")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None)
        self.assertErr(status, body, 403, "EBizCondition.SyncAPIExpired", "expired")
        sql_and_reload(f"UPDATE sync_api SET expire_time = NOW(3) + INTERVAL 1 DAY WHERE id = '{sid}'")
        self.assertEqual(raw_http("GET", f"/api/v1/sync/{sid}")[2], b"hello")

    def test_throttling_by_minute_answers_429_with_retry_after(self):
        sid = sync_api("text")
        sql_and_reload(f"UPDATE sync_api SET throttling_json = '{{\"byMinute\": 3}}' WHERE id = '{sid}'")
        if time.time() % 60 > 55:  # all four calls in one minute window
            time.sleep(61 - time.time() % 60)
        for _ in range(3):
            self.assertEqual(raw_http("GET", f"/api/v1/sync/{sid}")[0], 200)
        status, hdrs, raw = raw_http("GET", f"/api/v1/sync/{sid}")
        body = json.loads(raw)
        self.assertErr(status, body, 429, "EClientRateLimit.APIThrottling", "rate")
        self.assertEqual((body["detail"]["rule"], body["detail"]["limit"], body["detail"]["currentCount"]),
                         ("byMinute", 3, 4))
        self.assertGreaterEqual(int(hdrs["retry-after"]), 1)
        self.assertLessEqual(int(hdrs["retry-after"]), 61)
        # another API is not affected
        self.assertEqual(raw_http("GET", f"/api/v1/sync/{sync_api('text')}")[0], 200)

    def test_async_default_timeout_and_func_queue_and_expires(self):
        aid = sync_api("held", table="async_api")
        status, body = ST.http("GET", f"/api/v1/async/{aid}", key=None)
        self.assertEqual(status, 200, body)
        tid = body["data"]["id"]
        t = wait_for(lambda: next((t for t in stream_tasks(7) if t["id"] == tid), None), 5, 0.05, "task on q:7")
        self.assertEqual((t["queue"], t["timeout"], t["origin"]), ("7", 3600, "async-api"))
        self.assertEqual(t["expires"] - t["enq"], 600 * 1000)

    def test_func_call_timeout_option_stays_under_the_sync_cap(self):
        res = {}

        def call():
            res["r"] = ST.http("POST", f"/api/v1/func/{SID}.held_long", {"options": {"timeout": 100}})
        th = threading.Thread(target=call)
        th.start()
        task = wait_for(lambda: next((t for t in stream_tasks(7) if t["func"] == f"{SID}.held_long"
                                      and t["origin"] == "func" and t["id"] not in self.seen), None),
                        10, 0.05, "the task on tandem:q:7")
        self.seen.add(task["id"])
        ST.redis("LPUSH", f"tandem:reply:{task['reply']}",
                 json.dumps({"id": task["id"], "status": "success", "result": 1}))
        th.join(30)
        # the caller asked 100 s; server.sync_timeout (35) caps what callers ask
        self.assertEqual(task["timeout"], 35)
        self.assertEqual(res["r"][1]["data"]["result"], 1)

    seen = set()

    def test_func_call_return_type_and_unbox(self):
        d = ST.api("POST", f"/api/v1/func/{SID}.echo", {"kwargs": {"a": 1}, "options": {"returnType": "jsonDumps"}})
        self.assertEqual(d["result"], '{"a":1}')
        status, hdrs, body = raw_http("POST", f"/api/v1/func/{SID}.text",
                                      json.dumps({"options": {"unbox": True}}),
                                      {"Authorization": f"Bearer {ST.key}", "Content-Type": "application/json"})
        self.assertEqual((status, body), (200, b"hello"))
        for opts, field in (({"returnType": "xml"}, "options.returnType"), ({"unbox": "yes"}, "options.unbox")):
            status, body = ST.http("POST", f"/api/v1/func/{SID}.echo", {"options": opts})
            self.assertErr(status, body, 400, "EClientBadRequest", re.escape(field))

    def test_func_call_options_queue_expires_and_bounded_eta(self):
        d = ST.api("POST", f"/api/v1/func/{SID}.held", {"options": {"async": True, "queue": 4, "expires": 30}})
        t = wait_for(lambda: next((t for t in stream_tasks(4) if t["id"] == d["id"]), None), 5, 0.05, "task on q:4")
        self.assertEqual((t["queue"], t["expires"] - t["enq"]), ("4", 30000))
        for opts, field in (({"queue": 0}, "options.queue"), ({"queue": 10}, "options.queue"),
                            ({"expires": 86401}, "options.expires"), ({"eta": 1e16}, "options.eta"),
                            ({"eta": 9223372036854775}, "options.eta")):
            status, body = ST.http("POST", f"/api/v1/func/{SID}.echo", {"options": opts})
            self.assertErr(status, body, 400, "EClientBadRequest", re.escape(field))
        self.assertServing()


class TestAPIAuth(Case):
    def _api_with_auth(self, func, typ, config, kwargs=None, table="sync_api"):
        sid = sync_api(func, kwargs, table=table)
        auth_id = "apia-" + sid[-12:]
        ST.sql(f"INSERT INTO api_auth (id, name, type, config_json) VALUES "
               f"({q(auth_id)}, 'test', {q(typ)}, {q(json.dumps(config))})")
        sql_and_reload(f"UPDATE {table} SET api_auth_id = {q(auth_id)} WHERE id = {q(sid)}")
        return sid

    def test_fixed_field_header_query_body(self):
        sid = self._api_with_auth("echo", "fixedField", {"fields": [
            {"location": "header", "name": "x-test-token", "value": "<T1>"},
            {"location": "query", "name": "tok", "value": "<T2>"},
            {"location": "body", "name": "btok", "value": "<T3>"}]})
        status, body = ST.http("GET", f"/api/v1/sync/{sid}/s?a=1", key=None)
        self.assertErr(status, body, 401, "EAPIAuth", "Fixed Field")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}/s?a=1", key=None, headers={"X-Test-Token": "<T9>"})
        self.assertErr(status, body, 401, "EAPIAuth")
        self.assertEqual(ST.http("GET", f"/api/v1/sync/{sid}/s?a=1", key=None, headers={"X-Test-Token": "<T1>"}),
                         (200, {"a": "1"}))
        # the token fields never reach the function
        self.assertEqual(ST.http("GET", f"/api/v1/sync/{sid}/s?a=1&tok=%3CT2%3E", key=None), (200, {"a": "1"}))
        self.assertEqual(ST.http("POST", f"/api/v1/sync/{sid}/s", {"a": 2, "btok": "<T3>"}, key=None),
                         (200, {"a": 2}))
        self.assertEqual(ST.http("POST", f"/api/v1/sync/{sid}", {"kwargs": {"a": 3}, "btok": "<T3>"}, key=None),
                         (200, {"a": 3}))

    def test_http_basic(self):
        sid = self._api_with_auth("add", "httpBasic", {"users": [
            {"username": "u1", "password": "<P1>"}, {"username": "u2", "password": "p:w"}]},
            kwargs={"x": "INPUT_BY_CALLER", "y": "INPUT_BY_CALLER"})
        url = f"{ST.url}/api/v1/sync/{sid}/s"
        r = requests.get(url, params={"x": 10, "y": 20}, auth=HTTPBasicAuth("u2", "p:w"), timeout=30)
        self.assertEqual((r.status_code, r.json()), (200, 30.0))
        r = requests.post(f"{ST.url}/api/v1/sync/{sid}", json={"kwargs": {"x": 1, "y": 2}},
                          auth=HTTPBasicAuth("u1", "<P1>"), timeout=30)
        self.assertEqual((r.status_code, r.json()), (200, 3.0))
        for auth in (HTTPBasicAuth("u2", "wrong"), HTTPBasicAuth("nobody", "<P1>"), None):
            r = requests.get(url, params={"x": 1, "y": 2}, auth=auth, timeout=30)
            self.assertErr(r.status_code, r.json(), 401, "EAPIAuth", "Basic")
            self.assertEqual(r.headers["WWW-Authenticate"], f'Basic realm="SyncAPI:{sid}"')
        r = requests.get(url, params={"x": 1}, headers={"Authorization": "Basic !!!notbase64"}, timeout=30)
        self.assertEqual(r.status_code, 401)

    def test_sealed_password_is_opened_with_secret_key(self):
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        with open(ST.conf) as f:
            key = re.search(r'secret = \{ key = "([^"]+)"', f.read()).group(1)
        nonce = os.urandom(12)
        ct = AESGCM(hashlib.sha256(key.encode()).digest()).encrypt(nonce, b"<SEALED>", b"sealed:v1:")
        sealed = "sealed:v1:" + base64.b64encode(nonce + ct).decode()
        sid = self._api_with_auth("text", "httpBasic", {"users": [{"username": "s", "password": sealed}]})
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}", auth=HTTPBasicAuth("s", "<SEALED>"), timeout=30)
        self.assertEqual((r.status_code, r.text), (200, "hello"))
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}", auth=HTTPBasicAuth("s", sealed), timeout=30)
        self.assertEqual(r.status_code, 401)

    def test_http_digest_as_python_requests_speaks_it(self):
        sid = self._api_with_auth("add", "httpDigest", {"users": [
            {"username": "u3", "password": "<P3>"}, {"username": "u4", "password": "<P4>"}]},
            kwargs={"x": "INPUT_BY_CALLER", "y": "INPUT_BY_CALLER"})
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}", params={"kwargs": json.dumps({"x": 10, "y": 20})},
                         auth=HTTPDigestAuth("u4", "<P4>"), timeout=30)
        self.assertEqual((r.status_code, r.json()), (200, 30.0))
        r = requests.post(f"{ST.url}/api/v1/sync/{sid}/simplified", json={"x": 1, "y": 2},
                          auth=HTTPDigestAuth("u3", "<P3>"), timeout=30)
        self.assertEqual((r.status_code, r.json()), (200, 3.0))
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}/s", params={"x": 1, "y": 2},
                         auth=HTTPDigestAuth("u4", "wrong"), timeout=30)
        self.assertErr(r.status_code, r.json(), 401, "EAPIAuth", "Digest")
        self.assertRegex(r.headers["WWW-Authenticate"], rf'^Digest realm="SyncAPI:{sid}", qop="auth", nonce="[0-9a-f]{{32}}"')
        # a response computed for another path is refused
        ok = requests.get(f"{ST.url}/api/v1/sync/{sid}/s", params={"x": 1, "y": 2}, timeout=30)
        chal = requests.utils.parse_dict_header(ok.headers["WWW-Authenticate"][len("Digest "):])
        def md5(t):
            return hashlib.md5(t.encode()).hexdigest()
        other = f"/api/v1/sync/{sid}/simplified?x=5&y=6"
        resp = md5(f"{md5(f'u4:SyncAPI:{sid}:<P4>')}:{chal['nonce']}:00000001:c1:auth:{md5('GET:' + other)}")
        hdr = (f'Digest username="u4", realm="SyncAPI:{sid}", nonce="{chal["nonce"]}", uri="{other}", '
               f'response="{resp}", qop=auth, nc=00000001, cnonce="c1"')
        r = requests.get(f"{ST.url}{other}", headers={"Authorization": hdr}, timeout=30)
        self.assertEqual((r.status_code, r.json()), (200, 11.0))
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}/s", params={"x": 1, "y": 2}, headers={"Authorization": hdr},
                         timeout=30)
        self.assertEqual(r.status_code, 401)
        # a nonce the server never handed out is refused even with the right password
        r = requests.get(f"{ST.url}/api/v1/sync/{sid}/s", params={"x": 1, "y": 2}, timeout=30, headers={
            "Authorization": f'Digest username="u4", realm="SyncAPI:{sid}", nonce="{"0" * 32}", '
                             f'uri="/api/v1/sync/{sid}/s?x=1&y=2", response="{"0" * 32}"'})
        self.assertEqual(r.status_code, 401)

    def test_auth_func(self):
        sid = self._api_with_auth("text", "func", {"funcId": f"{SID}.auth"})
        status, hdrs, body = raw_http("GET", f"/api/v1/sync/{sid}", headers={"X-My-Token": "<TOKEN>"})
        self.assertEqual((status, body), (200, b"hello"))
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None, headers={"X-My-Token": "nope"})
        self.assertErr(status, body, 401, "EAPIAuth", "Func Auth failed")
        # an Async API behind an auth func: admitted, then enqueued
        aid = self._api_with_auth("text", "func", {"funcId": f"{SID}.auth"}, table="async_api")
        status, body = ST.http("GET", f"/api/v1/async/{aid}", key=None, headers={"X-My-Token": "<TOKEN>"})
        self.assertEqual(status, 200, body)
        self.assertEqual(ST.wait_task(body["data"]["id"])["result"], "hello")
        status, body = ST.http("GET", f"/api/v1/async/{aid}", key=None)
        self.assertErr(status, body, 401, "EAPIAuth")

    def test_dangling_auth_reference_is_refused(self):
        sid = sync_api("text")
        sql_and_reload(f"UPDATE sync_api SET api_auth_id = 'apia-gone' WHERE id = '{sid}'")
        status, body = ST.http("GET", f"/api/v1/sync/{sid}", key=None)
        self.assertErr(status, body, 401, "EAPIAuth", "does not exist")


class TestSecondServer(Case):
    """A second tandem-server on the same backend with api_queue_limit 3 and
    an 8 KiB body limit."""

    @classmethod
    def setUpClass(cls):
        cls.port = harness.free_port()
        with open(ST.conf) as f:
            conf = f.read()
        conf = re.sub(r"server = \{[^}]*\};",
                      f'server = {{ listen = "127.0.0.1"; port = {cls.port}; api_queue_limit = 3; '
                      f"body_limit = 8192; }};", conf)
        cls.conf = os.path.join(ST.dir, "tandem-calls-2.conf")
        with open(cls.conf, "w") as f:
            f.write(conf)
        cls.log = open(os.path.join(ST.dir, "log", "server-calls-2.log"), "ab")
        cls.proc = subprocess.Popen([os.path.join(harness.BIN, "tandem-server"), "-c", cls.conf],
                                    stdout=cls.log, stderr=cls.log, stdin=subprocess.DEVNULL)
        cls.url = f"http://127.0.0.1:{cls.port}"
        wait_for(lambda: raw_http("GET", "/api/v1/do/ping", url=cls.url)[0] == 200, 10, what="second server up")

    @classmethod
    def tearDownClass(cls):
        if cls.proc.poll() is None:
            cls.proc.kill()
            cls.proc.wait()
        cls.log.close()

    def http(self, method, path, body=None, headers=None):
        return Stack.http(types.SimpleNamespace(url=self.url, key=None), method, path, body, key=None,
                          headers=headers)

    def test_oversize_upload_is_413(self):
        sid = sync_api("files")
        wait_for(lambda: self.http("GET", f"/api/v1/sync/{sid}")[0] == 200, 10, 0.05, "API known")
        data, ctype = multipart({}, {"f": ("big.bin", b"x" * 20000, "application/octet-stream")})
        status, body = self.http("POST", f"/api/v1/sync/{sid}/s", data, headers={"Content-Type": ctype})
        self.assertErr(status, body, 413, "EClientBodyTooLarge")
        self.assertEqual(self.http("GET", "/api/v1/do/ping")[0], 200)

    def test_queue_depth_cap_answers_429_with_retry_after(self):
        aid = sync_api("nap", {"s": 3}, table="async_api")
        # known to this server: a malformed call is 400 (404 while unknown) and enqueues nothing
        wait_for(lambda: raw_http("GET", f"/api/v1/async/{aid}?kwargs=%7B", url=self.url)[0] == 400, 10, 0.05,
                 "the second server to know the API")
        wait_for(lambda: int(ST.redis("XLEN", "tandem:q:async") or 0) == 0, 60, 0.1, "an empty async queue")
        answers = [raw_http("GET", f"/api/v1/async/{aid}", url=self.url) for _ in range(6)]
        codes = [a[0] for a in answers]
        self.assertIn(200, codes)
        self.assertIn(429, codes, codes)
        full = next(a for a in answers if a[0] == 429)
        body = json.loads(full[2])
        self.assertErr(429, body, 429, "EClientRateLimit.QueueFull", "api_queue_limit")
        self.assertEqual(full[1]["retry-after"], "5")


if __name__ == "__main__":
    unittest.main(verbosity=2)
