"""Defect 12 (issue 10): a missing failover.user must not run the stack, user
Python included, as root. The supervisor refuses to start (before it starts
keepalived or anything else) and says what to do, unless the config says
failover.allow_root = true. Needs root, as the supervisor does; without it
the test fails (a skip would read as a pass)."""
import os
import subprocess
import tempfile
import unittest

from harness import BIN

USER = "tandem-no-such-user"


class SupervisorUser(unittest.TestCase):
    def run_supervisor(self, extra=""):
        self.assertEqual(os.geteuid(), 0, "tandem-supervisor needs root: run this test as root")
        with tempfile.TemporaryDirectory(prefix="tandem-svuser-") as d:
            conf = os.path.join(d, "tandem.conf")
            with open(conf, "w") as f:
                f.write(f'''node = {{ name = "t"; }};
paths = {{ run = "{d}/run"; }};
failover = {{ vip = "198.18.0.100/24"; interface = "lo"; user = "{USER}";
  control_socket = "{d}/run/sv.sock"; {extra} }};
''')
            p = subprocess.run([os.path.join(BIN, "tandem-supervisor"), "-c", conf],
                               capture_output=True, text=True, timeout=30)
            made = sorted(os.listdir(os.path.join(d, "run"))) if os.path.isdir(os.path.join(d, "run")) else []
            return p, made

    def test_missing_user_refuses_to_start(self):
        p, made = self.run_supervisor()
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn(f'failover.user "{USER}" does not exist', p.stderr)
        self.assertIn("refusing to run the stack", p.stderr)
        self.assertIn("failover.allow_root = true", p.stderr)
        # nothing was started: no keepalived config, fifo or socket
        self.assertNotIn("keepalived.conf", made)
        self.assertNotIn("vrrp.fifo", made)


if __name__ == "__main__":
    unittest.main(verbosity=2)
