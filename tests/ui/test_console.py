"""The web console in a real browser: headless Chromium driven by Selenium
(Debian's chromium, chromium-driver, python3-selenium) against a local
stack (tests/integration/harness.py). One browser walks the flows a person
would, in order: sign in, write a script, run its draft, publish, wire a
Sync API and call it, read the task record, create and pause a cron job,
revoke a key, sign out. Each flow leaves a screenshot in
$TANDEM_BUILD/ui-screenshots/. Bad input: a wrong password (then
rate-limited), a missing or wrong CSRF token, an ended session, a path
outside the console's directory, a script title with HTML in it.
Also: Async APIs with throttling and expiry, the task record's call chain,
connectors (password never shown), typed env variables, the maintenance
button, a call-only user's console (the Call page only), toasts cleared on
a page change, and how long each page takes to be usable (printed and
written to $TANDEM_BUILD/ui-timings.txt; bench/RESULTS.md has figures).
Only the standard library besides selenium; Debian's /usr/bin/python3."""

import http.client
import json
import os
import re
import shutil
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
from harness import BUILD, Stack, wait_for  # noqa: E402
sys.path.insert(0, os.path.dirname(__file__))
from marionette import Firefox, firefox_binary  # noqa: E402

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import Select, WebDriverWait
    HAVE_SELENIUM = True
except ImportError:  # pragma: no cover - reported as a skip
    HAVE_SELENIUM = False

SHOTS = os.path.join(BUILD, "ui-screenshots")
USER, PASSWORD = "ops", "console-pw-1"
CALLER, CALLER_PW = "caller", "caller-pw-1"  # DFF role 'user': may only call
CODE = '''import DFF

@DFF.API('Add two numbers')
def add(x=1, y=2):
    print('adding', x, y)
    return x + y

@DFF.API('Fail on purpose')
def boom():
    return 1 / 0

@DFF.API('Call add as a subtask')
def chain():
    return DFF.FUNC('ui__calc.add', kwargs={'x': 1, 'y': 1})
'''
HTML_TITLE = '<img src=x onerror="window.pwned=1"><b>bold</b>'


def have_browser():
    return HAVE_SELENIUM and shutil.which("chromedriver") and (shutil.which("chromium") or shutil.which("chromium-browser"))


