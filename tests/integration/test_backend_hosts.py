"""mysql.hosts: Tandem writes only to a MariaDB server that is not read_only,
trying the hosts in the operator's order, and follows a switch of the
primary (read_only flipped) on its next connect. Two real mariadbd on
loopback TCP ports; `tandemctl db migrate` is the client (it connects with
db_connect like every daemon)."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, SRC, free_port, have_binaries  # noqa: E402

PW = "hosts-test-pw"


class MariaDB:
    def __init__(self, root, name):
        self.dir = os.path.join(root, name)
        os.makedirs(os.path.join(self.dir, "tmp"))
        self.port = free_port()
        self.sock = os.path.join(self.dir, "m.sock")
        self.proc = None

    def up(self):
        asuser = ["--user=root"] if os.getuid() == 0 else []
        subprocess.run(["mariadb-install-db", "--no-defaults", f"--datadir={self.dir}/data",
                        f"--tmpdir={self.dir}/tmp", "--skip-test-db",
                        "--auth-root-authentication-method=socket"] + asuser,
                       check=True, capture_output=True, timeout=120)
        self.proc = subprocess.Popen(
            ["mariadbd", "--no-defaults", f"--datadir={self.dir}/data", f"--socket={self.sock}",
             "--bind-address=127.0.0.1", f"--port={self.port}", f"--tmpdir={self.dir}/tmp",
             "--innodb-buffer-pool-size=16M", "--performance-schema=OFF", "--skip-log-bin",
             f"--log-error={self.dir}/err.log", f"--pid-file={self.dir}/m.pid"] + asuser,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(600):
            if self.sql("SELECT 1", check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.sql("CREATE DATABASE tandem CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
                 f"CREATE USER 'tandem'@'127.0.0.1' IDENTIFIED BY '{PW}'; "
                 "GRANT ALL PRIVILEGES ON tandem.* TO 'tandem'@'127.0.0.1';")
        return self

    def sql(self, q, check=True):
        user = "root" if os.getuid() == 0 else os.environ.get("USER", "root")
        p = subprocess.run(["mariadb", "--no-defaults", "-S", self.sock, "-u", user, "-N", "-B", "-e", q],
                           capture_output=True, text=True, timeout=60)
        if check and p.returncode != 0:
            raise AssertionError(f"SQL on {self.dir}: {q}: {p.stderr}")
        return p

    def read_only(self, on):
        self.sql(f"SET GLOBAL read_only = {1 if on else 0}")

    def migrated(self):
        p = self.sql("SELECT COUNT(*) FROM tandem.schema_migrations", check=False)
        return p.returncode == 0 and int(p.stdout.strip() or 0) > 0

    def down(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class MysqlHostsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandemctl"):
            raise unittest.SkipTest("build first")
        cls.root = tempfile.mkdtemp(prefix="tandem-hosts-", dir="/tmp")
        cls.a = MariaDB(cls.root, "a").up()
        cls.b = MariaDB(cls.root, "b").up()
        cls.dead = free_port()

    @classmethod
    def tearDownClass(cls):
        cls.a.down()
        cls.b.down()
        shutil.rmtree(cls.root, ignore_errors=True)

    def conf(self, hosts):
        path = os.path.join(self.root, "tandem.conf")
        lst = ", ".join(f'"127.0.0.1:{p}"' for p in hosts)
        with open(path, "w") as f:
            f.write(f'mysql = {{ hosts = [ {lst} ]; user = "tandem"; password = "{PW}"; '
                    f'database = "tandem"; }};\n'
                    f'paths = {{ migrations = "{SRC}/migrations"; }};\n')
        return path

    def migrate(self, hosts):
        return subprocess.run([os.path.join(BIN, "tandemctl"), "-c", self.conf(hosts), "db", "migrate"],
                              capture_output=True, text=True, timeout=180)

    def test_mysql_hosts_write_only_to_the_server_that_is_not_read_only(self):
        self.a.read_only(True)
        self.b.read_only(False)
        p = self.migrate([self.dead, self.a.port, self.b.port])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(self.b.migrated(), "migrations went to b, the writable one")
        self.assertFalse(self.a.migrated(), "nothing written to the read_only a")

        # the operator switches the primary: a writable, b read_only
        self.b.read_only(True)
        self.a.read_only(False)
        p = self.migrate([self.dead, self.a.port, self.b.port])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertTrue(self.a.migrated(), "after the switch, a is written")

    def test_mysql_hosts_all_read_only_is_a_clear_error(self):
        self.a.read_only(True)
        self.b.read_only(True)
        try:
            p = self.migrate([self.dead, self.a.port, self.b.port])
        finally:
            self.a.read_only(False)
        self.assertNotEqual(p.returncode, 0)
        out = p.stdout + p.stderr
        self.assertIn("no writable server among mysql.hosts", out)
        self.assertIn("read_only", out)
        self.assertIn(f"127.0.0.1:{self.dead}", out)  # the dead one is named, with why


if __name__ == "__main__":
    unittest.main()
