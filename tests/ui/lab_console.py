"""Driven by tests/ui/test_console_lab.sh inside the lab's client namespace:
headless Chromium signs in to the console through the VIP and, on the
overview, with real supervisors and keepalived behind it:
  1. sees node-a primary, presses "Switch over", confirms: the same page
     (it keeps polling through the VIP) shows node-b primary at a newer
     epoch, and the timeline names the console as the cause;
  2. presses "Maintenance…" on node-b, now the primary, confirms: node-b's
     supervisor hands the VIP back to node-a and stands out of the pair;
  3. presses "End maintenance" on node-b: it rejoins as a backup.
Steps 2 and 3 are checked on the page and on the nodes themselves (each
supervisor's `tandemctl --json status` through appliance/lab ctl, and
which node's eth0 holds the VIP), so a supervisor that ignored the
request fails the test. Arguments: URL USER PASSWORD SHOT_DIR; env LAB
(appliance/lab), LAB_DIR (the lab's directory), NS_PREFIX (its namespaces'
names, appliance/lab-id.sh) and TANDEM_LAB_ID. Exit 0 pass, 1 fail."""
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, user, pw, shots = sys.argv[1:5]
LAB, LAB_DIR = os.environ["LAB"], os.environ["LAB_DIR"]
VIP = urllib.parse.urlsplit(url).hostname
os.makedirs(shots, exist_ok=True)
o = webdriver.ChromeOptions()
o.binary_location = shutil.which("chromium")
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,720",
          "--lang=en-US"):
    o.add_argument(a)
d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)
d.set_window_size(1280, 720)
# the page itself 1280x720 (the window's size includes the browser's frame):
# the screenshots, the README's among them, show what such a screen shows
d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 720, "deviceScaleFactor": 1,
                                                         "mobile": False})


def card(node, attr):
    """An attribute of a node's card on the overview (None while redrawn)."""
    for e in d.find_elements(By.CSS_SELECTOR, "#node-" + node):
        try:
            return e.get_attribute(attr)
        except StaleElementReferenceException:
            return None
    return None


def text(css):
    for e in d.find_elements(By.CSS_SELECTOR, css):
        try:
            return e.text
        except StaleElementReferenceException:
            return ""
    return ""


def click(css):
    # the overview redraws every 2 s: a button found just before a redraw is
    # looked up again
    def go(d):
        for e in d.find_elements(By.CSS_SELECTOR, css):
            try:
                if e.is_enabled():
                    e.click()
                    return True
            except StaleElementReferenceException:
                pass
        return False
    WebDriverWait(d, 30).until(go)


def node_status(n):
    """The node's supervisor, asked over its control socket."""
    p = subprocess.run([LAB, "ctl", n, "--dir", LAB_DIR, "--json", "status"], capture_output=True, text=True,
                       timeout=30)
    if p.returncode != 0:
        raise AssertionError("tandemctl status on node %s: exit %d: %s" % (n, p.returncode, p.stderr.strip()))
    return json.loads(p.stdout)


def vip_on():
    """The nodes whose eth0 holds the VIP, as the drills read it."""
    ns = os.environ["NS_PREFIX"]
    out = []
    for n in ("a", "b"):
        p = subprocess.run(["ip", "-n", ns + n, "-o", "-4", "addr", "show", "dev", "eth0"], capture_output=True,
                           text=True, timeout=10)
        if " %s/" % VIP in p.stdout:
            out.append(n)
    return out


def wait(what, cond, timeout=60):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        try:
            last = cond()
            if last:
                return time.monotonic() - t0
        except Exception as e:  # noqa: BLE001 - a redraw or a node mid-handover
            last = e
        time.sleep(0.2)
    fail("%s: not within %d s (last: %r)" % (what, timeout, last))


def fail(msg):
    d.save_screenshot(os.path.join(shots, "lab-failed.png"))
    print("FAIL console lab:", msg)
    d.quit()
    sys.exit(1)


