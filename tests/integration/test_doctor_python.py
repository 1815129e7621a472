"""tandemctl doctor's "python" check: it names exactly the modules DFF
scripts import that the worker's CPython cannot import, as a warning (never
a FAIL), with the packages to install.

The expected set is computed here independently: one `python3.11 -I -c
"import M"` per module, with the system site-packages the worker uses
(Debian's /usr/lib/python3/dist-packages). No backend is needed: the other
doctor checks may fail, only the "python" entry is read.
"""

import json
import os
import subprocess
import unittest

SRC = os.path.abspath(os.environ.get("TANDEM_SRC") or os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("TANDEM_BUILD") or os.path.join(SRC, "build"))
CTL = os.path.join(BUILD, "bin", "tandemctl")

# module -> Debian package, as the doctor's table (src/ctl/ctl_doctor.c).
MODULES = {
    "requests": "python3-requests", "arrow": "python3-arrow", "pymysql": "python3-pymysql",
    "redis": "python3-redis", "psycopg2": "python3-psycopg2", "pymemcache": "python3-pymemcache",
    "memcache": "python3-memcache", "paho.mqtt.client": "python3-paho-mqtt",
    "croniter": "python3-croniter", "yaml": "python3-yaml", "simplejson": "python3-simplejson",
    "xmltodict": "python3-xmltodict", "dateutil": "python3-dateutil", "six": "python3-six",
    "ujson": "python3-ujson", "toml": "python3-toml", "tomli": "python3-tomli",
    "tomli_w": "python3-tomli-w", "jinja2": "python3-jinja2", "markupsafe": "python3-markupsafe",
    "psutil": "python3-psutil", "Cryptodome": "python3-pycryptodome", "pymongo": "python3-pymongo",
    "pymssql": "python3-pymssql", "clickhouse_driver": "python3-clickhouse-driver",
    "influxdb": "python3-influxdb", "kafka": "python3-kafka", "funcsigs": "python3-funcsigs",
    "retry": "python3-retry", "timeout_decorator": "python3-timeout-decorator",
}


def importable(mod):
    # -I keeps PYTHONPATH, user site and a pyenv first on PATH out, as the
    # worker's isolated interpreter does.
    r = subprocess.run(["/usr/bin/python3.11", "-I", "-c", "import " + mod],
                       capture_output=True, timeout=60)
    return r.returncode == 0


class DoctorPythonModules(unittest.TestCase):
    def test_lists_exactly_the_missing_modules(self):
        self.assertTrue(os.access(CTL, os.X_OK), "%s is missing: build the tree first" % CTL)
        r = subprocess.run([CTL, "-c", os.path.join(SRC, "conf", "tandem.conf"), "--json", "doctor"],
                           capture_output=True, text=True, timeout=120)
        doc = json.loads(r.stdout)
        checks = [c for c in doc["checks"] if c["check"] == "python"]
        self.assertEqual(len(checks), 1, r.stdout)
        c = checks[0]
        missing = sorted(m for m in MODULES if not importable(m))
        if not missing:
            self.assertEqual(c["status"], "ok", c)
            self.assertIn("all %d modules" % len(MODULES), c["message"])
            return
        self.assertEqual(c["status"], "warn", c)  # a warning, never a FAIL
        self.assertIn("%d of %d modules" % (len(missing), len(MODULES)), c["message"])
        for m in MODULES:
            named = (" %s (" % m) in c["message"] or (": %s (" % m) in c["message"]
            self.assertEqual(named, m in missing, "%s: %s" % (m, c["message"]))
            if m in missing:
                self.assertIn(MODULES[m], c["fix"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
