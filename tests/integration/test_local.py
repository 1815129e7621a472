"""appliance/local: a stack comes up healthy in its own directory, two stacks
live side by side, `down` stops exactly what `up` started, and a failed
`up` names its step and leaves nothing behind."""

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import BIN, LOCAL, Stack  # noqa: E402


def gone(pid):
    """The process no longer exists (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def procs_mentioning(text):
    """pid -> cmdline of every live process whose command line contains text
    (worker children inherit the master's "-c DIR/tandem.conf")."""
    res = {}
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd and not gone(int(d)):
            res[int(d)] = cmd
    return res


def local(*args, env=None, timeout=180):
    e = dict(os.environ, TANDEM_BUILD=harness.BUILD)
    e.update(env or {})
    return subprocess.run([LOCAL, *args], capture_output=True, text=True, timeout=timeout, env=e)


class LocalStackTest(unittest.TestCase):
    def test_local_up_is_healthy_and_down_leaves_nothing_running(self):
        st = Stack(name="lo").up()
        try:
            pids = st.pids()
            for name in ("redis", "mariadb", "worker", "server"):
                self.assertIn(name, pids, f"no pid recorded for {name}: {pids}")
            if os.access(os.path.join(BIN, "tandem-beat"), os.X_OK):
                self.assertIn("beat", pids)
            for name, pid in pids.items():
                self.assertFalse(gone(pid), f"{name} (pid {pid}) is not running right after up")
            everything = procs_mentioning(st.dir)
            self.assertGreaterEqual(len(everything), len(pids), everything)
            self.assertNotIn("warning", st.up_output, "up fell back from /api/v1/health:\n" + st.up_output)
            status, body = st.http("GET", "/api/v1/health", key=None)
            self.assertEqual(status, 200, body)
            status, body = st.http("GET", "/api/v1/do/ping", key=None)
            self.assertEqual((status, body.get("data")), (200, "pong"))
            # the secrets are readable only by their owner
            for f in ("tandem.conf", "admin.key"):
                mode = stat.S_IMODE(os.stat(os.path.join(st.dir, f)).st_mode)
                self.assertEqual(mode, 0o600, f"{f} has mode {oct(mode)}")
            with open(os.path.join(st.dir, "admin.key")) as f:
                self.assertEqual(f.read().strip(), st.key)
            p = local("status", "--dir", st.dir)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("health: HTTP 200", p.stdout)
        finally:
            st.keep = True  # look at the dir after down
            st.down()
        try:
            for name, pid in pids.items():
                self.assertTrue(gone(pid), f"{name} (pid {pid}) still runs after down")
            self.assertEqual(os.listdir(os.path.join(st.dir, "pids")), [])
            # worker children and anything else the stack forked are gone too
            self.assertEqual(procs_mentioning(st.dir), {})
            p = local("down", "--dir", st.dir)
            self.assertEqual(p.returncode, 0, "second down must be harmless: " + p.stderr)
            p = local("status", "--dir", st.dir)
            self.assertEqual(p.returncode, 3, p.stdout)
        finally:
            shutil.rmtree(st.dir, ignore_errors=True)

    def test_local_up_again_after_down_keeps_data_and_key(self):
        st = Stack(name="lo").up()
        try:
            st.push_script("lotest__keep", "@DFF.API('k')\ndef f():\n    return 7\n")
            key = st.key
            st.keep = True
            st.down()
            st.keep = False
            st.up()
            self.assertEqual(st.key, key, "a re-up must keep the admin key its user has")
            status, body = st.http("POST", "/api/v1/func/lotest__keep.f", {"kwargs": {}})
            self.assertEqual(status, 200, body)
            self.assertEqual(body["data"]["result"], 7)
        finally:
            st.down()

    def test_local_two_stacks_in_two_dirs_at_once(self):
        with Stack(name="lo") as a, Stack(name="lo") as b:
            self.assertNotEqual(a.url, b.url)
            self.assertNotEqual(a.key, b.key)
            for st in (a, b):
                status, _ = st.http("GET", "/api/v1/do/ping", key=None)
                self.assertEqual(status, 200)
            # separate backends: a key written into one is not in the other
            a.redis("SET", "tandem:probe", "a")
            self.assertEqual(b.redis("EXISTS", "tandem:probe"), "0")
            # and each one's admin key is unknown to the other's server
            status, body = b.http("GET", "/api/v1/scripts/do/list", key=a.key)
            self.assertEqual(status, 401, body)
            status, body = a.http("GET", "/api/v1/scripts/do/list")
            self.assertEqual(status, 200, body)
            pa, pb = a.pids(), b.pids()
            self.assertFalse(set(pa.values()) & set(pb.values()))
            a.down()
            # b survives a's down untouched
            for name, pid in pb.items():
                self.assertFalse(gone(pid), f"b's {name} died when a went down")
            status, _ = b.http("GET", "/api/v1/do/ping", key=None)
            self.assertEqual(status, 200)
            for pid in pa.values():
                self.assertTrue(gone(pid))

    def test_local_written_config_passes_check_config(self):
        with Stack(name="lo") as st:
            for daemon in ("tandem-server", "tandem-worker", "tandem-beat"):
                exe = os.path.join(BIN, daemon)
                if not os.access(exe, os.X_OK):
                    continue
                p = subprocess.run([exe, "-c", st.conf, "--check-config"], capture_output=True, text=True,
                                   timeout=30)
                self.assertEqual(p.returncode, 0, f"{daemon} --check-config: {p.stdout}{p.stderr}")
                self.assertIn("ok", p.stdout + p.stderr)
            # and a broken copy is refused with the file and line
            bad = os.path.join(st.dir, "bad.conf")
            with open(st.conf) as f, open(bad, "w") as g:
                g.write(f.read() + "\nserver = { port = 99999; };\n")
            p = subprocess.run([os.path.join(BIN, "tandem-server"), "-c", bad, "--check-config"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("bad.conf", p.stdout + p.stderr)

    def test_local_up_refuses_a_dir_with_a_running_stack(self):
        with Stack(name="lo") as st:
            before = st.pids()
            p = local("up", "--dir", st.dir, "--http-port", str(harness.free_port()))
            self.assertEqual(p.returncode, 1)
            self.assertIn("already running", p.stderr)
            self.assertEqual(st.pids(), before)
            for pid in before.values():
                self.assertFalse(gone(pid))

    def test_local_up_refuses_a_busy_port(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen(1)
            port = s.getsockname()[1]
            d = tempfile.mkdtemp(prefix="tandem-lo-", dir="/tmp")
            try:
                p = local("up", "--dir", d, "--http-port", str(port))
                self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                self.assertIn(f"port {port}", p.stderr)
                self.assertFalse(os.path.isdir(os.path.join(d, "pids")) and os.listdir(os.path.join(d, "pids")))
            finally:
                local("down", "--dir", d)
                shutil.rmtree(d, ignore_errors=True)

    def test_local_failed_up_names_the_step_and_stops_what_it_started(self):
        # a build whose server dies at once: up must say so and clean up
        fake = tempfile.mkdtemp(prefix="tandem-lo-build-", dir="/tmp")
        d = tempfile.mkdtemp(prefix="tandem-lo-", dir="/tmp")
        try:
            os.mkdir(os.path.join(fake, "bin"))
            for b in ("tandemctl", "tandem-worker"):
                os.symlink(os.path.join(BIN, b), os.path.join(fake, "bin", b))
            srv = os.path.join(fake, "bin", "tandem-server")
            with open(srv, "w") as f:
                f.write("#!/bin/sh\necho 'server: cannot bind: simulated failure' >&2\nexit 7\n")
            os.chmod(srv, 0o755)
            p = local("up", "--dir", d, "--http-port", str(harness.free_port()), env={"TANDEM_BUILD": fake})
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("start server", p.stderr)
            self.assertIn("simulated failure", p.stderr)
            self.assertNotIn("URL=", p.stdout)
            self.assertEqual(os.listdir(os.path.join(d, "pids")), [], "up left pids behind")
            # the backends it had started are gone: nothing answers on their sockets
            r = subprocess.run(["redis-cli", "-s", os.path.join(d, "redis.sock"), "ping"], capture_output=True,
                               text=True, timeout=10)
            self.assertNotEqual(r.stdout.strip(), "PONG")
        finally:
            local("down", "--dir", d)
            shutil.rmtree(d, ignore_errors=True)
            shutil.rmtree(fake, ignore_errors=True)

    def test_local_usage_errors_exit_2(self):
        for args in ([], ["up"], ["up", "--dir"], ["up", "--dir", "/tmp/x", "--http-port", "0"],
                     ["up", "--dir", "/tmp/x", "--workers", "none"], ["frobnicate", "--dir", "/tmp/x"]):
            p = local(*args)
            self.assertEqual(p.returncode, 2, f"{args}: {p.stdout}{p.stderr}")
            self.assertTrue(p.stderr.strip(), f"{args}: no message")


if __name__ == "__main__":
    unittest.main(verbosity=2)