try:
    d.get(url + "/")
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "username"))
    d.find_element(By.ID, "username").send_keys(user)
    d.find_element(By.ID, "password").send_keys(pw)
    d.find_element(By.ID, "signin").click()
    wait("node-a primary, node-b backup on the overview",
         lambda: card("node-a", "data-role") == "primary" and card("node-b", "data-role") == "backup")
    epoch0 = int(text("#cluster-epoch"))
    served0 = text("#served-by")
    d.save_screenshot(os.path.join(shots, "lab-1-before.png"))
    d.execute_script("window.confirm = function () { return true; };")

    # 1. switchover: the peer must be seen ready (warm) before the supervisor accepts
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#switchover:not([disabled])"))
    click("#switchover")
    took = wait("node-b primary at a newer epoch",
                lambda: card("node-b", "data-role") == "primary" and int(text("#cluster-epoch")) > epoch0, 90)
    wait("the page served by node-b", lambda: text("#served-by") == "node-b", 30)
    d.save_screenshot(os.path.join(shots, "lab-2-switchover.png"))
    print("PASS console switchover: %s -> node-b primary, epoch %d -> %s, page saw it after %.1f s; %s" % (
        served0, epoch0, text("#cluster-epoch"), took, text("#switchover-result")))
    if "requested by the console" not in text("#failover-events"):
        fail("the failover timeline does not name the console as the cause")

    # 2. maintenance on the primary (node-b): its supervisor hands the VIP to
    # node-a (refused while node-a is not a ready backup: wait for it)
    wait("node-a back as a backup", lambda: card("node-a", "data-role") == "backup", 60)
    epoch1 = int(text("#cluster-epoch"))
    t0 = time.monotonic()
    click("#maint-node-b")
    wait("the page: node-b's supervisor answered 'maintenance on'",
         lambda: "maintenance on" in text("#maint-result") and "node-b" in text("#maint-result"), 30)
    wait("the page: node-b in maintenance, node-a primary",
         lambda: card("node-b", "data-maint") == "on" and card("node-b", "data-role") == "maintenance"
         and card("node-a", "data-role") == "primary", 60)
    wait("node-b's supervisor in maintenance, without the VIP",
         lambda: (lambda s: s["maintenance"] is True and not s["vip_here"])(node_status("b")), 30)
    wait("node-a's supervisor primary, holding the VIP",
         lambda: (lambda s: s["role"] == "master" and s["vip_here"])(node_status("a")), 30)
    wait("the VIP on node-a's eth0 only", lambda: vip_on() == ["a"], 30)
    wait("the page served by node-a", lambda: text("#served-by") == "node-a", 30)
    took = time.monotonic() - t0
    if int(text("#cluster-epoch")) <= epoch1:
        fail("maintenance moved the VIP but the epoch stayed %d" % epoch1)
    if "maintenance on" not in text("#failover-events"):
        fail("the failover timeline does not show node-b's 'maintenance on'")
    if not d.find_elements(By.CSS_SELECTOR, "#maint-node-b.danger"):
        fail("node-b's button does not offer 'End maintenance'")
    d.save_screenshot(os.path.join(shots, "lab-3-maintenance.png"))
    print("PASS console maintenance on: node-b out of the pair, VIP on node-a, epoch %d -> %s, %.1f s after the "
          "press" % (epoch1, text("#cluster-epoch"), took))

    # 3. end maintenance: node-b rejoins as a backup; the VIP stays on node-a
    t0 = time.monotonic()
    click("#maint-node-b")
    wait("the page: node-b's supervisor answered 'maintenance off'",
         lambda: "maintenance off" in text("#maint-result"), 30)
    wait("node-b's supervisor out of maintenance, a backup",
         lambda: (lambda s: s["maintenance"] is False and s["role"] == "backup")(node_status("b")), 60)
    wait("the page: node-b backup again",
         lambda: card("node-b", "data-maint") == "off" and card("node-b", "data-role") == "backup", 30)
    if vip_on() != ["a"]:
        fail("ending maintenance on node-b moved the VIP: now on %s" % vip_on())
    d.save_screenshot(os.path.join(shots, "lab-4-rejoined.png"))
    print("PASS console maintenance off: node-b backup again after %.1f s, VIP still on node-a"
          % (time.monotonic() - t0))
    # the README's picture: the overview after all three, once settled
    time.sleep(2.5)  # the "requested" message has timed out
    d.save_screenshot(os.path.join(shots, "lab-5-overview.png"))
except SystemExit:
    raise
except Exception as e:  # noqa: BLE001 - any failure is the test's failure
    fail(repr(e))
d.quit()
