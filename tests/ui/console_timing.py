"""How long each console page takes to be usable, by the browser's own
clock: from the navigation start (a load) or the hash change (a click in
the nav) to the page's main content painted (app.js sets body[data-ready]
and data-ready-ms one frame after drawing it; for the overview that is the
node cards filled).

Three figures per page, the median of --runs:
  in-app   a click in the nav (the page's own requests only);
  reload   a new navigation to /console/#/<page> with the session cookie
           and the browser's cache as a returning operator has it (the
           index revalidated, the versioned assets from the cache);
  cold     the same with the cache emptied first (a first visit: HTML, CSS,
           JS and the data all fetched).
and, from Navigation and Resource Timing of the cold load: when the HTML
had arrived (responseEnd), the scripts had run (DOMContentLoaded) and the
content went into the DOM (data-drawn-ms; from there to "cold" is style,
layout and paint), the requests made before the page was usable and the
bytes they carried.

Run by hand (the lead reruns it on a quiet host; bench/RESULTS-console.md
keeps the figures):
    TANDEM_BUILD=$PWD/build /usr/bin/python3 tests/ui/console_timing.py [--runs 5] [--check]
It starts its own local stack (tests/integration/harness.py), seeds a few
records per page and two supervisor entries (so the overview draws two
node cards), and prints a Markdown table with the load average. --check
exits 1 when a page's in-app, reload or cold figure is 300 ms or more.
tests/ui/test_console.py (test_13) calls measure() on its own stack with
one run, and does not assert the figures (CI hosts are shared)."""

import argparse
import json
import os
import shutil
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))

TARGET_MS = 300.0
VIEWS = ["overview", "scripts", "sync-apis", "async-apis", "tasks", "cron", "connectors", "env", "keys",
         "users", "call"]

# what the page had fetched when it became usable, from Resource Timing
_RESOURCES_JS = """
var ready = Number(document.body.getAttribute('data-ready-ms'));
var nav = performance.getEntriesByType('navigation')[0] || {};
var res = performance.getEntriesByType('resource').filter(function (e) { return e.startTime <= ready; });
return JSON.stringify({
  ready: ready,
  drawn: Number(document.body.getAttribute('data-drawn-ms')),
  htmlMs: nav.responseEnd || 0,
  dclMs: nav.domContentLoadedEventEnd || 0,
  requests: 1 + res.length,
  bytes: (nav.transferSize || 0) + res.reduce(function (a, e) { return a + (e.transferSize || 0); }, 0),
  names: res.map(function (e) {
    return e.name.replace(location.origin, '') + ' ' + e.startTime.toFixed(0) + '-' + e.responseEnd.toFixed(0) +
      (e.transferSize ? '' : ' (cache)');
  })
});
"""


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,720", "--lang=en-US"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
    d.set_window_size(1280, 720)
    return d


def _ready_ms(d, view, timeout=30):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def look(d):
        b = d.find_element(By.TAG_NAME, "body")
        return b.get_attribute("data-ready") == view and b.get_attribute("data-ready-ms")
    return float(WebDriverWait(d, timeout).until(look))


def _load(d, url, view, cold):
    """One navigation to the page; (ready ms, timing dict)."""
    d.get("about:blank")
    if cold:
        d.execute_cdp_cmd("Network.clearBrowserCache", {})
    d.get(url + "/console/#/" + view)
    ms = _ready_ms(d, view)
    return ms, json.loads(d.execute_script(_RESOURCES_JS))


def measure(d, url, views=VIEWS, runs=1, loads=None):
    """d: a Chromium driver already signed in to the console at url.
    loads: the views whose reload and cold load are timed too (default all).
    Returns one dict per view: in_app, reload, cold (ms, medians; None when
    not timed), requests, bytes, html_ms, dcl_ms (of the last cold load)."""
    from selenium.webdriver.common.by import By
    loads = views if loads is None else loads
    rows = {v: {"view": v, "in_app": [], "reload": [], "cold": [], "t": None} for v in views}
    for _ in range(runs):
        d.get(url + "/console/#/" + views[0])
        _ready_ms(d, views[0])
        for v in views:
            for _try in range(3):  # the overview redraws: a stale link is clicked again
                try:
                    d.find_element(By.ID, "nav-" + v).click()
                    break
                except Exception:  # noqa: BLE001
                    time.sleep(0.05)
            rows[v]["in_app"].append(_ready_ms(d, v))
        for v in loads:
            ms, t = _load(d, url, v, cold=False)
            rows[v]["reload"].append(ms)
            rows[v]["t_reload"] = t
            ms, t = _load(d, url, v, cold=True)
            rows[v]["cold"].append(ms)
            rows[v]["t"] = t
    out = []
    for v in views:
        r = rows[v]
        t = r["t"] or {}
        out.append({"view": v,
                    "in_app": statistics.median(r["in_app"]) if r["in_app"] else None,
                    "reload": statistics.median(r["reload"]) if r["reload"] else None,
                    "cold": statistics.median(r["cold"]) if r["cold"] else None,
                    "requests": t.get("requests"), "bytes": t.get("bytes"),
                    "html_ms": t.get("htmlMs"), "dcl_ms": t.get("dclMs"), "drawn_ms": t.get("drawn"),
                    "names": t.get("names"),
                    "reload_names": (r.get("t_reload") or {}).get("names")})
    return out


