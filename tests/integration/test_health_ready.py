"""/api/v1/health is not ready before the server has loaded its funcs, APIs
and keys from MariaDB (issue 10): during a switchover the supervisor moved
the VIP to a server whose health was green while its caches were still
empty, and calls to its APIs got 503.

A second tandem-server is started beside the stack's (same Redis, MariaDB
and workers, its own port) while the `func` table is renamed away, so its
first load fails with every backend up: its health must say 503 and why,
until the table is back and the load succeeds.
"""
import os
import re
import signal
import subprocess
import time
import unittest
import urllib.error
import urllib.request
import json

from harness import BIN, Stack, free_port, wait_for


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")
    except OSError as e:
        return 0, str(e)


class HealthReady(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = Stack(name="hready", workers=1).up()

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def start_second_server(self):
        port = free_port()
        with open(self.st.conf) as f:
            conf = f.read()
        conf, n = re.subn(r"(server\s*=\s*\{[^}]*?)\bport\s*=\s*\d+\s*;",
                          r"\g<1>port = %d; health_port = -1;" % port, conf, count=1)
        self.assertEqual(n, 1, "no server.port in the stack's tandem.conf")
        path = os.path.join(self.st.dir, "second.conf")
        with open(path, "w") as f:
            f.write(conf)
        os.chmod(path, 0o600)
        log = open(os.path.join(self.st.dir, "log", "second-server.log"), "ab")
        p = subprocess.Popen([os.path.join(BIN, "tandem-server"), "-c", path],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.addCleanup(lambda: (p.poll() is None and p.send_signal(signal.SIGTERM), p.wait(20), log.close()))
        wait_for(lambda: get(port, "/api/v1/do/ping")[0] == 200, 30, 0.1, "the second server to answer")
        return port

    def test_not_ready_until_the_caches_are_loaded(self):
        st = self.st
        st.sql("RENAME TABLE func TO func_hidden_by_test")
        renamed = True
        try:
            port = self.start_second_server()
            # every backend is up and a worker is live: only the load is missing
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                status, r = get(port, "/api/v1/health")
                self.assertEqual(status, 503, f"health answered {status} before the caches were loaded: {r}")
                self.assertIn("not loaded", r.get("message", ""), r)
                time.sleep(0.2)
            st.sql("RENAME TABLE func_hidden_by_test TO func")
            renamed = False
            status, r = wait_for(lambda: (lambda x: x if x[0] == 200 else None)(get(port, "/api/v1/health")),
                                 20, 0.2, "health to turn ready once the load succeeds")
            self.assertTrue(r["data"]["cache"], r)
        finally:
            if renamed:
                st.sql("RENAME TABLE func_hidden_by_test TO func")
        # the stack's own server was never affected
        self.assertEqual(st.http("GET", "/api/v1/health")[0], 200)


if __name__ == "__main__":
    unittest.main(verbosity=2)
