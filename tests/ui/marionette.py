"""A tiny client for Firefox's Marionette protocol, enough to drive the
console in headless Firefox without geckodriver (Debian 12 ships
firefox-esr but no geckodriver). Standard library only.

The protocol: a TCP connection to the port Firefox listens on with
--marionette; every message is "<length>:<JSON>". Firefox first sends
{"applicationType": "gecko", "marionetteProtocol": 3}; then each command
is [0, id, "WebDriver:<Name>", params] and its answer [1, id, error,
result]. The commands are WebDriver's, under the names Marionette gives
them (WebDriver:Navigate, WebDriver:FindElement, ...)."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # WebDriver's element reference key


class MarionetteError(Exception):
    pass


def firefox_binary():
    return shutil.which("firefox-esr") or shutil.which("firefox")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Firefox:
    """Headless Firefox in a throwaway profile, driven over Marionette."""

    def __init__(self, width=1280, height=720, timeout=60):
        self.profile = tempfile.mkdtemp(prefix="tandem-ff-")
        self.port = _free_port()
        prefs = {
            "marionette.port": self.port,
            # no first-run pages, updates or telemetry in a test profile
            "browser.shell.checkDefaultBrowser": False,
            "browser.startup.homepage_override.mstone": "ignore",
            "browser.startup.page": 0,
            "datareporting.policy.dataSubmissionEnabled": False,
            "toolkit.telemetry.reportingpolicy.firstRun": False,
            "app.update.disabledForTesting": True,
            "browser.aboutwelcome.enabled": False,
        }
        with open(os.path.join(self.profile, "user.js"), "w") as f:
            for k, v in prefs.items():
                f.write("user_pref(%s, %s);\n" % (json.dumps(k), json.dumps(v)))
        env = dict(os.environ, MOZ_HEADLESS="1", MOZ_HEADLESS_WIDTH=str(width), MOZ_HEADLESS_HEIGHT=str(height))
        self.log = open(os.path.join(self.profile, "firefox.log"), "w")
        self.proc = subprocess.Popen(
            [firefox_binary(), "--headless", "--marionette", "--no-remote", "--profile", self.profile],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.sock = None
        self.msgid = 0
        self.buf = b""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                break
            except OSError:
                if self.proc.poll() is not None:
                    raise MarionetteError("firefox exited with %s before listening: see %s/firefox.log"
                                          % (self.proc.returncode, self.profile))
                if time.monotonic() > deadline:
                    self.quit()
                    raise MarionetteError("firefox did not listen on %d within %d s" % (self.port, timeout))
                time.sleep(0.2)
        self.sock.settimeout(timeout)
        hello = self._read()
        if hello.get("marionetteProtocol") != 3:
            raise MarionetteError("unexpected greeting %r" % hello)
        self.cmd("WebDriver:NewSession", {})
        try:
            self.cmd("WebDriver:SetWindowRect", {"width": width, "height": height})
        except MarionetteError:
            pass  # headless: MOZ_HEADLESS_WIDTH/HEIGHT already set the size

    # -- the wire -----------------------------------------------------------
    def _read(self):
        while b":" not in self.buf:
            self._fill()
        n, rest = self.buf.split(b":", 1)
        n = int(n)
        while len(rest) < n:
            self.buf = rest
            self._fill()
            rest = self.buf
        self.buf = rest[n:]
        return json.loads(rest[:n])

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise MarionetteError("firefox closed the Marionette connection")
        self.buf += chunk

    def cmd(self, name, params=None):
        self.msgid += 1
        data = json.dumps([0, self.msgid, name, params or {}]).encode()
        self.sock.sendall(str(len(data)).encode() + b":" + data)
        while True:
            msg = self._read()
            if msg[0] == 1 and msg[1] == self.msgid:
                break
        if msg[2]:
            err = msg[2]
            raise MarionetteError("%s: %s: %s" % (name, err.get("error"), err.get("message")))
        r = msg[3]
        return r.get("value") if isinstance(r, dict) and "value" in r else r

    # -- what a test needs ----------------------------------------------------
    def get(self, url):
        self.cmd("WebDriver:Navigate", {"url": url})

    def find(self, css, timeout=20):
        """The first element matching css, waiting for it to appear."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.cmd("WebDriver:FindElement", {"using": "css selector", "value": css})[ELEMENT]
            except MarionetteError as e:
                if "no such element" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def type(self, css, text):
        e = self.find(css)
        self.cmd("WebDriver:ElementClear", {"id": e})
        self.cmd("WebDriver:ElementSendKeys", {"id": e, "text": text})

    def click(self, css):
        self.cmd("WebDriver:ElementClick", {"id": self.find(css)})

    def text(self, css):
        return self.cmd("WebDriver:GetElementText", {"id": self.find(css)})

    def wait_text(self, css, want, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            try:
                got = self.text(css)
                if want in got:
                    return got
            except MarionetteError as e:
                if "stale element" not in str(e) and "no such element" not in str(e):
                    raise
                got = str(e)
            if time.monotonic() > deadline:
                raise MarionetteError("%r never showed %r (last: %r)" % (css, want, got))
            time.sleep(0.1)

    def js(self, script, *args):
        return self.cmd("WebDriver:ExecuteScript", {"script": script, "args": list(args)})

    def screenshot(self, path):
        png = self.cmd("WebDriver:TakeScreenshot", {"full": False, "hash": False})
        with open(path, "wb") as f:
            f.write(base64.b64decode(png))

    def quit(self):
        try:
            if self.sock:
                try:
                    self.cmd("Marionette:Quit", {"flags": ["eForceQuit"]})
                except (MarionetteError, OSError):
                    pass
                self.sock.close()
        finally:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.log.close()
            shutil.rmtree(self.profile, ignore_errors=True)
