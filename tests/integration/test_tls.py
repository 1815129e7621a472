"""HTTPS in tandem-server (server_tls.c): a client that verifies against the
test CA calls through TLS 1.2+, a reload (SIGHUP) swaps the certificate
without dropping a connection or failing a call, mutual TLS refuses clients
without a certificate, the plain port redirects, and a wrong key is refused
at start. The stack is a real one (appliance/local); its server is restarted
by the test with TLS lines added to the server group of its tandem.conf."""
import http.client
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, Stack, free_port, have_binaries, wait_for  # noqa: E402


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d):
    """CA, two server certs for 127.0.0.1 + tandem.test, a client cert, an
    unrelated key. ECDSA P-256: fast to make."""
    def key(name):
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key", cwd=d)

    def cert(name, subj, days, ca=True, san=None, client=False):
        key(name)
        openssl("req", "-new", "-key", f"{name}.key", "-subj", f"/CN={subj}", "-out", f"{name}.csr", cwd=d)
        ext = os.path.join(d, f"{name}.ext")
        with open(ext, "w") as f:
            if san:
                f.write(f"subjectAltName={san}\n")
            f.write("extendedKeyUsage=" + ("clientAuth" if client else "serverAuth") + "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", str(days), "-extfile", ext, "-out", f"{name}.crt", cwd=d)

    key("ca")
    openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=Tandem test CA", "-days", "30",
            "-out", "ca.crt", cwd=d)
    cert("srv1", "tandem.test", 30, san="DNS:tandem.test,IP:127.0.0.1")
    cert("srv2", "tandem.test", 60, san="DNS:tandem.test,IP:127.0.0.1")
    cert("client", "ops", 30, client=True)
    key("other")


def fingerprint(der):
    import hashlib
    return hashlib.sha256(der).hexdigest()


class TLSTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker"):
            raise unittest.SkipTest("build first")
        cls.pki = tempfile.mkdtemp(prefix="tandem-pki-", dir="/tmp")
        make_pki(cls.pki)
        cls.st = Stack(name="tls").up()
        with open(cls.st.conf) as f:
            cls.base_conf = f.read()
        cls.server = None
        # stop the stack's plain server; the tests start their own
        os.kill(cls.st.pids()["server"], signal.SIGTERM)
        wait_for(lambda: not cls._port_open(cls.st.port), 15, 0.1, "plain server stopped")

    @classmethod
    def tearDownClass(cls):
        cls.stop_server()
        cls.st.down()

    @staticmethod
    def _port_open(port):
        import socket
        s = socket.socket()
        s.settimeout(0.5)
        try:
            return s.connect_ex(("127.0.0.1", port)) == 0
        finally:
            s.close()

    @classmethod
    def stop_server(cls):
        if cls.server and cls.server.poll() is None:
            cls.server.send_signal(signal.SIGTERM)
            try:
                cls.server.wait(15)
            except subprocess.TimeoutExpired:
                cls.server.kill()
                cls.server.wait()
        cls.server = None

    @classmethod
    def start_server(cls, extra, expect_up=True):
        cls.stop_server()
        conf = re.sub(r"server = \{", "server = { " + extra, cls.base_conf, count=1)
        path = os.path.join(cls.st.dir, "tandem-tls.conf")
        with open(path, "w") as f:
            f.write(conf)
        cls.log = open(os.path.join(cls.st.dir, "log", "server-tls.log"), "w+")
        cls.server = subprocess.Popen([os.path.join(BIN, "tandem-server"), "-c", path],
                                      stdout=cls.log, stderr=subprocess.STDOUT, start_new_session=True)
        if expect_up:
            wait_for(lambda: cls._port_open(cls.st.port), 20, 0.1, "TLS server listening")
        return cls.server

    def ctx(self, client=False):
        c = ssl.create_default_context(cafile=os.path.join(self.pki, "ca.crt"))
        if client:
            c.load_cert_chain(os.path.join(self.pki, "client.crt"), os.path.join(self.pki, "client.key"))
        return c

    def tls_conf(self, srv="srv1", extra=""):
        return (f'tls_cert = "{self.pki}/{srv}.crt"; tls_key = "{self.pki}/{srv}.key"; ' + extra)

    def get(self, conn, path):
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()

    def test_tls_verified_call_and_reload_without_dropping_a_connection(self):
        self.start_server(self.tls_conf("srv1"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        status, body = self.get(conn, "/api/v1/do/ping")
        self.assertEqual(status, 200, body)
        self.assertIn(conn.sock.version(), ("TLSv1.2", "TLSv1.3"))
        fp1 = fingerprint(conn.sock.getpeercert(binary_form=True))
        # the name check: tandem.test is in the certificate, other.test is not
        c2 = self.ctx()
        with self.assertRaises(ssl.SSLCertVerificationError):
            s = c2.wrap_socket(__import__("socket").create_connection(("127.0.0.1", self.st.port)),
                               server_hostname="other.test")
            s.close()

        # swap the certificate files and reload: the open connection keeps
        # working, a new one sees the new certificate
        os.replace(os.path.join(self.pki, "srv2.crt"), os.path.join(self.pki, "srv1.crt"))
        os.replace(os.path.join(self.pki, "srv2.key"), os.path.join(self.pki, "srv1.key"))
        self.server.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        status, _ = self.get(conn, "/api/v1/do/ping")
        self.assertEqual(status, 200, "the connection opened before the reload still works")
        conn.close()
        self.assertIsNone(self.server.poll(), "no restart")
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        status, _ = self.get(conn, "/api/v1/do/ping")
        self.assertEqual(status, 200)
        fp2 = fingerprint(conn.sock.getpeercert(binary_form=True))
        conn.close()
        self.assertNotEqual(fp1, fp2, "new handshakes get the reloaded certificate")

        # a broken reload keeps the old certificate in service
        with open(os.path.join(self.pki, "srv1.key"), "w") as f:
            f.write("not a key\n")
        self.server.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        status, _ = self.get(conn, "/api/v1/do/ping")
        conn.close()
        self.assertEqual(status, 200)
        self.log.seek(0)
        self.assertIn("previous certificate stays in service", self.log.read())
        make_pki(self.pki)  # fresh files for the other tests

    def test_tls_plain_http_is_refused_and_the_plain_port_redirects(self):
        plain = free_port()
        self.start_server(self.tls_conf("srv1", f"plain_port = {plain};"))
        c = http.client.HTTPConnection("127.0.0.1", self.st.port, timeout=5)
        with self.assertRaises(Exception):
            c.request("GET", "/api/v1/do/ping")
            r = c.getresponse()
            if r.status == 200:
                raise AssertionError("plain HTTP answered on the TLS port")
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", plain, timeout=5)
        c.request("GET", "/api/v1/do/ping?x=1", headers={"Host": f"tandem.test:{plain}"})
        r = c.getresponse()
        self.assertEqual(r.status, 308)
        self.assertEqual(r.getheader("Location"), f"https://tandem.test:{self.st.port}/api/v1/do/ping")
        c.close()

    def test_tls_mutual_requires_a_client_certificate(self):
        self.start_server(self.tls_conf("srv1", f'tls_client_ca = "{self.pki}/ca.crt";'))
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        status, body = self.get(conn, "/api/v1/do/ping")
        conn.close()
        self.assertEqual(status, 401, body)
        self.assertIn(b"client certificate", body)
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(client=True),
                                           timeout=10)
        status, body = self.get(conn, "/api/v1/do/ping")
        conn.close()
        self.assertEqual(status, 200, body)

    def test_tls_key_not_matching_the_certificate_is_refused_at_start(self):
        p = self.start_server(f'tls_cert = "{self.pki}/srv1.crt"; tls_key = "{self.pki}/other.key"; ',
                              expect_up=False)
        self.assertNotEqual(p.wait(20), 0)
        self.log.seek(0)
        self.assertIn("does not belong to the certificate", self.log.read())

    def test_tls_certificate_handed_over_a_pipe_and_reloaded_through_it(self):
        # what the supervisor does: it reads the root-only key and writes
        # "TLSPEM <n> <m>\n" + both PEMs to the server's fd 3
        def msg(name):
            c = open(os.path.join(self.pki, name + ".crt"), "rb").read()
            k = open(os.path.join(self.pki, name + ".key"), "rb").read()
            return b"TLSPEM %d %d\n" % (len(c), len(k)) + c + k
        self.stop_server()
        conf = re.sub(r"server = \{", 'server = { tls_cert = "/nonexistent/vip.crt"; '
                      'tls_key = "/nonexistent/vip.key"; ', self.base_conf, count=1)
        path = os.path.join(self.st.dir, "tandem-pipe.conf")
        with open(path, "w") as f:
            f.write(conf)
        r, w = os.pipe()
        os.write(w, msg("srv1"))
        log = open(os.path.join(self.st.dir, "log", "server-pipe.log"), "w+")

        # the supervisor puts it on fd 3; any inherited fd works the same
        proc = subprocess.Popen([os.path.join(BIN, "tandem-server"), "-c", path], stdout=log,
                                stderr=subprocess.STDOUT, pass_fds=(r,),
                                env=dict(os.environ, TANDEM_TLS_FD=str(r)), start_new_session=True)
        os.close(r)
        TLSTest.server = proc
        wait_for(lambda: self._port_open(self.st.port), 20, 0.1, "server on the piped certificate")

        def served():
            c = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
            status, _ = self.get(c, "/api/v1/do/ping")
            fp = fingerprint(c.sock.getpeercert(binary_form=True))
            c.close()
            self.assertEqual(status, 200)
            return fp
        fp1 = served()
        os.write(w, msg("srv2"))  # a reload: systemctl reload tandem
        wait_for(lambda: served() != fp1, 10, 0.2, "the reloaded certificate served")
        os.write(w, b"garbage\n")  # a broken message keeps the old one in service
        time.sleep(0.5)
        fp2 = served()
        self.assertNotEqual(fp1, fp2)
        os.close(w)
        self.assertIsNone(proc.poll())

    def doctor(self, conf_extra, vip="127.0.0.1/32"):
        conf = re.sub(r"server = \{", "server = { " + conf_extra, self.base_conf, count=1)
        conf = conf.replace('ctl = {', f'failover = {{ vip = "{vip}"; }};\nctl = {{', 1)
        path = os.path.join(self.st.dir, "tandem-doctor.conf")
        with open(path, "w") as f:
            f.write(conf)
        p = subprocess.run([os.path.join(BIN, "tandemctl"), "-c", path, "--json", "doctor"],
                           capture_output=True, text=True, timeout=120)
        doc = json.loads(p.stdout)
        return {c["check"]: c for c in doc["checks"] if c["check"].startswith("tls")}

    def test_tls_doctor_checks_pair_names_expiry_and_peer(self):
        checks = self.doctor(self.tls_conf("srv1"))
        self.assertEqual(checks["tls"]["status"], "ok", checks)
        self.assertEqual(checks["tls-name"]["status"], "ok", checks)  # covers 127.0.0.1, the VIP here
        # the peer (another node's doctor) published another fingerprint
        self.st.redis("HSET", "tandem:tls:fp", "node-other", "00" * 32 + " %d" % int(time.time()))
        checks = self.doctor(self.tls_conf("srv1"))
        self.assertEqual(checks["tls-peer"]["status"], "FAIL", checks)
        self.assertIn("node-other serves another certificate", checks["tls-peer"]["message"])
        # a record made before this node's certificate file changed (a renewal,
        # a lab re-made with a new CA) is not compared: the peer's doctor is asked for
        self.st.redis("HSET", "tandem:tls:fp", "node-other", "00" * 32 + " 1")
        checks = self.doctor(self.tls_conf("srv1"))
        self.assertEqual(checks["tls-peer"]["status"], "warn", checks)
        self.assertIn("predates this node's certificate file", checks["tls-peer"]["message"])
        self.st.redis("DEL", "tandem:tls:fp")
        # a key of another certificate, and an expired certificate
        checks = self.doctor(f'tls_cert = "{self.pki}/srv1.crt"; tls_key = "{self.pki}/other.key"; ')
        self.assertEqual(checks["tls"]["status"], "FAIL")
        self.assertIn("does not belong", checks["tls"]["message"])
        d = self.pki
        subprocess.run(["certtool", "--generate-privkey", "--key-type", "ecdsa", "--outfile", f"{d}/old.key"],
                       check=True, capture_output=True)
        with open(f"{d}/old.tmpl", "w") as f:
            f.write('cn = "old"\nactivation_date = "2020-01-01 00:00:00"\n'
                    'expiration_date = "2021-01-01 00:00:00"\nip_address = "127.0.0.1"\n')
        subprocess.run(["certtool", "--generate-self-signed", "--load-privkey", f"{d}/old.key",
                        "--template", f"{d}/old.tmpl", "--outfile", f"{d}/old.crt"], check=True, capture_output=True)
        checks = self.doctor(f'tls_cert = "{d}/old.crt"; tls_key = "{d}/old.key"; ')
        self.assertEqual(checks["tls"]["status"], "FAIL")
        self.assertIn("expired", checks["tls"]["message"])
        # a certificate that does not name the VIP
        checks = self.doctor(self.tls_conf("srv1"), vip="198.18.9.9/24")
        self.assertEqual(checks["tls-name"]["status"], "FAIL", checks)
        self.assertIn("does not cover 198.18.9.9", checks["tls-name"]["message"])

    def test_tls_tandemctl_verifies_the_certificate(self):
        self.start_server(self.tls_conf("srv1"))
        url = f"https://127.0.0.1:{self.st.port}"

        def ctl(*args):
            return subprocess.run([os.path.join(BIN, "tandemctl"), "--url", url, "--key", self.st.key]
                                  + list(args) + ["api", "list"], capture_output=True, text=True, timeout=60)
        p = ctl("--cacert", os.path.join(self.pki, "ca.crt"))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = ctl()  # the system's CAs do not know the test CA
        self.assertEqual(p.returncode, 3, p.stdout + p.stderr)
        self.assertIn("not trusted", p.stderr)
        p = ctl("--insecure")  # only when asked
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_tls_old_protocols_are_refused(self):
        self.start_server(self.tls_conf("srv1"))
        c = self.ctx()
        c.minimum_version = ssl.TLSVersion.TLSv1
        c.maximum_version = ssl.TLSVersion.TLSv1_1
        with self.assertRaises((ssl.SSLError, OSError)):
            s = c.wrap_socket(__import__("socket").create_connection(("127.0.0.1", self.st.port)),
                              server_hostname="tandem.test")
            s.close()

    def test_tls_stopping_server_answers_a_connection_still_in_its_handshake(self):
        """The drain of a stopping server (a planned handover's old primary)
        waits for connections it accepted whose request has not come in yet,
        not only for requests in flight: over TLS the handshake alone takes
        round trips, and stopping under it failed calls during switchovers."""
        import socket
        srv = self.start_server(self.tls_conf("srv1"))
        raw = socket.create_connection(("127.0.0.1", self.st.port), timeout=10)
        time.sleep(0.3)  # accepted by the server; no ClientHello yet
        srv.send_signal(signal.SIGTERM)
        # long past the listener's quiet time: it stopped accepting, and a
        # server that only counted requests would have stopped by now
        wait_for(lambda: not self._port_open(self.st.port), 5, 0.05, "listener closed")
        time.sleep(1.0)
        self.assertIsNone(srv.poll(), "the server waits for the connection in its handshake")
        tls = self.ctx().wrap_socket(raw, server_hostname="tandem.test")
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        conn.sock = tls
        status, body = self.get(conn, "/api/v1/do/ping")
        self.assertEqual(status, 200, body)
        conn.close()
        srv.wait(15)  # and then it stops
        self.assertEqual(srv.returncode, 0)
        self.server = None

    def test_tls_answers_while_draining_close_the_connection(self):
        """A kept-alive connection gets "Connection: close" on its answer once
        the server drains, so the client's next call connects again (to the
        node that holds the VIP by then) instead of racing the close."""
        srv = self.start_server(self.tls_conf("srv1"))
        conn = http.client.HTTPSConnection("127.0.0.1", self.st.port, context=self.ctx(), timeout=10)
        status, _ = self.get(conn, "/api/v1/do/ping")
        self.assertEqual(status, 200)
        # a second connection mid-handshake keeps the drain going
        import socket
        raw = socket.create_connection(("127.0.0.1", self.st.port), timeout=10)
        srv.send_signal(signal.SIGTERM)
        wait_for(lambda: not self._port_open(self.st.port), 5, 0.05, "listener closed")
        conn.request("GET", "/api/v1/do/ping")
        r = conn.getresponse()
        r.read()
        self.assertEqual(r.status, 200)
        self.assertEqual((r.getheader("Connection") or "").lower(), "close")
        conn.close()
        raw.close()
        srv.wait(15)
        self.server = None


if __name__ == "__main__":
    unittest.main()