def raw(stack, method, path, body=None, headers=None, decode=True):
    """One request without the harness's admin key: (status, headers, parsed
    body; raw bytes with decode=False)."""
    u = urllib.parse.urlsplit(stack.url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    h = dict(headers or {})
    if body is not None:
        body = json.dumps(body)
        h["Content-Type"] = "application/json"
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = {k.lower(): v for k, v in r.getheaders()}
    c.close()
    if not decode:
        return r.status, hdrs, data
    try:
        data = json.loads(data)
    except ValueError:
        pass
    return r.status, hdrs, data


# Which of the page's texts and controls a message (.toast) is drawn over:
# [] when none. Elements inside the messages' own box do not count.
COVERED_JS = """
var out = [], ts = document.querySelectorAll('.toast');
var all = document.querySelectorAll('#main h1, #main h2, #main p, #main button, #main td, #main .stat, #main label');
function hit(a, b) { return a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom; }
ts.forEach(function (t) {
  var r = t.getBoundingClientRect();
  all.forEach(function (e) {
    if (e.closest('#toasts')) return;
    var q = e.getBoundingClientRect();
    if (q.width && q.height && hit(r, q)) out.push(e.tagName + '#' + e.id + ': ' + e.textContent.slice(0, 40));
  });
});
return out;
"""


def h_etag(stack):
    return raw(stack, "GET", "/console/")[1]["etag"]


def cookie_of(hdrs):
    sc = hdrs.get("set-cookie", "")
    return sc.split(";", 1)[0]


@unittest.skipUnless(have_browser(), "needs chromium, chromium-driver and python3-selenium")
class ConsoleTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="ui").up()
        p = cls.st.ctl("user", "add", USER, input=PASSWORD + "\n")
        assert p.returncode == 0, p.stderr
        p = cls.st.ctl("user", "add", "victim", input="victim-pw-1\n")
        assert p.returncode == 0, p.stderr
        p = cls.st.ctl("user", "add", CALLER, "--role", "user", input=CALLER_PW + "\n")
        assert p.returncode == 0, p.stderr
        os.makedirs(SHOTS, exist_ok=True)
        o = webdriver.ChromeOptions()
        o.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,720", "--lang=en-US"):
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        cls.d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
        cls.d.set_window_size(1280, 720)
        cls.wait = WebDriverWait(cls.d, 20)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.d.quit()
        finally:
            cls.st.down()

    # -- helpers -----------------------------------------------------------
    def setUp(self):
        self.t0 = time.monotonic()

    def tearDown(self):
        # each flow's cost, to keep the whole file cheap in CI
        print("  [%s: %.1f s]" % (self._testMethodName, time.monotonic() - self.t0), file=sys.stderr)

    def shot(self, name):
        path = os.path.join(SHOTS, name + ".png")
        self.d.save_screenshot(path)
        return path

    def find(self, css):
        return self.wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css):
        # the overview redraws every 2 s: a button found just before a redraw
        # is clicked again as the new one
        for _ in range(5):
            try:
                e = self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
                e.click()
                return e
            except StaleElementReferenceException:
                time.sleep(0.05)
        e = self.wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, css)))
        e.click()
        return e

    def text_in(self, css, text, timeout=30):
        WebDriverWait(self.d, timeout).until(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text))
        # the overview redraws itself every 2 s: read again if it just did
        for _ in range(20):
            try:
                return self.d.find_element(By.CSS_SELECTOR, css).text
            except StaleElementReferenceException:
                time.sleep(0.05)
        return self.d.find_element(By.CSS_SELECTOR, css).text

    def row_with(self, css, text, timeout=30):
        """The first element matching css whose text has `text`, once the
        page has (re)drawn it; tolerant of a list redrawn meanwhile."""
        def look(d):
            for e in d.find_elements(By.CSS_SELECTOR, css):
                try:
                    if text in e.text:
                        return e
                except StaleElementReferenceException:
                    pass
            return False
        return WebDriverWait(self.d, timeout).until(look)

    def click_row(self, css, *texts, timeout=30):
        """Click the first element matching css whose text has all texts,
        once the page has drawn it; a list redrawn meanwhile is looked at
        again rather than failing on a stale element."""
        def look(d):
            for e in d.find_elements(By.CSS_SELECTOR, css):
                try:
                    if all(t in e.text for t in texts):
                        e.click()
                        return True
                except StaleElementReferenceException:
                    pass
            return False
        WebDriverWait(self.d, timeout).until(look)

    def type(self, css, text, clear=True):
        e = self.find(css)
        if clear:
            e.clear()
        e.send_keys(text)
        return e

    def go(self, hash_):
        self.d.get(self.st.url + "/console/#/" + hash_)

    def sign_in(self, user=USER, pw=PASSWORD):
        self.d.get(self.st.url + "/")
        self.type("#username", user)
        self.type("#password", pw)
        self.click("#signin")

    def csp_violations(self):
        return [e for e in self.d.get_log("browser") if "Content Security Policy" in e.get("message", "")]

    # -- the flows, in order (unittest runs test_* alphabetically) ----------
    def test_01_sign_in_shows_the_overview(self):
        self.d.get(self.st.url + "/")
        self.assertTrue(self.d.current_url.endswith("/console/"), self.d.current_url)
        self.find("#username")
        self.shot("01-sign-in")
        t0 = time.monotonic()
        self.sign_in()
        self.text_in("#served-by", "local")
        self.text_in("#workers", "children")
        took = time.monotonic() - t0
        # a loose bound: CI machines are shared; the figure is printed
        print("sign-in to overview: %.2f s" % took, file=sys.stderr)
        self.assertLess(took, 60.0, "overview took %.2f s" % took)
        self.assertIn(USER, self.find("#who").text)
        # the session cookie is HttpOnly: page script cannot read it
        self.assertNotIn("tandem_session", self.d.execute_script("return document.cookie"))
        c = self.d.get_cookie("tandem_session")
        self.assertTrue(c and c["httpOnly"], c)
        self.assertEqual(c.get("sameSite"), "Strict")
        self.shot("02-overview")

    def test_02_script_edit_run_draft_publish(self):
        self.go("scripts")
        self.type("#new-script-id", "ui__calc")
        self.type("#new-script-title", HTML_TITLE)
        self.click("#new-script")
        self.find(".editor textarea")
        # the title with HTML in it is shown as text, never as markup
        self.text_in("#script-heading", "<b>bold</b>")
        self.assertFalse(self.d.find_elements(By.CSS_SELECTOR, "#script-detail img, #scripts img, #scripts b"))
        self.assertIsNone(self.d.execute_script("return window.pwned"))
        ta = self.find(".editor textarea")
        self.d.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", ta, CODE)
        # highlighting: keywords and strings get their spans, line numbers follow
        self.assertTrue(self.d.find_elements(By.CSS_SELECTOR, ".editor pre .tok-kw"))
        self.assertTrue(self.d.find_elements(By.CSS_SELECTOR, ".editor pre .tok-str"))
        self.assertEqual(len(self.d.find_elements(By.CSS_SELECTOR, ".editor .gutter div")), CODE.count("\n") + 1)
        Select(self.find("#run-func")).select_by_value("add")
        self.type("#run-kwargs", '{"x": 20, "y": 22}')
        self.click("#run")
        self.text_in("#run-value", "42")
        self.assertIn("adding 20 22", self.find("#run-logs").text)
        self.shot("03-script-draft-run")
        Select(self.find("#run-func")).select_by_value("boom")
        self.type("#run-kwargs", "{}")
        self.click("#run")
        self.text_in("#run-traceback", "ZeroDivisionError")
        # a syntax error marks its line in the gutter
        self.d.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", ta,
            CODE + "\ndef broken(:\n    pass\n")
        self.click("#publish")
        self.text_in("#publish-result", "SyntaxError")
        bad = self.find(".editor .gutter .badline")
        self.assertEqual(bad.text, str(CODE.count("\n") + 2))
        self.shot("04-script-syntax-error")
        self.d.execute_script(
            "arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", ta, CODE)
        self.click("#publish")
        self.text_in("#publish-result", "Published v1")
        self.click("#show-diff")
        self.find("#diff")
        funcs = self.st.api("GET", "/api/v1/funcs/do/list?pageSize=1000")
        self.assertIn("ui__calc.add", [f["id"] for f in funcs])

    def test_03_sync_api_create_and_call(self):
        self.go("sync-apis")
        self.wait.until(lambda d: "ui__calc.add" in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#api-func option")])
        Select(self.find("#api-func")).select_by_value("ui__calc.add")
        self.type("#api-kwargs", '{"x": 5, "y": "INPUT_BY_CALLER"}')
        self.type("#api-title", "adder")
        self.type("#api-bySecond", "50")
        self.type("#api-byDay", "100000")
        self.click("#api-create")
        card = self.find(".api")
        self.assertEqual(card.find_element(By.CSS_SELECTOR, ".api-throttle").text, "50 per second, 100000 per day")
        self.assertEqual(card.find_element(By.CSS_SELECTOR, ".api-expire").text, "never")
        url = card.find_element(By.CSS_SELECTOR, ".api-url").text
        self.assertIn("/api/v1/sync/", url)
        self.assertIn("curl -s", card.find_element(By.CSS_SELECTOR, ".api-curl").text)
        # the URL works for a plain client, with the caller's y
        sid = card.get_attribute("data-id")
        st, _, body = raw(self.st, "GET", "/api/v1/sync/%s?kwargs=%s" % (sid, urllib.parse.quote('{"y": 10}')))
        self.assertEqual((st, body), (200, 15))
        card.find_element(By.CSS_SELECTOR, ".api-call").click()
        self.text_in(".api-out", "200")
        self.shot("05-sync-api")
        self.__class__.sapi = sid
        a = self.st.api("GET", "/api/v1/sync-apis/%s/do/get" % sid)
        self.assertEqual(a["throttlingJSON"], {"bySecond": 50, "byDay": 100000})

    def test_03b_async_api_with_expiry(self):
        self.click("#nav-async-apis")
        self.text_in("main h1", "Async APIs")
        self.wait.until(lambda d: "ui__calc.add" in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#api-func option")])
        Select(self.find("#api-func")).select_by_value("ui__calc.add")
        self.type("#api-kwargs", '{"x": "INPUT_BY_CALLER", "y": 1}')
        self.type("#api-title", "late adder")
        # an expiry already past: the API exists, the page says expired and
        # a caller is refused (DFF's AsyncAPIExpired)
        self.d.execute_script("arguments[0].value = '2020-01-02T03:04'", self.find("#api-expire"))
        self.click("#api-create")
        card = self.find(".api")
        self.assertIn("/api/v1/async/", card.find_element(By.CSS_SELECTOR, ".api-url").text)
        self.assertIn("expired", card.text)
        self.assertTrue(card.find_element(By.CSS_SELECTOR, ".api-expire").text.startswith("2020-01-0"))
        aid = card.get_attribute("data-id")
        st, _, body = raw(self.st, "POST", "/api/v1/async/%s" % aid, {"kwargs": {"x": 1}})
        self.assertEqual(st, 403, body)
        self.shot("05b-async-api-expired")

    def test_04_task_record_of_the_call(self):
        def seen():
            st, r = self.st.http("GET", "/api/v1/task-records/do/list?funcId=ui__calc.add")
            return st == 200 and len(r["data"]) >= 1
        wait_for(seen, 30, 0.3, "the task record of the Sync API call")
        self.go("tasks")
        self.type("#tr-func", "ui__calc.add")
        self.click("#tr-filter")
        self.click_row("#task-records tr.task", "ui__calc.add", "success")
        self.text_in("#task-fields", "funcId")
        self.assertIn("ui__calc.add", self.find("#task-fields").text)
        self.assertIn('"x": 5', self.find("#task-kwargs").text)
        self.assertIn("This task is the root", self.find("#task-detail").text)
        self.shot("06-task-record")

    def test_04b_call_chain(self):
        """A func that calls another (DFF.FUNC): the subtask's record names
        its root, and the page lists the chain from either end."""
        root = self.st.api("POST", "/api/v1/func/ui__calc.chain", {"kwargs": {}})["id"]

        def subtask():
            st, r = self.st.http("GET", "/api/v1/task-records/do/list?rootTaskId=%s" % root)
            return st == 200 and len(r["data"]) >= 2 and r["data"]
        recs = wait_for(subtask, 30, 0.3, "the subtask's record")
        child = [t for t in recs if t["id"] != root][0]
        self.assertEqual(child["rootTaskId"], root)
        self.go("tasks/" + child["id"])
        self.text_in("#task-detail h2", child["id"])
        self.text_in("#task-detail", "Root task: " + root)
        self.assertIn("ui__calc.chain", self.find("#task-chain-funcs").text)
        rows = self.wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#task-chain tr.chain")) >= 2
                               and d.find_elements(By.CSS_SELECTOR, "#task-chain tr.chain"))
        self.assertEqual({r.get_attribute("data-id") for r in rows}, {root, child["id"]})
        self.shot("06b-call-chain")
        # from the root: the same chain
        [r for r in rows if r.get_attribute("data-id") == root][0].click()
        self.text_in("#task-detail h2", root)
        self.text_in("#task-detail", "This task is the root")

    def test_05_cron_create_and_pause(self):
        self.go("cron")
        self.wait.until(lambda d: "ui__calc.add" in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#cron-func option")])
        Select(self.find("#cron-func")).select_by_value("ui__calc.add")
        self.type("#cron-expr", "0 3 * * *")
        self.type("#cron-tz", "Europe/Berlin")
        # the next five fire times, from the beat's engine, in the job's zone
        nxt = self.text_in("#cron-next", "T03:00:00+0")
        self.assertEqual(nxt.count("T03:00:00+0"), 5, nxt)
        self.click("#cron-create")
        self.text_in("#cron-jobs tr.cron", "0 3 * * *")
        self.click("#cron-jobs tr.cron .cron-toggle")
        self.text_in("#cron-jobs tr.cron", "paused")
        jobs = self.st.api("GET", "/api/v1/cron-jobs/do/list")
        self.assertEqual([j["isDisabled"] for j in jobs if j["funcId"] == "ui__calc.add"], [True])
        self.shot("07-cron-paused")
        # bad expression: refused with the server's reason
        self.type("#cron-expr", "61 * * * *")
        self.click("#cron-create")
        self.text_in(".toast.bad", "cronExpr")

    def test_06_key_create_and_revoke(self):
        # the cron page's error toast does not follow to the next page
        self.assertTrue(self.d.find_elements(By.CSS_SELECTOR, ".toast.bad"))
        self.click("#nav-keys")
        self.find("#key-name")
        self.assertEqual(self.d.find_elements(By.CSS_SELECTOR, ".toast"), [])
        self.type("#key-name", "ui-client")
        self.click("#key-create")
        secret = self.find("#key-secret").text
        self.assertTrue(secret.startswith("tk_"), secret)
        st, _, _ = raw(self.st, "POST", "/api/v1/func/ui__calc.add", {"kwargs": {}},
                       {"Authorization": "Bearer " + secret})
        self.assertEqual(st, 200)
        self.d.execute_script("window.confirm = function () { return true; };")
        row = [r for r in self.d.find_elements(By.CSS_SELECTOR, "#keys tr.key") if "ui-client" in r.text][0]
        kid = row.get_attribute("data-id")
        row.find_element(By.CSS_SELECTOR, ".key-revoke").click()
        # DFF's delete revokes: the key leaves the list of live keys
        self.wait.until(lambda d: not d.find_elements(By.CSS_SELECTOR, '#keys tr.key[data-id="%s"]' % kid))
        # the secret is not left on screen once its key is revoked
        self.assertEqual(self.find("#key-secret-box").text, "")
        self.shot("08-key-revoked")
        st, _, _ = raw(self.st, "POST", "/api/v1/func/ui__calc.add", {"kwargs": {}},
                       {"Authorization": "Bearer " + secret})
        self.assertEqual(st, 401)

    def test_07_other_pages_render(self):
        for view, css, text in (("users", "#users", "victim"), ("overview", "#served-by", "local")):
            self.go(view)
            self.text_in(css, text)
        self.assertEqual(self.csp_violations(), [])

    def test_07b_env_typed_password_never_shown(self):
        self.go("env")
        self.type("#env-id", "ui_plain")
        self.type("#env-value", "42")
        Select(self.find("#env-type")).select_by_value("integer")
        self.click("#env-set")
        self.text_in('#env tr.env[data-id="ui_plain"]', "42")
        self.assertIn("integer", self.find('#env tr.env[data-id="ui_plain"]').text)
        self.type("#env-id", "ui_pw")
        Select(self.find("#env-type")).select_by_value("password")
        self.assertEqual(self.find("#env-value").get_attribute("type"), "password")
        self.type("#env-value", "s3cret-Value-9")
        self.click("#env-set")
        self.text_in('#env tr.env[data-id="ui_pw"]', "hidden")
        self.assertNotIn("s3cret-Value-9", self.d.page_source)
        self.assertNotIn("s3cret-Value-9", json.dumps(self.st.api("GET", "/api/v1/env-variables/do/list")))
        self.shot("10-env-typed")

    def test_07c_connector_add_and_test(self):
        self.go("connectors")
        self.type("#conn-id", "ui_redis")
        Select(self.find("#conn-type")).select_by_value("redis")
        # port 1: nothing listens, so the test before saving fails and says why
        self.type("#conn-config", '{"host": "127.0.0.1", "port": 1}')
        self.type("#conn-password", "conn-Pw-77")
        self.click("#conn-add")
        self.text_in(".toast.bad", "failed its test")
        self.assertFalse(self.d.find_elements(By.CSS_SELECTOR, "#connectors tr.connector"))
        self.click("#conn-skip-test")
        self.type("#conn-password", "conn-Pw-77")
        self.click("#conn-add")
        row = self.row_with("#connectors tr.connector", "ui_redis")
        self.assertNotIn("conn-Pw-77", self.d.page_source)
        self.assertNotIn("password", row.find_element(By.CSS_SELECTOR, ".conn-config").text)
        row.find_element(By.CSS_SELECTOR, ".conn-test").click()
        self.text_in('#connectors tr.connector[data-id="ui_redis"] .conn-test-result', "failed:")
        self.shot("11-connector-test")

    def test_07d_maintenance_button(self):
        """The overview asks a node's supervisor for maintenance through
        Redis (Psv:maintenance, taken by failover/sv_ctl.c; unit test
        test_sv_ctl). This stack has no supervisor: the test plays its
        part by writing its state and answer."""
        now = int(time.time() * 1000)
        for n, role in (("node-a", "master"), ("node-b", "backup")):
            self.st.redis("HSET", "tandem:sv", n, json.dumps({"role": role, "epoch": 7, "ts": now + 60000, "pid": 1}))
        try:
            self.go("overview")
            self.find("#maint-node-b")
            self.d.execute_script("window.confirm = function () { return true; };")
            self.click("#maint-node-b")
            self.text_in(".toast", "Maintenance on requested")
            req = json.loads(self.st.redis("GET", "tandem:sv:maintenance"))
            self.assertEqual((req["node"], req["on"]), ("node-b", True))
            # a second request while one waits is refused, and said so in
            # the operator's words (which node's request waits), not Redis's
            self.click("#maint-node-a")
            said = self.text_in(".toast.bad", "already waiting")
            self.assertIn("maintenance request for node-b", said)
            self.assertNotIn("sv:", said)
            # the two messages push the page down; they cover none of it
            # (they used to sit over the Failover panel's help text)
            # (two when the first has not timed out yet)
            self.assertGreaterEqual(len(self.d.find_elements(By.CSS_SELECTOR, ".toast")), 1)
            self.assertEqual(self.d.execute_script(COVERED_JS), [])
            self.shot("12b-maintenance-refused")
            # the supervisor's answer shows on the page
            self.st.redis("SET", "tandem:sv:maintenance:result",
                          json.dumps({"ok": True, "maintenance": True, "role": "backup", "node": "node-b", "at": now}))
            self.text_in("#maint-result", "maintenance on")
            self.shot("12-maintenance")
            # a node whose supervisor does not report is refused by the server
            self.st.redis("DEL", "tandem:sv:maintenance")
            st, _, body = raw(self.st, "POST", "/api/v1/console/do/maintenance", {"node": "node-z", "on": True},
                              {"Authorization": "Bearer " + self.st.key})
            self.assertEqual(st, 409, body)
            self.assertIn("node-z", body["message"])
        finally:
            self.st.redis("DEL", "tandem:sv", "tandem:sv:maintenance", "tandem:sv:maintenance:result")

    def test_08_sign_out_ends_the_session(self):
        self.go("overview")
        self.click("#signout")
        self.text_in("#signin-error", "Signed out")
        self.shot("09-signed-out")
        self.go("scripts")
        self.find("#username")
        self.assertIsNone(self.d.get_cookie("tandem_session"))

    def test_08b_keyboard_only(self):
        """Keyboard usable (issue 12 point 4): sign in, reach a section and
        filter the task records with Tab and Enter only, no mouse."""
        from selenium.webdriver.common.keys import Keys

        def active():
            return self.d.switch_to.active_element

        def tab_to(pred, what, limit=60):
            for _ in range(limit):
                active().send_keys(Keys.TAB)
                e = active()
                if pred(e):
                    return e
            self.fail(f"{what} cannot be reached with Tab")

        self.d.get(self.st.url + "/")
        self.find("#username")
        # the first Tab from the page reaches the sign-in form
        self.d.execute_script("document.activeElement && document.activeElement.blur()")
        self.d.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        if active().get_attribute("id") != "username":
            tab_to(lambda e: e.get_attribute("id") == "username", "the user field")
        active().send_keys(USER)
        active().send_keys(Keys.TAB)
        self.assertEqual(active().get_attribute("id"), "password", "Tab goes from user to password")
        active().send_keys(PASSWORD + Keys.ENTER)
        self.text_in("#served-by", "local")
        link = tab_to(lambda e: e.get_attribute("id") == "nav-tasks", "the Task records link")
        link.send_keys(Keys.ENTER)
        self.find("#tr-func")
        self.assertTrue(self.d.current_url.endswith("#/tasks"), self.d.current_url)
        tab_to(lambda e: e.get_attribute("id") == "tr-func", "the function filter").send_keys(
            "ui__calc.add" + Keys.ENTER)
        self.row_with("#task-records tr.task", "ui__calc.add")
        # the focused element is visibly marked (a :focus-visible outline)
        outline = self.d.execute_script(
            "return getComputedStyle(document.activeElement).outlineStyle")
        self.assertNotEqual(outline, "none", "the focused element has no visible outline")
        self.shot("08b-keyboard")
        self.click("#signout")
        self.text_in("#signin-error", "Signed out")

    def test_09_call_only_user_sees_the_call_page_only(self):
        self.sign_in(CALLER, CALLER_PW)
        self.find("#call-func")
        navs = [a.get_attribute("id") for a in self.d.find_elements(By.CSS_SELECTOR, "nav a")]
        self.assertEqual(navs, ["nav-call"])
        self.assertIn("call only", self.find("#who").text)
        # an admin page asked for by its address still shows the Call page
        self.go("keys")
        self.find("#call-func")
        self.assertFalse(self.d.find_elements(By.CSS_SELECTOR, "#keys"))
        self.wait.until(lambda d: "ui__calc.add" in [o.get_attribute("value") for o in d.find_elements(By.CSS_SELECTOR, "#call-func option")])
        Select(self.find("#call-func")).select_by_value("ui__calc.add")
        self.type("#call-kwargs", '{"x": 2, "y": 3}')
        self.click("#call-run")
        self.text_in("#call-out", '"result": 5')
        self.row_with("#call-apis tr.call-api", self.sapi)
        self.shot("13-call-only")
        self.assertEqual([t.text for t in self.d.find_elements(By.CSS_SELECTOR, ".toast.bad")], [])
        self.click("#signout")
        self.text_in("#signin-error", "Signed out")

    # -- bad input, over plain HTTP ------------------------------------------
    def test_10_wrong_password_is_refused_then_rate_limited(self):
        codes = [raw(self.st, "POST", "/api/v1/console/do/sign-in", {"username": "victim", "password": "nope"})[0]
                 for _ in range(6)]
        self.assertEqual(codes[:5], [400] * 5)
        st, h, body = raw(self.st, "POST", "/api/v1/console/do/sign-in",
                          {"username": "victim", "password": "victim-pw-1"})
        self.assertEqual(st, 429, body)
        self.assertEqual(body["reason"], "EClientRateLimit")
        self.assertGreater(int(h["retry-after"]), 0)
        # another user from the same address is not locked out
        st, _, _ = raw(self.st, "POST", "/api/v1/console/do/sign-in", {"username": USER, "password": PASSWORD})
        self.assertEqual(st, 200)
        # and the browser shows the refusal
        self.sign_in(pw="wrong")
        self.text_in("#signin-error", "wrong username or password")

    def test_11_cookie_writes_need_the_csrf_token(self):
        st, h, body = raw(self.st, "POST", "/api/v1/console/do/sign-in", {"username": USER, "password": PASSWORD})
        self.assertEqual(st, 200)
        ck, csrf = cookie_of(h), body["data"]["csrf"]
        self.assertIn("HttpOnly", h["set-cookie"])
        self.assertIn("SameSite=Strict", h["set-cookie"])
        self.assertNotIn("xAuthToken", body["data"])
        put = ("POST", "/api/v1/env-variables/do/add", {"data": {"id": "ui_csrf", "valueTEXT": "1"}})
        st, _, body = raw(self.st, *put, headers={"Cookie": ck})
        self.assertEqual(st, 403, body)
        self.assertEqual(body["reason"], "EClientCsrf")
        self.assertIn("missing", body["message"])
        st, _, body = raw(self.st, *put, headers={"Cookie": ck, "X-Tandem-Csrf": "0" * 32})
        self.assertEqual(st, 403, body)
        # DFF's deletes are GETs: reads need the token too
        st, _, _ = raw(self.st, "GET", "/api/v1/access-keys/do/list", headers={"Cookie": ck})
        self.assertEqual(st, 403)
        self.assertEqual(self.st.sql("SELECT COUNT(*) FROM env_variable WHERE id = 'ui_csrf'"), [["0"]])
        st, _, body = raw(self.st, *put, headers={"Cookie": ck, "X-Tandem-Csrf": csrf})
        self.assertEqual(st, 200, body)
        # an ended session (sign-out, or the token's expiry) is refused
        st, _, _ = raw(self.st, "POST", "/api/v1/console/do/sign-out", {}, {"Cookie": ck, "X-Tandem-Csrf": csrf})
        self.assertEqual(st, 200)
        put[2]["data"]["id"] = "ui_csrf2"
        st, _, body = raw(self.st, *put, headers={"Cookie": ck, "X-Tandem-Csrf": csrf})
        self.assertEqual(st, 401, body)
        st, _, _ = raw(self.st, "GET", "/api/v1/console/do/session", headers={"Cookie": ck})
        self.assertEqual(st, 401)

    def test_12_static_files_headers_and_no_traversal(self):
        st, h, _ = raw(self.st, "GET", "/console/app.js")
        self.assertEqual(st, 200)
        self.assertTrue(h["content-type"].startswith("text/javascript"))
        self.assertIn("default-src 'self'", h["content-security-policy"])
        self.assertNotIn("unsafe-inline", h["content-security-policy"])
        self.assertEqual(h["x-content-type-options"], "nosniff")
        st, h2, _ = raw(self.st, "GET", "/console/app.js", headers={"If-None-Match": h["etag"]})
        self.assertEqual(st, 304)
        for p in ("/console/../CMakeLists.txt", "/console/%2e%2e/CMakeLists.txt", "/console/..%2fCMakeLists.txt",
                  "/console/.hidden", "/console/x%00.js", "/console/nope.js", "/console/editor.sh"):
            st, _, body = raw(self.st, "GET", p)
            self.assertEqual(st, 404, (p, body))

    def test_12b_served_assets_small_and_cached(self):
        """Every script and stylesheet the console's page loads, as served:
        under 300 KB together (issue 12), named under the console's version
        and then cached for good, while the page itself is revalidated."""
        st, h, page = raw(self.st, "GET", "/console/")
        self.assertEqual(st, 200)
        page = page.decode() if isinstance(page, bytes) else page
        self.assertEqual(h["cache-control"], "no-cache")
        self.assertNotIn("@version@", page)
        assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css)\?v=[0-9a-f]{16})"', page)
        self.assertEqual(sorted(a.split("?")[0] for a in assets), ["app.js", "console.css", "editor.js"], page)
        total = 0
        for a in assets:
            st, h, body = raw(self.st, "GET", "/console/" + a, decode=False)
            self.assertEqual(st, 200, a)
            self.assertIn("immutable", h["cache-control"], a)
            total += len(body)
        print("JS+CSS served: %.1f KB" % (total / 1024.0), file=sys.stderr)
        self.assertLess(total, 300 * 1024, "the console's JS+CSS is %d bytes" % total)
        # another version's URL (a page from before an upgrade) is not cached
        st, h, _ = raw(self.st, "GET", "/console/app.js?v=0000000000000000")
        self.assertEqual((st, h["cache-control"]), (200, "no-cache"))
        # the page's ETag follows the version: unchanged, a 304
        st, h2, _ = raw(self.st, "GET", "/console/", headers={"If-None-Match": h_etag(self.st)})
        self.assertEqual(st, 304)

    def test_13_page_timings(self):
        """How long each page takes to be usable (tests/ui/console_timing.py:
        from the click or the navigation start to the content painted, by
        the browser's clock). Printed and written to ui-timings.txt; not
        asserted (CI machines are shared): the lead runs console_timing.py
        on a quiet host, bench/RESULTS-console.md keeps the figures. The
        reload and cold load are timed for the overview only unless
        TANDEM_UI_TIMINGS=full (seconds of wall time each on a loaded host,
        over this file's CI budget)."""
        import console_timing
        self.sign_in()
        self.find("#served-by")
        full = os.environ.get("TANDEM_UI_TIMINGS") == "full"
        l0 = os.getloadavg()[0]
        rows = console_timing.measure(self.d, self.st.url, loads=None if full else ["overview"])
        text = console_timing.table(rows, 1, l0, os.getloadavg()[0])
        print("\n" + text, file=sys.stderr)
        with open(os.path.join(BUILD, "ui-timings.txt"), "w") as f:
            f.write(text)
        self.assertEqual([r["view"] for r in rows], console_timing.VIEWS)
        # the cold overview fetched its data in one call: the session with the cluster
        names = [n.split(" ")[0] for n in rows[0]["names"]]
        self.assertIn("/api/v1/console/do/session?with=cluster", names)
        self.assertNotIn("/api/v1/console/do/session", names)
        self.assertNotIn("/api/v1/console/cluster", names)

    def test_14_firefox_sign_in_overview_script(self):
        """The same console in headless Firefox (firefox-esr), driven over
        Marionette by tests/ui/marionette.py: sign in, the overview, a
        script's draft run. Screenshots 14-/15-firefox-*.png."""
        if not firefox_binary():
            self.skipTest("needs firefox-esr")
        # 30-100 s on a loaded 2-core host: run by hand or by ui/test_console_firefox
        # (label drills-extra), which sets TANDEM_UI_FIREFOX=1
        if os.environ.get("TANDEM_UI_FIREFOX") != "1":
            self.skipTest("Firefox runs with TANDEM_UI_FIREFOX=1 (ctest -R ui/test_console_firefox)")
        t0 = time.monotonic()
        ff = Firefox()
        try:
            ff.get(self.st.url + "/")
            ff.type("#username", USER)
            ff.type("#password", PASSWORD)
            ff.click("#signin")
            ff.wait_text("#served-by", "local")
            ff.wait_text("#workers", "children")
            ff.screenshot(os.path.join(SHOTS, "14-firefox-overview.png"))
            ff.click("#nav-scripts")
            ff.click("#scripts tr.click td")
            ff.wait_text("#script-heading", "<b>bold</b>")
            self.assertEqual(ff.js("return document.querySelectorAll('#script-detail b, #script-detail img').length"), 0)
            ff.js("var s = document.getElementById('run-func'); s.value = 'add';")
            ff.type("#run-kwargs", '{"x": 6, "y": 7}')
            ff.click("#run")
            ff.wait_text("#run-value", "13")
            ff.screenshot(os.path.join(SHOTS, "15-firefox-script.png"))
        finally:
            ff.quit()
        print("firefox flow: %.1f s" % (time.monotonic() - t0), file=sys.stderr)

    def st_src(self):
        from harness import SRC
        return SRC


if __name__ == "__main__":
    unittest.main(verbosity=2)