def table(rows, runs, load_before, load_after):
    def f(v):
        return "–" if v is None else "%.0f" % v
    lines = ["load average %.2f before, %.2f after; median of %d run(s); ms from navigation (or click) "
             "to the page's content painted" % (load_before, load_after, runs), "",
             "| page | in-app | reload | cold | last cold: HTML in | scripts run | content in the DOM | "
             "requests before usable | KB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["view"], f(r["in_app"]), f(r["reload"]), f(r["cold"]),
            f(r["html_ms"]), f(r["dcl_ms"]), f(r["drawn_ms"]),
            "–" if r["requests"] is None else r["requests"],
            "–" if r["bytes"] is None else "%.1f" % (r["bytes"] / 1024.0)))
    return "\n".join(lines) + "\n"


def over_target(rows):
    return ["%s %s %.0f ms" % (r["view"], k, r[k]) for r in rows for k in ("in_app", "reload", "cold")
            if r[k] is not None and r[k] >= TARGET_MS]


def seed(st):
    """A few records on every page, and two supervisors' entries (the
    overview's node cards; nothing takes requests: no switchover here)."""
    st.push_script("timing__demo", "import DFF\n\n@DFF.API('Add')\ndef add(x=1, y=2):\n    return x + y\n",
                   title="Timing demo")
    st.create_sync_api("timing__demo.add", {"x": 1, "y": 2}, title="sync add")
    st.create_async_api("timing__demo.add", {"x": 1}, title="async add")
    st.add_cron_job("timing__demo.add", "*/5 * * * *")
    st.api("POST", "/api/v1/env-variables/do/add", {"data": {"id": "timing_env", "valueTEXT": "1",
                                                              "autoTypeCasting": "integer"}})
    st.api("POST", "/api/v1/func/timing__demo.add", {"kwargs": {"x": 2}})
    later = int(time.time() * 1000) + 3600 * 1000
    for n, role in (("node-a", "master"), ("node-b", "backup")):
        st.redis("HSET", "tandem:sv", n, json.dumps({"role": role, "epoch": 3, "ts": later, "pid": 1,
                                                     "warm": role == "backup"}))


def sign_in(d, url, user, pw):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    d.get(url + "/")
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "username"))
    d.find_element(By.ID, "username").send_keys(user)
    d.find_element(By.ID, "password").send_keys(pw)
    d.find_element(By.ID, "signin").click()
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "served-by"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--pages", default=",".join(VIEWS), help="comma-separated, default all")
    ap.add_argument("--check", action="store_true", help="exit 1 if a figure is >= 300 ms")
    ap.add_argument("--verbose", action="store_true", help="list each cold load's requests")
    a = ap.parse_args()
    views = [v for v in a.pages.split(",") if v]
    bad = [v for v in views if v not in VIEWS]
    if bad:
        ap.error("unknown page(s) %s: pages are %s" % (", ".join(bad), ", ".join(VIEWS)))
    from harness import Stack
    st = Stack(name="uitime").up()
    d = None
    try:
        p = st.ctl("user", "add", "timing", input="timing-pw-1\n")
        if p.returncode != 0:
            raise SystemExit("tandemctl user add: " + p.stderr)
        seed(st)
        d = chromium()
        sign_in(d, st.url, "timing", "timing-pw-1")
        l0 = os.getloadavg()[0]
        rows = measure(d, st.url, views, runs=a.runs)
        l1 = os.getloadavg()[0]
    finally:
        if d:
            d.quit()
        st.down()
    print(table(rows, a.runs, l0, l1))
    if a.verbose:
        for r in rows:
            print("%s (cold, html in %.0f, DOMContentLoaded %.0f, drawn %.0f): %s" % (
                r["view"], r["html_ms"], r["dcl_ms"], r["drawn_ms"], "; ".join(r["names"] or [])))
            print("%s (reload): %s" % (r["view"], "; ".join(r["reload_names"] or [])))
    over = over_target(rows)
    if over:
        print("over %d ms: %s" % (TARGET_MS, ", ".join(over)))
    return 1 if a.check and over else 0


if __name__ == "__main__":
    sys.exit(main())
