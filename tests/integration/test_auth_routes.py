"""Every admin route of the server's routing table refuses callers without
the admin scope, and changes nothing when it does.

The list of routes comes from the server's own table (server_route.c,
printed by `test_server_route --list-routes`), so a route added later is
walked too, and a route that is not admin must be on the short list of
public and call routes below. Each admin route is sent, with ids of rows
that exist and bodies that would change them, by four callers: no
credentials (401), a call-only Bearer key, the same key signing DFF's way,
and a signed-in user whose role is DFF's 'user' (403 each). The database
(CHECKSUM TABLE of every table) and Redis (every key without a TTL, with
its value or size) are the same afterwards."""

import os
import subprocess
import unittest

from harness import BUILD, Stack, wait_for
from test_dff_mgmt import signed_headers

ST = None
CODE = "@DFF.API('plus')\ndef plus(x, y):\n    return x + y\n"
# A body that would change something on any route that let it through.
BODY = {"data": {"id": "au_new", "title": "changed", "codeDraft": "changed", "valueTEXT": "changed",
                 "isDisabled": True, "funcId": "au__s.plus", "username": "au_new", "password": "pw",
                 "name": "n", "type": "redis", "configJSON": {}, "scope": "admin", "roles": ["sa"],
                 "cronExpr": "* * * * *"},
        "code_draft": "changed", "func_id": "au__s.plus", "name": "k", "value": "v", "expr": "* * * * *",
        "wait": True, "skipTest": True, "kwargs": {}, "scriptSetIds": ["au"], "overwrite": True}


# Every Redis key without a TTL, with its type, and its value (a string) or
# size: keys with a TTL (task results, sign-in tokens, nonces) come and go
# by themselves. Hash fields are listed by name only (heartbeats move).
REDIS_STATE = """
local out = {}
for _, k in ipairs(redis.call('KEYS', '*')) do
  if redis.call('PTTL', k) == -1 then
    local t = redis.call('TYPE', k)['ok']
    local v = ''
    if t == 'string' then v = redis.call('GET', k)
    elseif t == 'stream' then v = tostring(redis.call('XLEN', k))
    elseif t == 'hash' then v = table.concat(redis.call('HKEYS', k), ',')
    elseif t == 'set' then v = table.concat(redis.call('SMEMBERS', k), ',')
    elseif t == 'list' then v = tostring(redis.call('LLEN', k))
    elseif t == 'zset' then v = tostring(redis.call('ZCARD', k)) end
    table.insert(out, k .. ' ' .. t .. ' ' .. v)
  end
end
return out
"""


# The only routes a caller without the admin scope may reach (scope none 0,
# call 1). A new route is admin unless it is added here on purpose.
NOT_ADMIN = {
    ("GET", "/api/v1/do/ping", 0), ("GET", "/api/v1/ping", 0), ("GET", "/api/v1/health", 0),
    ("GET", "/metrics", 0), ("POST", "/api/v1/func/:", 1), ("GET", "/api/v1/tasks/:", 0),
    ("POST", "/api/v1/auth/do/sign-in", 0), ("GET", "/api/v1/auth/do/sign-out", 1),
    ("POST", "/api/v1/auth/do/sign-out", 1),
    # the web console: its static files, the redirects to it, its sign-in
    # and the "am I signed in" probe are public; everything else it does
    # goes through the admin routes with its session cookie + CSRF header
    ("GET", "/", 0), ("GET", "/console", 0), ("GET", "/console/**", 0),
    ("POST", "/api/v1/console/do/sign-in", 0), ("GET", "/api/v1/console/do/session", 0),
    # a call-only user's console: signing out, and the list of what it may call
    ("POST", "/api/v1/console/do/sign-out", 1), ("GET", "/api/v1/console/callables", 1),
} | {(m, f"/api/v1/{kind}/{tail}", 0) for kind in ("sync", "al", "async", "bat") for m in ("GET", "POST")
     for tail in (":", ":/:", ":/:/**")}


def routes():
    """(method, pattern, scope) of every row of the server's routing table."""
    exe = os.path.join(BUILD, "tests", "test_server_route")
    out = subprocess.run([exe, "--list-routes"], capture_output=True, text=True, check=True).stdout
    return [(m, p, int(need)) for m, p, need in (line.split("\t") for line in out.splitlines())]


def admin_routes():
    return [(m, p) for m, p, need in routes() if need == 2]


def setUpModule():
    global ST
    ST = Stack(name="authr").up()


def tearDownModule():
    if ST:
        ST.down()


