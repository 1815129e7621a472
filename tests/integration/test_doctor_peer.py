"""`tandemctl doctor`'s peer check on a new pair and on an installed one.

docs/two-servers.md starts node-a (doctor first) before node-b exists, so a
silent peer must not FAIL then: it is a warning while no other node has ever
run a supervisor against this backend (the backend's `sv` hash has no field
but this node's), and a FAIL once one has.

doctor runs in a network namespace of its own with only loopback, so the
peer's address (198.18.254.1) has no route and nothing leaves the host; the
stack's Redis and MariaDB are reached through their unix sockets.
"""
import json
import os
import subprocess
import unittest

from harness import BIN, Stack

PEER = "198.18.254.1"


class DoctorPeer(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("needs root: doctor runs in a network namespace of its own")
        cls.ns = f"tandem-tdp-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", cls.ns], check=True)
        subprocess.run(["ip", "netns", "exec", cls.ns, "ip", "link", "set", "lo", "up"], check=True)
        cls.st = Stack(name="dpeer", workers=1).up()
        with open(cls.st.conf) as f:
            conf = f.read()
        cls.conf = os.path.join(cls.st.dir, "tandem-peer.conf")
        with open(cls.conf, "w") as f:
            # the stack's node is "local"; this config is node-a of a pair
            f.write(conf.replace('node = { name = "local"; };', 'node = { name = "node-a"; };') +
                    f'\nfailover = {{ vip = "198.18.254.100/24"; peer = "{PEER}"; }};\n')

    @classmethod
    def tearDownClass(cls):
        cls.st.down()
        subprocess.run(["ip", "netns", "del", cls.ns])

    def peer_check(self):
        p = subprocess.run(["ip", "netns", "exec", self.ns, os.path.join(BIN, "tandemctl"),
                            "-c", self.conf, "--json", "doctor"],
                           capture_output=True, text=True, timeout=120)
        try:
            doc = json.loads(p.stdout)
        except ValueError:
            self.fail(f"doctor gave no JSON (rc {p.returncode}): {p.stdout}{p.stderr}")
        rows = [c for c in doc["checks"] if c["check"] == "peer"]
        self.assertTrue(rows, f"no peer check in: {p.stdout}")
        return rows[0]

    def test_1_new_pair_warns(self):
        sv = self.st.redis("KEYS", "*sv")
        self.assertFalse(sv, f"the stack has no supervisor, yet: {sv}")
        # this node's own entry does not make a peer
        self.st.redis("HSET", "tandem:sv", "node-a", '{"role":"master"}')
        row = self.peer_check()
        self.assertEqual(row["status"], "warn", row)
        self.assertIn(PEER, row["message"])
        self.assertIn("no other node", row["message"])

    def test_2_known_peer_fails(self):
        self.st.redis("HSET", "tandem:sv", "node-b", '{"role":"backup"}')
        row = self.peer_check()
        self.assertEqual(row["status"], "FAIL", row)


if __name__ == "__main__":
    unittest.main()
