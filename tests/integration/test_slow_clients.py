"""Slow and greedy clients, and the server-side defects of issue 10, against
a real stack: header and body deadlines in total time, the per-address
connection cap, the health listener a flood of the main port cannot block,
/health answered from a background check (a stopped MariaDB does not stall
the API), /health 503 when no worker child is alive, and an admin write
whose generation bump Redis refuses (503 EBackend, and the periodic reload
still applies it within 5 s).

Run: TANDEM_BUILD=build /usr/bin/python3 tests/integration/test_slow_clients.py
"""
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import types
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Stack, wait_for  # noqa: E402

ST = None
HEADER_TIMEOUT = 2
BODY_TIMEOUT = 3
PER_IP = 24
MAX_CONN = 128


class Server:
    """A second tandem-server on the stack's backend with the limits above."""

    def __init__(self):
        self.port = harness.free_port()
        self.hport = harness.free_port()
        with open(ST.conf) as f:
            conf = f.read()
        conf = re.sub(r"server = \{[^}]*\};",
                      f'server = {{ listen = "127.0.0.1"; port = {self.port}; health_port = {self.hport}; '
                      f"header_timeout = {HEADER_TIMEOUT}; body_timeout = {BODY_TIMEOUT}; "
                      f"connection_timeout = 30; max_connections = {MAX_CONN}; "
                      f"max_connections_per_ip = {PER_IP}; threads = 2; }};", conf)
        self.conf = os.path.join(ST.dir, "tandem-slow.conf")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.log = open(os.path.join(ST.dir, "log", "server-slow.log"), "ab")
        self.proc = subprocess.Popen([os.path.join(harness.BIN, "tandem-server"), "-c", self.conf],
                                     stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL)
        wait_for(lambda: self.get("/api/v1/do/ping")[0] == 200, 10, what="second server up")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()

    def get(self, path, port=None, key=None, timeout=10, method="GET", body=None):
        url = f"http://127.0.0.1:{port or self.port}"
        return Stack.http(types.SimpleNamespace(url=url, key=ST.key), method, path, body, key=key,
                          timeout=timeout)


SRV = None


def setUpModule():
    global ST, SRV
    # a test that finds a component missing fails (issue 10, point 7)
    if not harness.have_binaries("tandem-server", "tandem-worker", "tandemctl"):
        raise RuntimeError("tandem-server/worker/tandemctl not built")
    os.environ.setdefault("TANDEM_TEST_PORTS", "18500-18599")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096) if hard != resource.RLIM_INFINITY else 4096
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    ST = Stack(name="slow", workers=1).up()
    SRV = Server()


def tearDownModule():
    if SRV:
        SRV.stop()
    if ST:
        ST.down()


def closed_after(s, trickle, limit):
    """Send trickle bytes one at a time every 0.5 s until the server closes
    the connection; return the seconds it took, or None if still open after
    limit seconds."""
    t0 = time.monotonic()
    s.settimeout(0.5)
    i = 0
    while time.monotonic() - t0 < limit:
        try:
            s.sendall(trickle[i % len(trickle):i % len(trickle) + 1])
        except OSError:
            return time.monotonic() - t0
        i += 1
        try:
            data = s.recv(4096)
            if data == b"" or data.startswith(b"HTTP/1.1 4"):
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - t0
    return None


