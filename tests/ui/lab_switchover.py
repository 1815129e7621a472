"""Driven by tests/ui/test_console_lab.sh inside the lab's client namespace:
headless Chromium signs in to the console through the VIP, sees node-a
primary, presses "Switch over", confirms, and the same page (it keeps
polling through the VIP) then shows node-b primary at a newer epoch.
Arguments: URL USER PASSWORD SHOT_DIR. Exit 0 pass, 1 fail."""
import os
import shutil
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

url, user, pw, shots = sys.argv[1:5]
os.makedirs(shots, exist_ok=True)
o = webdriver.ChromeOptions()
o.binary_location = shutil.which("chromium")
for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,720"):
    o.add_argument(a)
d = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=o)


def role_of(node):
    for e in d.find_elements(By.CSS_SELECTOR, "#node-" + node):
        try:
            return e.get_attribute("data-role")
        except Exception:
            return None
    return None


def fail(msg):
    d.save_screenshot(os.path.join(shots, "lab-failed.png"))
    print("FAIL console switchover:", msg)
    d.quit()
    sys.exit(1)


try:
    d.get(url + "/")
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.ID, "username"))
    d.find_element(By.ID, "username").send_keys(user)
    d.find_element(By.ID, "password").send_keys(pw)
    d.find_element(By.ID, "signin").click()
    WebDriverWait(d, 60).until(lambda d: role_of("node-a") == "primary" and role_of("node-b") == "backup")
    epoch0 = int(d.find_element(By.ID, "cluster-epoch").text)
    served0 = d.find_element(By.ID, "served-by").text
    d.save_screenshot(os.path.join(shots, "lab-1-before.png"))
    # the peer must be seen ready (warm) before the supervisor accepts
    d.execute_script("window.confirm = function () { return true; };")
    t0 = time.monotonic()
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#switchover:not([disabled])"))
    d.find_element(By.ID, "switchover").click()
    WebDriverWait(d, 90, ignored_exceptions=(Exception,)).until(
        lambda d: role_of("node-b") == "primary" and int(d.find_element(By.ID, "cluster-epoch").text) > epoch0)
    took = time.monotonic() - t0
    WebDriverWait(d, 30, ignored_exceptions=(Exception,)).until(
        lambda d: d.find_element(By.ID, "served-by").text == "node-b")
    res = d.find_elements(By.ID, "switchover-result")
    d.save_screenshot(os.path.join(shots, "lab-2-after.png"))
    print("PASS console switchover: %s -> node-b primary, epoch %d -> %s, page saw it after %.1f s; %s" % (
        served0, epoch0, d.find_element(By.ID, "cluster-epoch").text, took, res[0].text if res else ""))
    if "requested by the console" not in d.find_element(By.ID, "failover-events").text:
        fail("the failover timeline does not name the console as the cause")
except SystemExit:
    raise
except Exception as e:  # noqa: BLE001 - any failure is the drill's failure
    fail(repr(e))
d.quit()
