"""DataFlux Func's management API on a real stack: users and sign-in tokens,
the /do/ resource paths with DFF's bodies and pageInfo, access keys that sign
requests the way DFF's SDKs do (HMAC-SHA1, timestamp window, single-use
nonces) with admin and call-only scopes, user roles, DFF's decimal error
codes, import/export. (Every admin route refusing: test_auth_routes.py.)"""

import hashlib
import hmac
import json
import os
import time
import unittest
import uuid

from harness import Stack

ST = None
CODE = ("@DFF.API('plus')\ndef plus(x, y):\n    return x + y\n\n"
        "@DFF.API('boom')\ndef boom():\n    raise ValueError('kaboom')\n")


def setUpModule():
    global ST
    ST = Stack(name="mgmt").up()
    p = ST.ctl("user", "add", "admin", input="admin\n")
    assert p.returncode == 0, p.stderr


def tearDownModule():
    if ST:
        ST.down()


def sign_in(user="admin", password="admin"):
    return ST.http("POST", "/api/v1/auth/do/sign-in", key=None,
                   body={"captchaToken": "<TEST>", "captcha": "0000",
                         "signIn": {"username": user, "password": password}})


def token():
    st, r = sign_in()
    assert st == 200, r
    return r["data"]["xAuthToken"]


def dff(method, path, body=None, tok=None, headers=None):
    h = {"X-Dff-Auth-Token": tok or token()}
    h.update(headers or {})
    return ST.http(method, path, body=body, key=None, headers=h)