class TestDeadlines(unittest.TestCase):
    def test_headers_sent_a_byte_every_half_second_are_cut_at_header_timeout(self):
        s = socket.create_connection(("127.0.0.1", SRV.port))
        try:
            s.sendall(b"GET /api/v1/do/ping HTTP/1.1\r\nHost: x\r\n")
            took = closed_after(s, b"X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", HEADER_TIMEOUT + 6)
        finally:
            s.close()
        self.assertIsNotNone(took, f"a client trickling headers kept its connection past "
                                   f"header_timeout {HEADER_TIMEOUT} s (inactivity timeout only?)")
        self.assertGreaterEqual(took, HEADER_TIMEOUT - 0.6)
        self.assertLess(took, HEADER_TIMEOUT + 1.5)

    def test_body_sent_a_byte_every_half_second_is_cut_at_body_timeout(self):
        s = socket.create_connection(("127.0.0.1", SRV.port))
        try:
            s.sendall(b"POST /api/v1/func/x__y.z HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 1000\r\n\r\n")
            took = closed_after(s, b'{"kwargs":{"a":"' + b"b" * 900, BODY_TIMEOUT + 6)
        finally:
            s.close()
        self.assertIsNotNone(took, f"a client trickling its body kept its connection past "
                                   f"body_timeout {BODY_TIMEOUT} s")
        self.assertGreaterEqual(took, BODY_TIMEOUT - 0.6)
        self.assertLess(took, BODY_TIMEOUT + 1.5)

    def test_keepalive_client_is_served_again_after_a_deadline_span(self):
        # a well-behaved keep-alive client idle for less than the header
        # deadline keeps working; the deadline runs per request
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", SRV.port, timeout=10)
        try:
            for _ in range(3):
                c.request("GET", "/api/v1/do/ping")
                r = c.getresponse()
                r.read()
                self.assertEqual(r.status, 200)
                time.sleep(HEADER_TIMEOUT * 0.6)
        finally:
            c.close()

    def test_per_address_cap(self):
        socks = []
        try:
            for _ in range(PER_IP):
                s = socket.create_connection(("127.0.0.1", SRV.port), source_address=("127.0.0.9", 0))
                s.sendall(b"GET /api/v1/do/ping HTTP/1.1\r\n")  # and nothing more
                socks.append(s)
            extra = socket.create_connection(("127.0.0.1", SRV.port), source_address=("127.0.0.9", 0))
            socks.append(extra)
            extra.settimeout(3)
            try:
                extra.sendall(b"GET /api/v1/do/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                data = extra.recv(100)
            except OSError:
                data = b""
            self.assertEqual(data, b"", f"connection {PER_IP + 1} from one address was served: {data!r}")
            # another address is not affected
            s = socket.create_connection(("127.0.0.1", SRV.port), source_address=("127.0.0.10", 0))
            socks.append(s)
            s.settimeout(5)
            s.sendall(b"GET /api/v1/do/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            self.assertTrue(s.recv(100).startswith(b"HTTP/1.1 200"))
        finally:
            for s in socks:
                s.close()


class TestHealthListener(unittest.TestCase):
    def test_health_port_serves_only_health_and_ping(self):
        status, body = SRV.get("/api/v1/health", port=SRV.hport)
        self.assertIn(status, (200, 503), body)
        self.assertIn("redis", json.dumps(body))
        self.assertEqual(SRV.get("/api/v1/do/ping", port=SRV.hport)[0], 200)
        status, body = SRV.get("/api/v1/scripts/do/list", port=SRV.hport, key=ST.key)
        self.assertEqual(status, 404, body)
        self.assertIn("health port", body["message"])

    def test_health_answers_while_1024_slow_clients_hold_the_main_port(self):
        socks = []
        try:
            # 1,024 clients from 64 loopback addresses, 16 each (the
            # per-address cap does not stop a distributed flood), each
            # sending half a request line and then nothing
            for i in range(1024):
                s = socket.socket()
                s.bind((f"127.0.{1 + i // 256}.{1 + (i % 256) // 16}", 0))
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", SRV.port))
                except BlockingIOError:
                    pass
                socks.append(s)
            time.sleep(0.3)
            for s in socks:
                try:
                    s.send(b"GET /api/v1/do/ping HTTP/1.1\r\n")
                except OSError:
                    pass
            # the main port is full: a new client is not served
            try:
                st, _ = SRV.get("/api/v1/do/ping", timeout=1)
            except OSError:
                st = None
            self.assertIsNone(st, "the flood did not fill the main port: the test proves nothing")
            # the health listener answers at once, again and again
            for _ in range(5):
                t0 = time.monotonic()
                status, body = SRV.get("/api/v1/health", port=SRV.hport, timeout=2)
                self.assertEqual(status, 200, body)
                self.assertLess(time.monotonic() - t0, 1)
                time.sleep(0.2)
            # the header deadline frees the main port while the flooders
            # still hold their sockets open
            t0 = time.monotonic()

            def served():
                try:
                    return SRV.get("/api/v1/do/ping", timeout=1)[0] == 200
                except OSError:
                    return False
            wait_for(served, 30, 0.2, "main port serving again during the flood")
        finally:
            for s in socks:
                s.close()


class TestHealthState(unittest.TestCase):
    def test_no_live_worker_child_is_503(self):
        wait_for(lambda: SRV.get("/api/v1/health", port=SRV.hport)[0] == 200, 20, what="healthy")
        wpid = ST.pids()["worker"]
        fake = "tandem:hb:worker:fake-node:1"
        os.kill(wpid, signal.SIGSTOP)  # its heartbeat expires within 5 s
        try:
            ST.redis("SET", fake, json.dumps({"kind": "worker", "node": "fake-node", "pid": 1, "epoch": 0,
                                              "ts": int(time.time() * 1000), "busy": 0, "children": 0,
                                              "pids": []}), "PX", "60000")
            ST.redis("SADD", "tandem:hb:worker", fake)

            def sick():
                st, body = SRV.get("/api/v1/health", port=SRV.hport)
                return body if st == 503 else None
            body = wait_for(sick, 15, 0.2, "health 503 with a worker master but no child")
            self.assertEqual(body["reason"], "EBackend")
            self.assertIn("no live worker child", body["message"])
            self.assertEqual(body["detail"]["health"]["worker_children"], 0)
            self.assertEqual(body["detail"]["health"]["workers"], 1)
        finally:
            os.kill(wpid, signal.SIGCONT)
            ST.redis("DEL", fake)
            ST.redis("SREM", "tandem:hb:worker", fake)
        wait_for(lambda: SRV.get("/api/v1/health", port=SRV.hport)[0] == 200, 20, 0.2, "healthy again")


class TestGenBump(unittest.TestCase):
    def test_revoke_with_redis_refusing_the_bump_is_503_and_applies_within_5s(self):
        d = ST.api("POST", "/api/v1/access-keys/do/add", {"data": {"name": "gen-test"}})
        kid, secret = d["id"], d["secret"]
        wait_for(lambda: ST.http("GET", "/api/v1/scripts/do/list", key=secret)[0] == 200, 5, 0.1, "new key works")
        gen = ST.redis("GET", "tandem:gen") or "0"
        # INCR is refused ("not an integer") but every reader still parses
        # the same generation: nothing is announced
        ST.redis("SET", "tandem:gen", gen + "x")
        try:
            status, body = ST.http("GET", f"/api/v1/access-keys/{kid}/do/delete")
            self.assertEqual(status, 503, body)
            self.assertEqual(body["reason"], "EBackend")
            # says what was saved and that it applies without the announcement
            self.assertIn(f"access key {kid} was deleted", body["message"])
            self.assertIn("within 5 s", body["message"])
            t0 = time.monotonic()
            wait_for(lambda: ST.http("GET", "/api/v1/scripts/do/list", key=secret)[0] == 401, 7, 0.1,
                     "the revoked key refused without a gen change")
            self.assertLess(time.monotonic() - t0, 6.5)
        finally:
            ST.redis("SET", "tandem:gen", str(int(gen) + 1000))


class TestBeatReload(unittest.TestCase):
    def test_pause_saved_without_a_gen_change_stops_cron_within_5s(self):
        ST.push_script("sc__t", "@DFF.API('tick')\ndef tick():\n    return 1\n")
        jid = ST.add_cron_job("sc__t.tick", "* * * * * *", overlap="allow")

        def last():
            return ST.redis("HGET", f"tandem:cron:state:{jid}", "last_slot")
        try:
            wait_for(lambda: last(), 15, 0.2, "the job to fire")
            # what an admin write does when its gen INCR is refused: the SQL
            # is committed, nothing announced
            ST.sql("INSERT INTO setting (k, v, updated_at) VALUES ('cron.paused', '1', NOW(3)) "
                   "ON DUPLICATE KEY UPDATE v = VALUES(v), updated_at = NOW(3)")
            t0 = time.monotonic()

            def stopped():
                a = last()
                time.sleep(1.5)
                return a == last()
            wait_for(stopped, 10, 0, "cron to stop firing without a gen change")
            self.assertLess(time.monotonic() - t0, 8)
        finally:
            ST.api("PATCH", "/api/v1/cron-jobs/_settings", {"paused": False})
            ST.delete_cron_job(jid)


class TestZDatabaseStopped(unittest.TestCase):
    """Runs last: MariaDB is stopped (SIGSTOP) and comes back."""

    def test_health_does_not_stall_the_api_while_the_db_hangs(self):
        wait_for(lambda: ST.http("GET", "/api/v1/health", key=None)[0] == 200, 20, what="healthy")
        mpid = ST.pids()["mariadb"]
        os.kill(mpid, signal.SIGSTOP)
        try:
            times, statuses = [], []

            def probe(path):
                t0 = time.monotonic()
                try:
                    st, _ = ST.http("GET", path, key=None, timeout=20)
                except OSError:
                    st = None
                times.append(time.monotonic() - t0)
                statuses.append((path, st))
            # more concurrent health probes than the server has HTTP threads,
            # for 3 s, while ping must stay fast
            end = time.monotonic() + 3
            while time.monotonic() < end:
                ths = [threading.Thread(target=probe, args=(p,))
                       for p in ["/api/v1/health"] * 8 + ["/api/v1/do/ping"]]
                for t in ths:
                    t.start()
                for t in ths:
                    t.join()
            self.assertLess(max(times), 1.5, f"slowest answer {max(times):.1f} s: {statuses}")
            # and health notices the database is gone
            body = wait_for(lambda: (lambda r: r[1] if r[0] == 503 else None)(
                ST.http("GET", "/api/v1/health", key=None, timeout=5)), 15, 0.3, "health 503 db down")
            self.assertIn("db", body["message"])
        finally:
            os.kill(mpid, signal.SIGCONT)
        wait_for(lambda: ST.http("GET", "/api/v1/health", key=None)[0] == 200, 30, 0.5, "healthy again")


if __name__ == "__main__":
    unittest.main(verbosity=2)