class TestEveryAdminRoute(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        a = ST.api
        a("POST", "/api/v1/script-sets/do/add", {"data": {"id": "au"}})
        a("POST", "/api/v1/scripts/do/add", {"data": {"id": "au__s", "codeDraft": CODE}})
        a("POST", "/api/v1/scripts/au__s/do/publish", {"wait": True}, timeout=90)
        ids = {
            "script-sets": "au", "scripts": "au__s", "funcs": "au__s.plus", "func-draft": "au__s.plus",
            "sync-apis": a("POST", "/api/v1/sync-apis/do/add", {"data": {"funcId": "au__s.plus"}})["id"],
            "async-apis": a("POST", "/api/v1/async-apis/do/add", {"data": {"funcId": "au__s.plus"}})["id"],
            "cron-jobs": a("POST", "/api/v1/cron-jobs/do/add",
                           {"data": {"funcId": "au__s.plus", "cronExpr": "0 0 1 1 *"}})["id"],
            "env-variables": "AU_VAR",
            "api-auth": a("POST", "/api/v1/api-auth/do/add",
                          {"data": {"type": "httpBasic", "configJSON": {"users": []}}})["id"],
            "connectors": "au_conn",
        }
        a("POST", "/api/v1/env-variables/do/add", {"data": {"id": "AU_VAR", "valueTEXT": "v"}})
        a("POST", "/api/v1/connectors/do/add",
          {"skipTest": True, "data": {"id": "au_conn", "type": "redis", "configJSON": {"host": "h"}}})
        ids["auth-links"], ids["batches"] = ids["sync-apis"], ids["async-apis"]
        ids["crontab-configs"] = ids["cron"] = ids["cron-jobs"]
        cls.call = a("POST", "/api/v1/access-keys/do/add", {"data": {"name": "call", "scope": "call"}})
        ids["access-keys"] = cls.call["id"]
        user = a("POST", "/api/v1/users/do/add", {"data": {"username": "au_user", "password": "pw",
                                                           "roles": ["user"]}})
        ids["users"] = user["id"]
        st, r = ST.http("POST", "/api/v1/auth/do/sign-in", key=None,
                        body={"signIn": {"username": "au_user", "password": "pw"}})
        assert st == 200, r
        cls.user_token = r["data"]["xAuthToken"]
        cls.ids = ids
        # the publish's own task record is written by the keeper a moment
        # later: let it land before the walk's before/after comparison
        # (Ptaskrec, then the keeper's processing list, which it becomes)
        def drained():
            lists = ["tandem:taskrec"] + ST.redis("SMEMBERS", "tandem:taskrec:procs").split()
            return all(ST.redis("LLEN", k) == "0" for k in lists)
        wait_for(drained, 30, 0.2, "the task record queue to drain")

    def path_of(self, pattern):
        """The pattern with the id of a row that exists: /api/v1/<resource>/:..."""
        segs = pattern.split("/")
        out = []
        for i, s in enumerate(segs):
            prev = segs[i - 1] if i else ""
            if s == ":":
                s = self.ids.get(prev, "x")
            elif s == "**":
                rid = self.ids.get(prev, "x")
                s = f"{rid}/do/delete"
            out.append(s)
        return "/".join(out)

    def callers(self, method, path, body):
        yield "no credentials", 401, {}
        yield "call-only Bearer key", 403, {"Authorization": "Bearer " + self.call["secret"]}
        yield "call-only signed key", 403, signed_headers(self.call["id"], self.call["secret"], method, path, body)
        yield "user with role 'user'", 403, {"X-Dff-Auth-Token": self.user_token}

    def state(self):
        tables = [t for (t,) in ST.sql("SHOW TABLES")]
        db = ST.sql("CHECKSUM TABLE " + ", ".join(tables))
        return db, sorted(ST.redis("EVAL", REDIS_STATE, 0).splitlines())

    def test_no_route_is_open_by_accident(self):
        """Every route is admin except the known public and call ones."""
        self.assertEqual({r for r in routes() if r[2] != 2}, NOT_ADMIN)

    def test_every_admin_route_refuses_and_changes_nothing(self):
        routes = admin_routes()
        # the table is read, not copied: it holds DFF's resources and Tandem's own paths
        self.assertGreater(len(routes), 80)
        self.assertIn(("POST", "/api/v1/script-sets/do/import"), routes)
        self.assertIn(("POST", "/api/v1/connectors/:/do/modify"), routes)
        before = self.state()
        tried = 0
        for method, pattern in routes:
            path = self.path_of(pattern)
            for m in (("GET", "POST", "PUT", "PATCH", "DELETE") if method == "*" else (method,)):
                body = BODY if m in ("POST", "PUT", "PATCH") else None
                for who, want, headers in self.callers(m, path, body):
                    st, r = ST.http(m, path, body=body, key=None, headers=headers)
                    self.assertEqual(st, want, (who, m, path, r))
                    if want == 403:
                        self.assertEqual(r["reason"], "EUserPrivilege", (who, m, path, r))
                    tried += 1
        self.assertGreater(tried, 4 * 80)
        self.maxDiff = None
        self.assertEqual(self.state(), before)
        # and the same callers still do what they may: call a func, sign out
        st, r = ST.http("POST", "/api/v1/func/au__s.plus", body={"kwargs": {"x": 1, "y": 2}}, key=self.call["secret"])
        self.assertEqual((st, r["data"]["result"]), (200, 3), r)
        st, r = ST.http("POST", "/api/v1/func/au__s.plus", body={"kwargs": {"x": 2, "y": 2}}, key=None,
                        headers={"X-Dff-Auth-Token": self.user_token})
        self.assertEqual((st, r["data"]["result"]), (200, 4), r)

    def test_the_route_walk_would_see_a_change(self):
        """The check can fail: an admin write through the same path shape is seen."""
        before = self.state()
        st, r = ST.http("POST", self.path_of("/api/v1/env-variables/:/do/modify"), body=BODY)
        self.assertEqual(st, 200, r)
        self.assertNotEqual(self.state(), before)


if __name__ == "__main__":
    unittest.main()
