"""The DFF runtime's pure parts, without a stack: DFF's toolkit JSON, the
@DFF.API option table (every row, every alias), DFF's SQL placeholders, and
the print capture's prefix and limits. Imports src/python directly."""

import datetime
import decimal
import os
import re
import sys
import unittest

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(SRC, "src", "python"))
import tandem_conn  # noqa: E402
import tandem_dff  # noqa: E402
from tandem_dff import InvalidAPIOption, api_options, to_jsonable  # noqa: E402

# a good and a bad value for every option of the table
GOOD_BAD = {
    "fixed_cron_expr": ("*/5 * * * *", "* *"),
    "delayed_cron_job": ([0, 60], [1, "2"]),
    "timeout": (30, 0),
    "expires": (60, 100000),
    "cache_result": (1.5, "x"),
    "queue": (9, 0),
    "category": ("c", 1),
    "tags": (["a"], "a"),
    "integration": ("autoRun", "nope"),
    "integration_config": None,  # needs integration; checked below
    "is_hidden": (True, "yes"),
}


class OptionTable(unittest.TestCase):
    def test_every_row_and_alias_is_checked(self):
        self.assertEqual({r[0] for r in tandem_dff.API_OPTIONS}, set(GOOD_BAD))
        for name, aliases, check, dff_key, why in tandem_dff.API_OPTIONS:
            vals = GOOD_BAD[name]
            for spelling in (name,) + aliases:
                if why is not None:
                    with self.assertRaisesRegex(InvalidAPIOption, "`%s` is not supported" % spelling):
                        api_options({spelling: [5]})
                    continue
                if vals is None:
                    continue
                good, bad = vals
                self.assertIn(name, api_options({spelling: good}), spelling)
                with self.assertRaisesRegex(InvalidAPIOption, "`%s`" % spelling):
                    api_options({spelling: bad})

    def test_primary_spelling_wins_over_alias(self):
        o = api_options({"fixed_crontab": "1 * * * *", "fixed_cron_expr": "2 * * * *"})
        self.assertEqual(o["fixed_cron_expr"], "2 * * * *")
        o = api_options({"timeout": 5, "api_timeout": 9})
        self.assertEqual(o["timeout"], 5)

    def test_delayed_cron_job_is_sorted_and_bounded(self):
        self.assertEqual(api_options({"delayed_crontab": [5, 0, 5]})["delayed_cron_job"], [0, 5])
        self.assertEqual(api_options({"delayed_cron_job": 3})["delayed_cron_job"], [3])
        with self.assertRaisesRegex(InvalidAPIOption, "at most 60"):
            api_options({"delayed_cron_job": list(range(61))})
        with self.assertRaisesRegex(InvalidAPIOption, "0..86400"):
            api_options({"delayed_cron_job": [86401]})

    def test_integration_config(self):
        o = api_options({"integration": "auto_run", "integration_config": {"crontab": "0 * * * *"}})
        self.assertEqual((o["integration"], o["integration_config"]),
                         ("autoRun", {"cronExpr": "0 * * * *"}))
        with self.assertRaisesRegex(InvalidAPIOption, "needs `integration`"):
            api_options({"integration_config": {"cronExpr": "0 * * * *"}})
        with self.assertRaisesRegex(InvalidAPIOption, "onScriptPublish"):
            api_options({"integration": "autoRun", "integration_config": {"on_publish": True}})

    def test_unknown_option_is_named(self):
        with self.assertRaisesRegex(InvalidAPIOption, "unknown @DFF.API option `colour`"):
            api_options({"colour": 1})


class ToolkitJSON(unittest.TestCase):
    def test_values(self):
        self.assertEqual(to_jsonable(datetime.datetime(2020, 1, 2, 3, 4, 5)),
                         "2020-01-02T03:04:05+00:00")
        self.assertEqual(to_jsonable(decimal.Decimal("2.50")), 2.5)
        self.assertEqual(to_jsonable(decimal.Decimal("1E+2")), 100)
        self.assertIsNone(to_jsonable(decimal.Decimal("NaN")))
        self.assertIsNone(to_jsonable(float("-inf")))
        self.assertEqual(to_jsonable({None: 1, True: 2, 1.5: 3, (1,): 4}),
                         {"null": 1, "true": 2, "1.5": 3, "(1,)": 4})
        self.assertEqual(to_jsonable(datetime.date(2020, 1, 2)), "datetime.date(2020, 1, 2)")
        self.assertEqual(to_jsonable(b"\xff"), "b'\\xff'")
        deep = []
        cur = deep
        for _ in range(500):
            cur.append([])
            cur = cur[0]
        tandem_dff.json_dumps(deep)  # no RecursionError: cut to a repr

    def test_to_boolean(self):
        self.assertEqual([tandem_dff.to_boolean(x) for x in ("Yes", "off", "maybe", 2, 0)],
                         [True, False, None, True, False])


class SQLPlaceholders(unittest.TestCase):
    def fmt(self, sql, params):
        return tandem_conn.format_sql(sql, params, lambda v: repr(v), lambda n: "`%s`" % n)

    def test_values_lists_dicts_identifiers(self):
        self.assertEqual(self.fmt("SELECT * FROM ?? WHERE id IN (?) AND x = ?", ["t", [1, 2], "a"]),
                         "SELECT * FROM `t` WHERE id IN (1, 2) AND x = 'a'")
        self.assertEqual(self.fmt("INSERT INTO t VALUES ?", [[[1, "a"], [2, "b"]]]),
                         "INSERT INTO t VALUES (1, 'a'), (2, 'b')")
        self.assertEqual(self.fmt("UPDATE t SET ?", [{"a": 1, "b": None}]),
                         "UPDATE t SET a = 1, b = NULL")
        self.assertEqual(self.fmt("SELECT '?' , ?", [5]), "SELECT '?' , 5")
        self.assertEqual(self.fmt("SELECT ?", None), "SELECT ?")


class Capture(unittest.TestCase):
    def test_prefix_line_limit_head_tail_and_masks(self):
        # tandem_runtime needs the worker's _tandem at import: take the class alone
        with open(os.path.join(SRC, "src", "python", "tandem_runtime.py")) as f:
            src = f.read()
        start = src.index("class _Capture(object):")
        end = src.index("class _Handler(logging.Handler):")
        ns = {"time": __import__("time"), "collections": __import__("collections"),
              "sys": sys, "threading": __import__("threading"),
              "LINE_LIMIT": 3000, "TOTAL_HEAD": 20000, "TOTAL_TAIL": 30000}
        exec(src[start:end], ns)
        cap = ns["_Capture"](1 << 20)
        cap.write("one\ntwo ")
        cap.entry("secret here")
        cap.write("x" * 3500 + "\n")
        for i in range(5000):
            cap.entry("line %d" % i)
        out = cap.getvalue({"secret"})
        lines = out.splitlines()
        pre = r"^\[\d\d-\d\d \d\d:\d\d:\d\d\] \[\+\d+ms\] \[\d+ms\] "
        self.assertRegex(lines[0], pre + "one$")
        self.assertRegex(lines[1], pre + r"\*\*\*\*\* here$")
        self.assertRegex(lines[2], pre + "two x+\\.\\.\\. <Length: 3504>$")
        self.assertIn("!!! Content too long, only FIRST 20000 chars and LAST 30000 are saved !!!",
                      out)
        self.assertTrue(lines[-1].endswith("line 4999"))
        self.assertLess(len(out), 20000 + 30000 + 3000 + 500)


if __name__ == "__main__":
    unittest.main(verbosity=2)