def signed_headers(ak_id, secret, method, path, body=None, ts=None, nonce=None):
    """What DFF's SDKs send: HMAC-SHA1 over METHOD&PATH&TS&NONCE&md5(body)."""
    ts = str(int(time.time())) if ts is None else str(ts)
    nonce = nonce or uuid.uuid4().hex
    dumped = json.dumps(body or {}, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    md5 = hashlib.md5(dumped.encode()).hexdigest()
    msg = "&".join([method, path, ts, nonce, md5])
    sign = hmac.new(secret.encode(), msg.encode(), hashlib.sha1).hexdigest()
    return {"X-Dff-Ak-Id": ak_id, "X-Dff-Ak-Timestamp": ts, "X-Dff-Ak-Nonce": nonce,
            "X-Dff-Ak-Sign": sign}


def signed(ak, method, path, body=None, **kw):
    h = signed_headers(ak["id"], ak["secret"], method, path, body, **kw)
    return ST.http(method, path, body=body, key=None, headers=h)


def new_key(scope):
    st, r = dff("POST", "/api/v1/access-keys/do/add", {"data": {"name": "k-" + scope, "scope": scope}})
    assert st == 200, r
    return r["data"]


class TestUsersAndSignIn(unittest.TestCase):
    def test_dff_sign_in_gives_a_token_that_opens_admin_routes(self):
        st, r = sign_in()
        self.assertEqual(st, 200, r)
        tok = r["data"]["xAuthToken"]
        st, r = dff("GET", "/api/v1/users/do/list", tok=tok)
        self.assertEqual(st, 200, r)
        self.assertIn("admin", [u["username"] for u in r["data"]])
        self.assertNotIn("password", r["data"][0])

    def test_dff_sign_in_wrong_password_is_EUserPassword(self):
        st, r = sign_in("admin", "nope")
        self.assertEqual(st, 400)
        self.assertEqual(r["reason"], "EUserPassword")
        self.assertEqual(r["error"], 400.12)
        st, r = sign_in("nobody", "admin")
        self.assertEqual(st, 400)

    def test_dff_password_is_stored_as_a_slow_hash(self):
        rows = ST.sql("SELECT password_hash FROM user WHERE username = 'admin'")
        self.assertTrue(rows[0][0].startswith("pbkdf2-sha256$"), rows)
        self.assertNotIn("admin$", rows[0][0][-70:])

    def test_dff_sign_out_ends_the_token(self):
        tok = token()
        st, _ = dff("GET", "/api/v1/auth/do/sign-out", tok=tok)
        self.assertEqual(st, 200)
        st, r = dff("GET", "/api/v1/users/do/list", tok=tok)
        self.assertEqual(st, 401)
        self.assertEqual(r["reason"], "EUserAuth")

    def test_dff_token_expires_with_its_redis_ttl(self):
        tok = token()
        ttl = int(ST.redis("TTL", "tandem:auth:token:" + tok))
        self.assertTrue(86000 < ttl <= 86400, ttl)
        ST.redis("PEXPIRE", "tandem:auth:token:" + tok, 1)
        time.sleep(0.05)
        st, r = dff("GET", "/api/v1/users/do/list", tok=tok)
        self.assertEqual(st, 401, r)

    def test_dff_user_add_modify_disable_delete_over_http(self):
        tok = token()
        st, r = dff("POST", "/api/v1/users/do/add", {"data": {
            "username": "u_http", "password": "pw1", "name": "N", "roles": ["user"], "mobile": "1"}}, tok=tok)
        self.assertEqual(st, 200, r)
        uid = r["data"]["id"]
        self.assertEqual(sign_in("u_http", "pw1")[0], 200)
        st, r = dff("POST", f"/api/v1/users/{uid}/do/modify", {"data": {"username": "u_http2", "password": "pw2"}},
                    tok=tok)
        self.assertEqual(st, 200, r)
        self.assertEqual(sign_in("u_http", "pw1")[0], 400)
        st, r = sign_in("u_http2", "pw2")
        self.assertEqual(st, 200, r)
        utok = r["data"]["xAuthToken"]
        # disabling ends the user's sessions and refuses sign-in
        st, r = dff("POST", f"/api/v1/users/{uid}/do/modify", {"data": {"isDisabled": True}}, tok=tok)
        self.assertEqual(st, 200, r)
        self.assertEqual(dff("GET", "/api/v1/users/do/list", tok=utok)[0], 401)
        st, r = sign_in("u_http2", "pw2")
        self.assertEqual((st, r["reason"]), (401, "EUserDisabled"))
        # a second user with the same name is a conflict
        st, r = dff("POST", "/api/v1/users/do/add", {"data": {"username": "u_http2", "password": "x"}}, tok=tok)
        self.assertEqual((st, r["reason"]), (409, "EClientDuplicated"))
        st, r = dff("GET", f"/api/v1/users/{uid}/do/delete", tok=tok)
        self.assertEqual(st, 200, r)

    def test_dff_tandemctl_user_passwd_and_disable(self):
        self.assertEqual(ST.ctl("user", "add", "u_ctl", input="one\n").returncode, 0)
        self.assertEqual(ST.ctl("user", "add", "u_ctl", input="one\n").returncode, 1)
        self.assertEqual(sign_in("u_ctl", "one")[0], 200)
        self.assertEqual(ST.ctl("user", "passwd", "u_ctl", input="two\n").returncode, 0)
        self.assertEqual(sign_in("u_ctl", "one")[0], 400)
        st, r = sign_in("u_ctl", "two")
        self.assertEqual(st, 200)
        tok = r["data"]["xAuthToken"]
        self.assertEqual(ST.ctl("user", "disable", "u_ctl").returncode, 0)
        self.assertEqual(dff("GET", "/api/v1/users/do/list", tok=tok)[0], 401)
        self.assertEqual(sign_in("u_ctl", "two")[0], 401)
        p = ST.ctl("user", "add", "u_empty", input="\n")
        self.assertEqual(p.returncode, 2)
        self.assertIn("empty", p.stderr)

    def test_dff_roles_user_may_call_only_admin_and_sa_administer(self):
        st, r = dff("POST", "/api/v1/script-sets/do/add", {"data": {"id": "rl"}})
        self.assertEqual(st, 200, r)
        st, r = dff("POST", "/api/v1/scripts/do/add", {"data": {"id": "rl__s", "codeDraft": CODE}})
        self.assertEqual(st, 200, r)
        self.assertEqual(dff("POST", "/api/v1/scripts/rl__s/do/publish", {"wait": True})[0], 200)
        p = ST.ctl("user", "add", "u_role", "--role", "user", input="pw\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = ST.ctl("user", "add", "u_role2", "--role", "root", input="pw\n")
        self.assertEqual(p.returncode, 2)
        self.assertIn("unknown role 'root'", p.stderr)
        st, r = sign_in("u_role", "pw")
        self.assertEqual(st, 200, r)
        utok = r["data"]["xAuthToken"]
        uid = r["data"]["userId"]
        # a plain user calls funcs, and may not read env variables or publish code
        st, r = dff("POST", "/api/v1/func/rl__s.plus", {"kwargs": {"x": 1, "y": 2}}, tok=utok)
        self.assertEqual((st, r["data"]["result"]), (200, 3), r)
        for method, path, body in (("GET", "/api/v1/env-variables/do/list", None),
                                   ("POST", "/api/v1/scripts/rl__s/do/publish", {"wait": True}),
                                   ("GET", "/api/v1/users/do/list", None),
                                   ("POST", "/api/v1/users/" + uid + "/do/modify", {"data": {"roles": ["sa"]}})):
            st, r = dff(method, path, body, tok=utok)
            self.assertEqual((st, r["reason"]), (403, "EUserPrivilege"), (path, r))
            self.assertIn("role", r["message"])
        self.assertEqual(ST.sql(f"SELECT roles_json FROM user WHERE id = '{uid}'"), [['["user"]']])
        # DFF's role names: admin administers at once, without a new sign-in;
        # readonlyUser, customUser, none at all do not; a comma string counts
        for roles, want in ((["admin"], 200), (["readonlyUser"], 403), (["customUser", "user"], 403),
                            (None, 403), (["sa"], 200), ("user,admin", 200)):
            st, r = dff("POST", f"/api/v1/users/{uid}/do/modify", {"data": {"roles": roles}})
            self.assertEqual(st, 200, r)
            st, r = dff("GET", "/api/v1/env-variables/do/list", tok=utok)
            self.assertEqual(st, want, (roles, r))
        # a deleted user's token opens nothing
        self.assertEqual(dff("GET", f"/api/v1/users/{uid}/do/delete")[0], 200)
        self.assertEqual(dff("GET", "/api/v1/env-variables/do/list", tok=utok)[0], 401)


class TestResources(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tok = token()
        for path, data in (("/api/v1/script-sets/do/add", {"id": "mg"}),
                           ("/api/v1/scripts/do/add", {"id": "mg__s", "codeDraft": CODE})):
            st, r = dff("POST", path, {"data": data}, tok=cls.tok)
            assert st == 200, r
        st, r = dff("POST", "/api/v1/scripts/mg__s/do/publish", {"wait": True}, tok=cls.tok)
        assert st == 200, r

    def d(self, method, path, body=None):
        return dff(method, path, body, tok=self.tok)

    def crud(self, root, add, modify, check=None):
        st, r = self.d("POST", root + "/do/add", {"data": add})
        self.assertEqual(st, 200, r)
        rid = r["data"]["id"]
        st, r = self.d("GET", root + "/do/list", None if False else None)
        st, r = ST.http("GET", f"{root}/do/list?id={rid}", key=None, headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual(st, 200, r)
        self.assertEqual(len(r["data"]), 1, r)
        row = r["data"][0]
        for k, v in {**add, **(check or {})}.items():
            if k != "password":
                self.assertEqual(row[k], v, (root, k))
        self.assertEqual(r["pageInfo"]["totalCount"], 1)
        st, r = self.d("POST", f"{root}/{rid}/do/modify", {"data": modify})
        self.assertEqual(st, 200, r)
        st, r = self.d("GET", f"{root}/{rid}/do/get")
        self.assertEqual(st, 200, r)
        for k, v in modify.items():
            self.assertEqual(r["data"][k], v, (root, k))
        st, r = self.d("GET", f"{root}/{rid}/do/delete")
        self.assertEqual((st, r["data"]["id"]), (200, rid))
        st, r = ST.http("GET", f"{root}/do/list?id={rid}", key=None, headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual(r["data"], [])
        st, r = self.d("GET", f"{root}/{rid}/do/delete")
        self.assertEqual((st, r["reason"], r["error"]), (404, "EClientNotFound", 404.41))
        return rid

    def test_dff_sync_async_apis_and_legacy_names(self):
        for root in ("/api/v1/sync-apis", "/api/v1/auth-links", "/api/v1/async-apis", "/api/v1/batches"):
            self.crud(root, {"funcId": "mg__s.plus", "funcCallKwargsJSON": {"x": "INPUT_BY_CALLER", "y": 1},
                             "tagsJSON": ["a", "标签"], "note": "n", "expireTime": "2099-01-01T00:00:00.000Z",
                             "throttlingJSON": {"bySecond": 5}, "isDisabled": False},
                      {"note": "n2", "isDisabled": True, "tagsJSON": ["b"]})
        # the sync API and auth link are one table: one list shows the other's rows
        st, r = self.d("POST", "/api/v1/auth-links/do/add", {"data": {"id": "al_one", "funcId": "mg__s.plus"}})
        self.assertEqual(st, 200, r)
        st, r = ST.http("GET", "/api/v1/sync-apis/do/list?id=al_one", key=None,
                        headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual(len(r["data"]), 1)
        st, r = self.d("POST", "/api/v1/sync-apis/do/add", {"data": {"id": "al_one", "funcId": "mg__s.plus"}})
        self.assertEqual((st, r["reason"]), (409, "EClientDuplicated"))
        st, r = self.d("POST", "/api/v1/sync-apis/do/add", {"data": {"funcId": "not a func"}})
        self.assertEqual((st, r["reason"], r["detail"]["field"]), (400, "EClientBadRequest", "funcId"))
        st, r = self.d("POST", "/api/v1/sync-apis/do/add", {"data": {"funcId": "mg__s.plus", "isDisabled": "no"}})
        self.assertEqual(st, 400)
        self.assertIn("isDisabled", r["message"])
        self.assertEqual(self.d("GET", "/api/v1/sync-apis/al_one/do/delete")[0], 200)

    def test_dff_cron_jobs_and_crontab_configs(self):
        for root in ("/api/v1/cron-jobs", "/api/v1/crontab-configs"):
            self.crud(root, {"funcId": "mg__s.plus", "funcCallKwargsJSON": {"x": 1, "y": 2},
                             "cronExpr": "*/5 * * * *", "tagsJSON": ["t"], "note": "n"},
                      {"funcCallKwargsJSON": {"x": 3, "y": 4}, "note": "n2", "isDisabled": True})
        st, r = self.d("POST", "/api/v1/cron-jobs/do/add", {"data": {"funcId": "mg__s.plus", "cronExpr": "x y"}})
        self.assertEqual((st, r["detail"]["field"]), (400, "cronExpr"))

    def test_dff_env_variables_password_is_sealed(self):
        self.crud("/api/v1/env-variables", {"id": "EV_A", "title": "t", "valueTEXT": "v", "autoTypeCasting": "string"},
                  {"title": "t2", "valueTEXT": "v2"})
        st, r = self.d("POST", "/api/v1/env-variables/do/add",
                       {"data": {"id": "EV_PW", "valueTEXT": "hunter2", "autoTypeCasting": "password"}})
        self.assertEqual(st, 200, r)
        raw = ST.sql("SELECT value FROM env_variable WHERE id = 'EV_PW'")[0][0]
        self.assertTrue(raw.startswith("sealed:v1:"), raw)
        self.assertNotIn("hunter2", raw)
        st, r = self.d("GET", "/api/v1/env-variables/EV_PW/do/get")
        self.assertIsNone(r["data"]["valueTEXT"])
        # a new value of a password variable is sealed too (type from the row)
        self.d("POST", "/api/v1/env-variables/EV_PW/do/modify", {"data": {"valueTEXT": "x2"}})
        raw = ST.sql("SELECT value FROM env_variable WHERE id = 'EV_PW'")[0][0]
        self.assertTrue(raw.startswith("sealed:v1:"), raw)
        st, r = self.d("POST", "/api/v1/env-variables/do/add",
                       {"data": {"id": "1bad", "valueTEXT": "v", "autoTypeCasting": "string"}})
        self.assertEqual(st, 400)
        st, r = self.d("POST", "/api/v1/env-variables/do/add",
                       {"data": {"id": "EV_T", "valueTEXT": "v", "autoTypeCasting": "yaml"}})
        self.assertEqual(st, 400)
        self.assertIn("commaArray", r["message"])

    def test_dff_api_auth_script_sets_scripts(self):
        self.crud("/api/v1/api-auth", {"name": "a", "type": "httpBasic",
                                       "configJSON": {"users": [{"username": "u", "password": "p"}]}, "note": "n"},
                  {"name": "b", "note": "n2"})
        self.crud("/api/v1/script-sets", {"id": "mg_tmp", "title": "T", "description": "D"},
                  {"title": "T2", "description": "D2"})
        st, r = self.d("POST", "/api/v1/scripts/do/add", {"data": {"id": "nosuchset__s", "codeDraft": ""}})
        self.assertEqual(st, 404, r)

    def test_dff_funcs_list_and_publish(self):
        st, r = ST.http("GET", "/api/v1/funcs/do/list?scriptId=mg__s", key=None,
                        headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual(st, 200, r)
        self.assertEqual([f["id"] for f in r["data"]], ["mg__s.boom", "mg__s.plus"])
        self.assertEqual(r["data"][0]["scriptSetId"], "mg")
        st, r = self.d("GET", "/api/v1/scripts/mg__s/do/get")
        self.assertEqual(r["data"]["codeDraft"], CODE)
        st, r = self.d("GET", "/api/v1/scripts/do/list")
        self.assertNotIn("codeDraft", r["data"][0])

    def test_dff_task_records_under_dff_names(self):
        ST.http("POST", "/api/v1/func/mg__s.plus", body={"kwargs": {"x": 1, "y": 2}})
        ST.http("POST", "/api/v1/func/mg__s.boom", body={"kwargs": {}})
        hdr = {"X-Dff-Auth-Token": self.tok}

        def listed():
            st, r = ST.http("GET", "/api/v1/task-records/func/do/list?scriptId=mg__s&origin=direct", key=None,
                            headers=hdr)
            return r["data"] if st == 200 and len(r["data"]) >= 2 else None
        deadline = time.time() + 20
        rows = None
        while time.time() < deadline and not rows:
            rows = listed()
            time.sleep(0.3)
        self.assertTrue(rows, "task records did not show up")
        by = {t["funcId"]: t for t in rows}
        self.assertEqual(by["mg__s.plus"]["status"], "success")
        self.assertEqual(by["mg__s.plus"]["origin"], "direct")
        self.assertEqual(by["mg__s.plus"]["scriptSetId"], "mg")
        self.assertEqual(by["mg__s.boom"]["status"], "failure")
        self.assertIn("kaboom", by["mg__s.boom"]["tracebackTEXT"])
        self.assertIsInstance(by["mg__s.boom"]["endTimeMs"], int)
        st, r = ST.http("GET", "/api/v1/task-records/do/list?status=success&funcId=mg__s.boom", key=None,
                        headers=hdr)
        self.assertEqual((st, r["data"]), (200, []))
        self.assertEqual(r["pageInfo"]["pageSize"], 50)

    def test_dff_list_paging(self):
        for i in range(3):
            self.d("POST", "/api/v1/env-variables/do/add",
                   {"data": {"id": f"PG_{i}", "valueTEXT": "v", "autoTypeCasting": "string"}})
        st, r = ST.http("GET", "/api/v1/env-variables/do/list?id=PG_0,PG_1,PG_2&pageSize=2&pageNumber=2", key=None,
                        headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual(st, 200, r)
        self.assertEqual([v["id"] for v in r["data"]], ["PG_2"])
        self.assertEqual((r["pageInfo"]["totalCount"], r["pageInfo"]["pageCount"]), (3, 2))
        st, r = ST.http("GET", "/api/v1/env-variables/do/list?pageSize=0", key=None,
                        headers={"X-Dff-Auth-Token": self.tok})
        self.assertEqual((st, r["detail"]["field"]), (400, "pageSize"))

    def test_dff_bad_bodies_are_clear_400s(self):
        st, r = ST.http("POST", "/api/v1/env-variables/do/add", body="{nope", key=None,
                        headers={"X-Dff-Auth-Token": self.tok, "Content-Type": "application/json"})
        self.assertEqual((st, r["reason"], r["error"], r["status"]), (400, "EClientBadRequest", 400.43, 400))
        st, r = self.d("POST", "/api/v1/env-variables/do/add", {"id": "X"})
        self.assertEqual(st, 400)
        self.assertIn("'data'", r["message"])


class TestAccessKeySigning(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin = new_key("admin")
        cls.call = new_key("call")
        tok = token()
        for path, data in (("/api/v1/script-sets/do/add", {"id": "sg"}),
                           ("/api/v1/scripts/do/add", {"id": "sg__s", "codeDraft": CODE})):
            dff("POST", path, {"data": data}, tok=tok)
        st, r = dff("POST", "/api/v1/scripts/sg__s/do/publish", {"wait": True}, tok=tok)
        assert st == 200, r

    def test_dff_access_key_secret_is_sealed_and_shown_once(self):
        self.assertTrue(self.admin["secret"].startswith("tk_"))
        raw = ST.sql(f"SELECT secret_sealed, scope FROM access_key WHERE id = '{self.call['id']}'")[0]
        self.assertTrue(raw[0].startswith("sealed:v1:"))
        self.assertEqual(raw[1], "call")
        st, r = signed(self.admin, "GET", "/api/v1/access-keys/do/list")
        self.assertEqual(st, 200, r)
        self.assertNotIn("secret", json.dumps(r["data"]))

    def test_dff_signed_call_with_unicode_body_and_query(self):
        body = {"kwargs": {"y": "é", "x": "ü"}}
        st, r = signed(self.call, "POST", "/api/v1/func/sg__s.plus?trace=1", body)
        self.assertEqual(st, 200, r)
        self.assertEqual(r["data"]["result"], "üé")

    def test_dff_wrong_signature_is_refused(self):
        h = signed_headers(self.call["id"], "tk_wrong", "POST", "/api/v1/func/sg__s.plus", {"kwargs": {}})
        st, r = ST.http("POST", "/api/v1/func/sg__s.plus", body={"kwargs": {}}, key=None, headers=h)
        self.assertEqual((st, r["reason"]), (401, "EUserAuth"))
        self.assertIn("X-Dff-Ak-Sign", r["message"])
        # signed over another body
        h = signed_headers(self.call["id"], self.call["secret"], "POST", "/api/v1/func/sg__s.plus",
                           {"kwargs": {"x": 1, "y": 2}})
        st, r = ST.http("POST", "/api/v1/func/sg__s.plus", body={"kwargs": {"x": 1, "y": 3}}, key=None, headers=h)
        self.assertEqual(st, 401)

    def test_dff_replayed_nonce_is_refused(self):
        h = signed_headers(self.call["id"], self.call["secret"], "POST", "/api/v1/func/sg__s.plus",
                           {"kwargs": {"x": 1, "y": 2}})
        st, r = ST.http("POST", "/api/v1/func/sg__s.plus", body={"kwargs": {"x": 1, "y": 2}}, key=None, headers=h)
        self.assertEqual(st, 200, r)
        st, r = ST.http("POST", "/api/v1/func/sg__s.plus", body={"kwargs": {"x": 1, "y": 2}}, key=None, headers=h)
        self.assertEqual((st, r["reason"]), (401, "EUserAuth"))
        self.assertIn("Nonce", r["message"])

    def test_dff_timestamp_outside_the_window_is_refused(self):
        for ts in (int(time.time()) - 1000, int(time.time()) + 1000, "abc"):
            st, r = signed(self.call, "POST", "/api/v1/func/sg__s.plus", {"kwargs": {"x": 1, "y": 2}}, ts=ts)
            self.assertEqual(st, 401, (ts, r))
            self.assertIn("Timestamp", r["message"])

    def test_dff_revoked_or_unknown_key_is_refused(self):
        k = new_key("call")
        self.assertEqual(dff("GET", f"/api/v1/access-keys/{k['id']}/do/delete")[0], 200)
        st, r = signed(k, "POST", "/api/v1/func/sg__s.plus", {"kwargs": {"x": 1, "y": 2}})
        self.assertEqual(st, 401)
        st, r = signed({"id": "ak-nope", "secret": "x"}, "GET", "/api/v1/users/do/list")
        self.assertEqual(st, 401)

    def test_dff_call_only_key_may_call_but_not_administer(self):
        st, r = signed(self.call, "POST", "/api/v1/func/sg__s.plus", {"kwargs": {"x": 1, "y": 2}})
        self.assertEqual((st, r["data"]["result"]), (200, 3))
        for method, path, body in (("GET", "/api/v1/env-variables/do/list", None),
                                   ("POST", "/api/v1/scripts/sg__s/do/publish", {"wait": True}),
                                   ("POST", "/api/v1/scripts/sg__s/do/modify", {"data": {"codeDraft": "x"}})):
            st, r = signed(self.call, method, path, body)
            self.assertEqual((st, r["reason"], r["error"]), (403, "EUserPrivilege", 403.15), path)
        st, r = signed(self.admin, "GET", "/api/v1/env-variables/do/list")
        self.assertEqual(st, 200, r)

    def test_dff_bearer_keys_keep_working(self):
        st, r = ST.http("GET", "/api/v1/scripts/do/list")  # the stack's bootstrap key
        self.assertEqual(st, 200, r)
        st, r = ST.http("POST", "/api/v1/func/sg__s.plus", body={"kwargs": {"x": 1, "y": 2}},
                        key=self.call["secret"])
        self.assertEqual(st, 200, r)
        st, r = ST.http("GET", "/api/v1/scripts/do/list", key=self.call["secret"])
        self.assertEqual(st, 403, r)

    def test_dff_bootstrap_key_can_sign(self):
        kid = ST.sql(f"SELECT id FROM access_key WHERE secret_sha256 = SHA2('{ST.key}', 256)")[0][0]
        st, r = signed({"id": kid, "secret": ST.key}, "GET", "/api/v1/users/do/list")
        self.assertEqual(st, 200, r)


META = """scriptSets:
  - id: imp
    title: Imported
    description: from DFF
    scripts:
      - id: imp__main
        title: Main
        publishVersion: 3
        type: python
envVariables:
  - id: IMP_VAR
    title: v
    autoTypeCasting: string
    valueTEXT: hello
authLinks:
  - id: imp_sapi
    funcId: imp__main.plus
    funcCallKwargsJSON: '{"x":"INPUT_BY_CALLER","y":1}'
    tagsJSON: '["a"]'
    isDisabled: 0
batches:
  - id: imp_aapi
    funcId: imp__main.plus
    funcCallKwargsJSON: '{}'
crontabConfigs:
  - id: imp_cron
    funcId: imp__main.plus
    funcCallKwargsJSON: '{"x":1,"y":2}'
    cronExpr: '0 0 * * *'
    isDisabled: 1
connectors:
  - id: imp_conn
    title: cache
    type: redis
    configJSON: '{"host":"127.0.0.1","port":6379,"passwordCipher":""}'
"""


def make_export(path, meta=META, code=CODE, root="dff-export/", set_id="imp"):
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(root + "META.yaml", meta)
        z.writestr(root + f"script-sets/{set_id}/main.py", code)


class TestImport(unittest.TestCase):
    def test_dff_import_all_or_nothing_conflicts_overwrite(self):
        path = os.path.join(ST.dir, "export.zip")
        make_export(path)
        p = ST.ctl("import", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("imported 1 scripts", p.stdout)
        self.assertIn("imported 1 connectors", p.stdout)
        # DFF leaves connector secrets out of its exports: said so
        self.assertIn("connector imp_conn: configJSON.password is not in the export", p.stderr)
        self.assertEqual(ST.sql("SELECT type, config_json FROM connector WHERE id = 'imp_conn'"),
                         [["redis", '{"host":"127.0.0.1","port":6379}']])
        # published: the func exists and the imported Sync API calls it
        st, r = ST.http("POST", "/api/v1/sync/imp_sapi", body={"kwargs": {"x": 2}}, key=None)
        self.assertEqual(st, 200, r)
        self.assertEqual(r, 3)
        tok = token()
        st, r = dff("GET", "/api/v1/cron-jobs/imp_cron/do/get", tok=tok)
        self.assertEqual((r["data"]["isDisabled"], r["data"]["cronExpr"]), (True, "0 0 * * *"))
        st, r = dff("GET", "/api/v1/env-variables/IMP_VAR/do/get", tok=tok)
        self.assertEqual(r["data"]["valueTEXT"], "hello")
        # again: every existing id is a conflict, nothing is written
        ST.sql("UPDATE env_variable SET value = 'changed' WHERE id = 'IMP_VAR'")
        p = ST.ctl("--json", "import", path)
        self.assertEqual(p.returncode, 1, p.stdout)
        out = json.loads(p.stdout)
        self.assertEqual(out["reason"], "EBizRequestConflict")
        self.assertEqual(out["detail"]["conflicts"]["envVariables"], ["IMP_VAR"])
        self.assertEqual(sorted(out["detail"]["conflicts"]), ["authLinks", "batches", "connectors", "crontabConfigs",
                                                              "envVariables", "scriptSets", "scripts"])
        self.assertEqual(ST.sql("SELECT value FROM env_variable WHERE id = 'IMP_VAR'"), [["changed"]])
        p = ST.ctl("import", path, "--overwrite")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(ST.sql("SELECT value FROM env_variable WHERE id = 'IMP_VAR'"), [["hello"]])

    def test_dff_export_import_round_trip_loses_nothing(self):
        src = os.path.join(ST.dir, "rt-src.zip")
        make_export(src, meta=META.replace("imp", "rt").replace("IMP", "RT"), code=CODE.replace("x + y", "x * y"),
                    set_id="rt")
        self.assertEqual(ST.ctl("import", src).returncode, 0)
        tok = token()
        # secrets: a password variable and a connector with a password
        st, r = dff("POST", "/api/v1/env-variables/do/add",
                    {"data": {"id": "RT_PW", "title": "p", "valueTEXT": "hunter2", "autoTypeCasting": "password"}},
                    tok=tok)
        self.assertEqual(st, 200, r)
        st, r = dff("POST", "/api/v1/connectors/do/add", {"skipTest": True, "data": {
            "id": "rt_db", "title": "db", "type": "mysql", "description": "d",
            "configJSON": {"host": "127.0.0.1", "port": 3306, "user": "u", "password": "s3cret"}}}, tok=tok)
        self.assertEqual(st, 200, r)

        def raw_rows():
            return (ST.sql("SELECT id, title, description, value_type, value FROM env_variable "
                           "WHERE id IN ('RT_VAR', 'RT_PW') ORDER BY id"),
                    ST.sql("SELECT id, title, type, config_json, description FROM connector WHERE id = 'rt_db'"))
        raw_before = raw_rows()

        def snapshot():
            snap = {}
            for root, q in (("script-sets", "id=rt"), ("scripts", "scriptSetId=rt"),
                            ("sync-apis", "id=rt_sapi"), ("async-apis", "id=rt_aapi"),
                            ("cron-jobs", "id=rt_cron"), ("env-variables", "id=RT_VAR"),
                            ("funcs", "scriptSetId=rt")):
                st, r = ST.http("GET", f"/api/v1/{root}/do/list?{q}", key=None, headers={"X-Dff-Auth-Token": tok})
                self.assertEqual(st, 200, r)
                # (a cron job's "state" is the beat's, not the job's data)
                snap[root] = [{k: v for k, v in row.items()
                               if not k.endswith("Time") and k not in ("publishVersion", "state")}
                              for row in r["data"]]
            st, r = dff("GET", "/api/v1/scripts/rt__main/do/get", tok=tok)
            snap["code"] = r["data"]["code"]
            return snap
        before = snapshot()
        self.assertEqual(len(before["funcs"]), 2)
        out = os.path.join(ST.dir, "rt-out.zip")
        p = ST.ctl("export", out, "rt", "--env", "RT_VAR,RT_PW", "--connectors", "rt_db", "--with-secrets")
        self.assertEqual(p.returncode, 0, p.stderr)
        import zipfile
        with zipfile.ZipFile(out) as z:
            self.assertIn("META.yaml", z.namelist())
            self.assertEqual(z.read("script-sets/rt/main.py").decode(), before["code"])
            meta = z.read("META.yaml").decode()
        self.assertNotIn("hunter2", meta)  # sealed, never plain
        self.assertNotIn("s3cret", meta)
        for path in ("script-sets/rt", "sync-apis/rt_sapi", "async-apis/rt_aapi", "cron-jobs/rt_cron",
                     "env-variables/RT_VAR", "env-variables/RT_PW", "connectors/rt_db"):
            self.assertEqual(dff("GET", f"/api/v1/{path}/do/delete", tok=tok)[0], 200, path)
        self.assertEqual(raw_rows(), ([], []))
        p = ST.ctl("import", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")  # no warnings: nothing was left out
        self.assertEqual(snapshot(), before)
        self.assertEqual(raw_rows(), raw_before)
        # the worker still opens the imported secrets: DFF.ENV gives the password back
        st, r = dff("POST", "/api/v1/scripts/do/add", {"data": {
            "id": "rt__pw", "codeDraft": "@DFF.API('pw')\ndef pw():\n    return DFF.ENV('RT_PW')\n"}}, tok=tok)
        self.assertEqual(st, 200, r)
        self.assertEqual(dff("POST", "/api/v1/scripts/rt__pw/do/publish", {"wait": True}, tok=tok)[0], 200)
        st, r = ST.http("POST", "/api/v1/func/rt__pw.pw", body={"kwargs": {}})
        self.assertEqual((st, r["data"]["result"]), (200, "hunter2"), r)

    def test_dff_export_leaves_secrets_out_as_dff_does_and_foreign_seals_are_refused(self):
        tok = token()
        for path, data in (("/api/v1/script-sets/do/add", {"id": "sx"}),
                           ("/api/v1/env-variables/do/add",
                            {"id": "SX_PW", "valueTEXT": "hunter2", "autoTypeCasting": "password"})):
            self.assertEqual(dff("POST", path, {"data": data}, tok=tok)[0], 200)
        st, r = dff("POST", "/api/v1/connectors/do/add", {"skipTest": True, "data": {
            "id": "sx_conn", "type": "redis", "configJSON": {"host": "h", "password": "s3cret"}}}, tok=tok)
        self.assertEqual(st, 200, r)
        st, r = dff("POST", "/api/v1/script-sets/do/export",
                    {"scriptSetIds": ["sx"], "envVariableIds": ["SX_PW"], "connectorIds": ["sx_conn"]}, tok=tok)
        self.assertEqual(st, 200, r)
        plain = r["data"]
        # DFF's way: a password variable becomes an empty string, a secret an empty "<field>Cipher"
        self.assertEqual([(e["id"], e["autoTypeCasting"], e["valueTEXT"]) for e in plain["envVariables"]],
                         [("SX_PW", "string", "")])
        self.assertEqual(plain["connectors"][0]["configJSON"], {"host": "h", "passwordCipher": ""})
        st, r = dff("POST", "/api/v1/script-sets/do/export",
                    {"scriptSetIds": ["sx"], "envVariableIds": ["SX_PW"], "connectorIds": ["sx_conn"],
                     "withSecrets": True}, tok=tok)
        self.assertEqual(st, 200, r)
        sealed = r["data"]
        self.assertTrue(sealed["envVariables"][0]["valueTEXT"].startswith("sealed:v1:"))
        self.assertTrue(sealed["connectors"][0]["configJSON"]["password"].startswith("sealed:v1:"))
        before = (ST.sql("SELECT value FROM env_variable WHERE id = 'SX_PW'"),
                  ST.sql("SELECT config_json FROM connector WHERE id = 'sx_conn'"))
        # a seal this stack's secret.key does not open (another stack's, or damaged): refused, nothing written
        for section, item, field in (("envVariables", 0, "valueTEXT"), ("connectors", 0, "password")):
            doc = json.loads(json.dumps(sealed))
            doc["scriptSets"][0]["id"] = "sx2"
            doc["envVariables"][0]["id"] = "SX2_PW"
            doc["connectors"][0]["id"] = "sx2_conn"
            holder = doc[section][item] if field == "valueTEXT" else doc[section][item]["configJSON"]
            v = holder[field]
            holder[field] = v[:-6] + ("A" if v[-6] != "A" else "B") + v[-5:]
            st, r = dff("POST", "/api/v1/script-sets/do/import", {"data": doc}, tok=tok)
            self.assertEqual((st, r["reason"]), (400, "EClientBadRequest"), r)
            self.assertIn("does not open with this stack's secret.key", r["message"])
            for table, rid in (("script_set", "sx2"), ("env_variable", "SX2_PW"), ("connector", "sx2_conn")):
                self.assertEqual(ST.sql(f"SELECT COUNT(*) FROM {table} WHERE id = '{rid}'"), [["0"]], (section, table))
        # overwrite with the DFF-way export: values emptied as DFF would, with a warning
        st, r = dff("POST", "/api/v1/script-sets/do/import", {"data": plain, "overwrite": True}, tok=tok)
        self.assertEqual(st, 200, r)
        self.assertEqual(r["data"]["overwritten"]["connectors"], ["sx_conn"])
        self.assertTrue(any("sx_conn: configJSON.password is not in the export" in w for w in r["data"]["warnings"]))
        self.assertEqual(ST.sql("SELECT value_type, value FROM env_variable WHERE id = 'SX_PW'"), [["string", ""]])
        self.assertNotEqual(ST.sql("SELECT config_json FROM connector WHERE id = 'sx_conn'"), before[1])
        # and the sealed export brings everything back over it
        st, r = dff("POST", "/api/v1/script-sets/do/import", {"data": sealed, "overwrite": True}, tok=tok)
        self.assertEqual(st, 200, r)
        self.assertEqual((ST.sql("SELECT value FROM env_variable WHERE id = 'SX_PW'"),
                          ST.sql("SELECT config_json FROM connector WHERE id = 'sx_conn'")), before)

    def test_dff_import_bad_item_leaves_nothing_behind(self):
        path = os.path.join(ST.dir, "bad.zip")
        bad = META.replace("imp", "bad").replace("IMP", "BAD").replace("funcId: bad__main.plus\n    funcCallKwargsJSON: '{}'",
                                                 "funcId: not-a-func\n    funcCallKwargsJSON: '{}'")
        make_export(path, meta=bad, root="")
        p = ST.ctl("import", path)
        self.assertEqual(p.returncode, 1)
        self.assertIn("funcId", p.stderr)
        for table in ("script_set", "script", "env_variable", "sync_api"):
            self.assertEqual(ST.sql(f"SELECT COUNT(*) FROM {table} WHERE id LIKE 'bad%%' OR id LIKE 'BAD%%'"),
                             [["0"]], table)
        p = ST.ctl("import", os.path.join(ST.dir, "nope.zip"))
        self.assertEqual(p.returncode, 2)
        with open(os.path.join(ST.dir, "nometa.zip"), "wb") as f:
            import zipfile
            with zipfile.ZipFile(f, "w") as z:
                z.writestr("x.txt", "x")
        p = ST.ctl("import", os.path.join(ST.dir, "nometa.zip"))
        self.assertEqual(p.returncode, 2)
        self.assertIn("META.yaml", p.stderr)
        st, r = dff("POST", "/api/v1/script-sets/do/import", {"data": {"scriptSets": {"id": "x"}}})
        self.assertEqual((st, r["reason"]), (400, "EClientBadRequest"))
        self.assertIn("must be a list", r["message"])


class TestZzRedisDown(unittest.TestCase):
    """Last (it stops the module's Redis): a write that is saved but cannot
    be announced says so."""

    def test_dff_saved_but_not_announced_is_503_naming_the_row(self):
        import signal
        os.kill(ST.pids()["redis"], signal.SIGKILL)
        time.sleep(0.3)
        st, r = ST.http("POST", "/api/v1/env-variables/do/add",
                        body={"data": {"id": "RD_VAR", "valueTEXT": "v", "autoTypeCasting": "string"}})
        self.assertEqual((st, r["reason"]), (503, "EBackend"), r)
        self.assertEqual((r["detail"]["saved"], r["detail"]["id"]), ("added", "RD_VAR"))
        self.assertEqual(ST.sql("SELECT value FROM env_variable WHERE id = 'RD_VAR'"), [["v"]])
        st, r = ST.http("GET", "/api/v1/env-variables/do/list?id=RD_VAR")
        self.assertEqual(st, 200, r)


if __name__ == "__main__":
    unittest.main()
