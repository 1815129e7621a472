"""Connectors (issue 8 point 5): managed over HTTP in DFF's shapes and with
tandemctl, secrets sealed at rest, a test action that says what failed,
and DFF.CONN(id) helpers with DFF's method names -- each against a real
server this test starts on loopback in a temp dir (mariadbd, redis-server,
PostgreSQL, memcached, mosquitto) and stops by pid."""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, free_port, have_binaries, wait_for  # noqa: E402

PG_BIN = "/usr/lib/postgresql/15/bin"
ROOT = os.getuid() == 0


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class Servers(object):
    """The five backends, each on a loopback port, data in one temp dir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tandem-connsrv-")
        os.chmod(self.dir, 0o755)
        self.procs = []
        self.port = {}

    def spawn(self, name, argv, user=None, **kw):
        log = open(os.path.join(self.dir, name + ".log"), "w")
        pre = []
        if user and ROOT:
            pre = ["setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups"]
        with log:
            p = subprocess.Popen(pre + argv, stdout=log, stderr=subprocess.STDOUT,
                                 start_new_session=True, **kw)
        self.procs.append(p)
        return p

    def wait_port(self, name):
        wait_for(lambda: port_open(self.port[name]), 60, what=name + " to listen")

    def start(self):
        d = self.dir
        # redis, with a password
        self.port["redis"] = free_port()
        self.spawn("redis", ["redis-server", "--port", str(self.port["redis"]), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d,
                             "--requirepass", "rpw"])
        # memcached
        self.port["memcached"] = free_port()
        self.spawn("memcached", ["memcached", "-l", "127.0.0.1", "-p", str(self.port["memcached"]),
                                 "-U", "0"] + (["-u", "root"] if ROOT else []))
        # mosquitto, with a password file
        self.port["mqtt"] = free_port()
        pwf = os.path.join(d, "mosquitto.pw")
        open(pwf, "w").close()
        subprocess.run(["mosquitto_passwd", "-b", pwf, "mu", "mpw"], check=True,
                       capture_output=True)
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write("listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s\n"
                    "persistence false\n%s" % (self.port["mqtt"], pwf,
                                               "user root\n" if ROOT else ""))
        os.chmod(pwf, 0o600)
        self.spawn("mosquitto", ["mosquitto", "-c", conf])
        # PostgreSQL 15 (never as root)
        self.port["postgresql"] = free_port()
        pgd = os.path.join(d, "pg")
        os.mkdir(pgd)
        with open(os.path.join(d, "pg.pw"), "w") as f:
            f.write("ppw\n")
        user = "postgres" if ROOT else None
        if ROOT:
            pw = pwd.getpwnam("postgres")
            os.chown(pgd, pw.pw_uid, pw.pw_gid)
            os.chown(os.path.join(d, "pg.pw"), pw.pw_uid, pw.pw_gid)
        pre = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if ROOT else []
        subprocess.run(pre + [os.path.join(PG_BIN, "initdb"), "-D", pgd, "-U", "pu",
                              "--pwfile=" + os.path.join(d, "pg.pw"), "--auth-host=scram-sha-256",
                              "--auth-local=trust"], check=True, capture_output=True)
        self.spawn("postgresql", [os.path.join(PG_BIN, "postgres"), "-D", pgd, "-p",
                                  str(self.port["postgresql"]), "-k", pgd, "-c",
                                  "listen_addresses=127.0.0.1"], user=user)
        # MariaDB on TCP, a user with a password
        self.port["mysql"] = free_port()
        myd = os.path.join(d, "my")
        sock = os.path.join(d, "my.sock")
        asuser = ["--user=root"] if ROOT else []
        subprocess.run(["mariadb-install-db", "--no-defaults", "--datadir=" + myd,
                        "--skip-test-db", "--auth-root-authentication-method=socket"] + asuser,
                       check=True, capture_output=True)
        self.spawn("mysql", ["mariadbd", "--no-defaults", "--datadir=" + myd, "--socket=" + sock,
                             "--port=" + str(self.port["mysql"]), "--bind-address=127.0.0.1",
                             "--pid-file=" + os.path.join(d, "my.pid"),
                             "--skip-log-bin"] + asuser)
        for name in ("redis", "memcached", "mqtt", "postgresql", "mysql"):
            self.wait_port(name)
        subprocess.run(["mariadb", "--no-defaults", "-S", sock, "-u", "root", "-e",
                        "CREATE DATABASE cdb; CREATE USER 'cu'@'127.0.0.1' IDENTIFIED BY 'cpw';"
                        "GRANT ALL ON cdb.* TO 'cu'@'127.0.0.1';"], check=True)
        return self

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


SCRIPT = '''
@DFF.API('mysql')
def my():
    db = DFF.CONN('c_mysql')
    db.non_query('CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, name VARCHAR(20))')
    n = db.non_query('REPLACE INTO t VALUES (?, ?), (?, ?)', [1, "a'b", 2, 'c'])
    return {'n': n, 'rows': db.query('SELECT id, name FROM t WHERE id IN (?) ORDER BY id', [[1, 2]])}

@DFF.API('postgresql')
def pg():
    db = DFF.CONN('c_pg')
    db.non_query('CREATE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, name TEXT)')
    db.non_query('DELETE FROM t')
    n = db.non_query('INSERT INTO t VALUES (?, ?), (?, ?)', [1, "50%", 2, 'x'])
    return {'n': n, 'rows': db.query('SELECT id, name FROM t WHERE id > ? ORDER BY id', [0])}

@DFF.API('redis')
def rd():
    r = DFF.CONN('c_redis')
    r.set('k', 1)
    r.hmset('h', {'a': 1, 'b': 'x'})
    return {'get': r.get('k'), 'incr': r.incr('k'), 'hgetall': r.hgetall('h'),
            'keys': sorted(r.keys('*')), 'run': r.run('get', 'k')}

@DFF.API('memcached')
def mc():
    m = DFF.SRC('c_mc')
    m.set('k', 'v1')
    return {'get': m.get('k'), 'add': m.add('k', 'v2'), 'after': m.get('k')}

@DFF.API('mqtt')
def mq(topic, message):
    DFF.CONN('c_mqtt').publish(topic, message, qos=1)
    return 'sent'

@DFF.API('any')
def use(cid):
    return DFF.CONN(cid).query('SELECT 1 AS one')
'''


class ConnectorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker"):
            raise unittest.SkipTest("binaries not built")
        for b in ("redis-server", "memcached", "mosquitto", "mariadbd", "setpriv"):
            if not shutil.which(b) and not os.path.exists("/usr/sbin/" + b):
                raise unittest.SkipTest(b + " not installed")
        if not os.path.exists(os.path.join(PG_BIN, "postgres")):
            raise unittest.SkipTest("postgresql 15 not installed")
        cls.sv = Servers()
        try:
            cls.sv.start()
            cls.st = Stack(workers=2, name="conn").up()
        except BaseException:
            cls.sv.stop()
            raise
        p = cls.sv.port
        cls.configs = {
            "c_mysql": ("mysql", {"host": "127.0.0.1", "port": p["mysql"], "user": "cu",
                                  "password": "cpw", "database": "cdb"}),
            "c_pg": ("postgresql", {"host": "127.0.0.1", "port": p["postgresql"], "user": "pu",
                                    "password": "ppw", "database": "postgres"}),
            "c_redis": ("redis", {"host": "127.0.0.1", "port": p["redis"], "password": "rpw",
                                  "db": 2}),
            "c_mc": ("memcached", {"servers": "127.0.0.1:%d" % p["memcached"]}),
            "c_mqtt": ("mqtt", {"host": "127.0.0.1", "port": p["mqtt"], "user": "mu",
                                "password": "mpw"}),
        }
        for cid, (ctype, cfg) in cls.configs.items():
            cls.st.api("POST", "/api/v1/connectors/do/add",
                       {"data": {"id": cid, "type": ctype, "title": cid, "configJSON": cfg}},
                       timeout=60)
        cls.st.push_script("conn__use", SCRIPT)

    @classmethod
    def tearDownClass(cls):
        try:
            cls.st.down()
        finally:
            cls.sv.stop()

    def call(self, func, kwargs=None):
        status, r = self.st.http("POST", "/api/v1/func/conn__use." + func, {"kwargs": kwargs or {}},
                                 timeout=60)
        return status, r

    def result(self, func, kwargs=None):
        status, r = self.call(func, kwargs)
        self.assertEqual(status, 200, r)
        return r["data"]["result"]

    def test_mysql_helper(self):
        self.assertEqual(self.result("my"), {"n": 2, "rows": [{"id": 1, "name": "a'b"},
                                                              {"id": 2, "name": "c"}]})

    def test_postgresql_helper(self):
        self.assertEqual(self.result("pg"), {"n": 2, "rows": [{"id": 1, "name": "50%"},
                                                              {"id": 2, "name": "x"}]})

    def test_redis_helper_uses_its_db_and_gives_strings(self):
        v = self.result("rd")
        self.assertEqual(v, {"get": "1", "incr": 2, "hgetall": {"a": "1", "b": "x"},
                             "keys": ["h", "k"], "run": "2"})
        out = subprocess.run(["redis-cli", "-p", str(self.sv.port["redis"]), "-a", "rpw",
                              "--no-auth-warning", "-n", "2", "GET", "k"],
                             capture_output=True, text=True)
        self.assertEqual(out.stdout.strip(), "2")

    def test_memcached_helper(self):
        self.assertEqual(self.result("mc"), {"get": "v1", "add": False, "after": "v1"})

    def test_mqtt_helper_publishes_to_the_broker(self):
        import queue
        import paho.mqtt.client as mqtt
        got = queue.Queue()
        try:
            sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION1)
        except AttributeError:  # paho 1.x
            sub = mqtt.Client()
        sub.username_pw_set("mu", "mpw")
        sub.on_connect = lambda c, u, f, rc: c.subscribe("tandem/test", qos=1)
        sub.on_message = lambda c, u, m: got.put(m.payload.decode())
        sub.connect("127.0.0.1", self.sv.port["mqtt"])
        sub.loop_start()
        try:
            time.sleep(0.5)
            self.assertEqual(self.result("mq", {"topic": "tandem/test", "message": "m1"}), "sent")
            self.assertEqual(got.get(timeout=20), "m1")
        finally:
            sub.loop_stop()
            sub.disconnect()

    def test_secrets_are_sealed_at_rest_and_never_answered(self):
        rows = self.st.sql("SELECT id, config_json FROM connector")
        for cid, cj in rows:
            cfg = json.loads(cj)
            if "password" in cfg:
                self.assertTrue(cfg["password"].startswith("sealed:v1:"), (cid, cfg))
        listed = self.st.api("GET", "/api/v1/connectors/do/list")
        self.assertEqual({c["id"] for c in listed} >= set(self.configs), True)
        for c in listed:
            self.assertNotIn("password", c["configJSON"])
            self.assertEqual(set(c) >= {"id", "title", "type", "configJSON", "description"}, True)

    def test_test_action_connects_and_says_what_failed(self):
        d = self.st.api("GET", "/api/v1/connectors/c_pg/do/test", timeout=60)
        self.assertEqual(d["ok"], True)
        cases = {
            "mysql": {"host": "127.0.0.1", "port": self.sv.port["mysql"], "user": "cu",
                      "password": "wrong", "database": "cdb"},
            "redis": {"host": "127.0.0.1", "port": self.sv.port["redis"], "password": "wrong"},
            "postgresql": {"host": "127.0.0.1", "port": self.sv.port["postgresql"], "user": "pu",
                           "password": "wrong", "database": "postgres"},
            "mqtt": {"host": "127.0.0.1", "port": self.sv.port["mqtt"], "user": "mu",
                     "password": "wrong"},
            "memcached": {"servers": "127.0.0.1:%d" % free_port()},
        }
        for ctype, cfg in cases.items():
            status, r = self.st.http("POST", "/api/v1/connectors/do/add",
                                     {"data": {"id": "bad_" + ctype, "type": ctype,
                                               "configJSON": cfg}}, timeout=60)
            self.assertEqual(status, 400, (ctype, r))
            self.assertIn("failed its test", r["message"], ctype)
            self.assertTrue(len(r["detail"]["test"]) > 10, r)
        # saved anyway with skipTest: the test action and a function answer what failed
        self.st.api("POST", "/api/v1/connectors/do/add",
                    {"data": {"id": "bad_mysql", "type": "mysql", "configJSON": cases["mysql"]},
                     "skipTest": True})
        status, r = self.st.http("GET", "/api/v1/connectors/bad_mysql/do/test", timeout=60)
        self.assertEqual(status, 400, r)
        self.assertIn("Access denied", r["message"])
        status, r = self.call("use", {"cid": "bad_mysql"})
        self.assertEqual(status, 599, r)
        self.assertIn("connector `bad_mysql` (mysql)", r["message"])
        self.assertIn("Access denied", r["message"])
        self.assertNotIn("wrong", r["message"] + json.dumps(r.get("detail")))
        self.assertEqual(self.result("mc")["get"], "v1")  # the worker keeps serving

    def test_other_dff_types_are_refused_by_name(self):
        status, r = self.st.http("POST", "/api/v1/connectors/do/add",
                                 {"data": {"id": "k1", "type": "kafka", "configJSON": {}}})
        self.assertEqual(status, 400, r)
        self.assertIn("connector type `kafka` is not supported by Tandem", r["message"])
        self.st.sql("INSERT INTO connector (id, type, config_json) VALUES ('k2', 'influxdb', '{}')")
        status, r = self.call("use", {"cid": "k2"})
        self.assertEqual(status, 599, r)
        self.assertIn("ConnectorNotSupport", r["message"])
        self.assertIn("`influxdb`", r["message"])

    def test_modify_keeps_the_sealed_password_and_delete_removes(self):
        self.st.api("POST", "/api/v1/connectors/c_redis/do/modify",
                    {"data": {"title": "renamed", "configJSON": {
                        "host": "127.0.0.1", "port": self.sv.port["redis"], "db": 2}}}, timeout=60)
        self.assertEqual(self.result("rd")["get"], "1")
        self.st.api("POST", "/api/v1/connectors/do/add",
                    {"data": {"id": "tmp_c", "type": "redis", "configJSON": {}}, "skipTest": True})
        self.st.api("GET", "/api/v1/connectors/tmp_c/do/delete")
        status, r = self.st.http("GET", "/api/v1/connectors/tmp_c/do/test")
        self.assertEqual(status, 404, r)

    def test_tandemctl_connector_commands(self):
        cfg = json.dumps({"servers": "127.0.0.1:%d" % self.sv.port["memcached"]})
        p = self.st.ctl("connector", "add", "ctl_mc", "--type", "memcached", "--config", cfg)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.st.ctl("connector", "list")
        self.assertIn("ctl_mc", p.stdout)
        p = self.st.ctl("connector", "show", "ctl_mc")
        self.assertEqual(json.loads(p.stdout)["type"], "memcached")
        p = self.st.ctl("connector", "test", "ctl_mc")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("connected", p.stdout)
        p = self.st.ctl("connector", "add", "ctl_k", "--type", "kafka", "--config", "{}")
        self.assertEqual(p.returncode, 1)
        self.assertIn("kafka", p.stderr)
        p = self.st.ctl("connector", "delete", "ctl_mc")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = self.st.ctl("connector", "test", "ctl_mc")
        self.assertEqual(p.returncode, 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
