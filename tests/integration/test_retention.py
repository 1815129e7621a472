"""Task-record retention (src/worker/worker_purge.c): the keeper on the
primary keeps the newest N records of each origin and nothing older than the
age limit, so task_record levels off under sustained load. Rows are written
straight into task_record (as the keeper's flush would) so the test checks
the purge alone, then one origin is fed through real calls."""
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, have_binaries, wait_for  # noqa: E402

CAPS = """
retention = { max_age_days = 30; sync_api = 5; async_api = 7; cron = 3; func = 4; other = 2; batch = 10; };
"""


def rows(values):
    return ",".join(values)


class RetentionTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker"):
            raise unittest.SkipTest("build first")
        cls.st = Stack(name="ret", conf_extra=CAPS).up()

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def insert(self, n, origin, origin_id, func_id, days_ago=0):
        vals = []
        for i in range(n):
            vals.append(
                f"('task-ret-{origin}-{origin_id}-{func_id}-{days_ago}-{i}', '{func_id}', '{origin}', "
                f"'{origin_id}', 'success', UTC_TIMESTAMP(3) - INTERVAL {days_ago} DAY)")
        # batches keep the statement small
        for k in range(0, len(vals), 200):
            self.st.sql("INSERT INTO task_record (id, func_id, origin, origin_id, status, ended_at) VALUES "
                        + rows(vals[k:k + 200]))

    def count(self, where):
        return int(self.st.sql(f"SELECT COUNT(*) FROM task_record WHERE {where}")[0][0])

    def test_retention_keeps_newest_n_per_origin(self):
        self.insert(60, "sync-api", "sapi-ret1", "s__a.f")
        self.insert(60, "sync-api", "sapi-ret2", "s__a.f")
        self.insert(40, "cron", "cron-ret1", "s__a.g")
        self.insert(40, "func", "", "s__a.h")
        self.insert(40, "func", "", "s__a.i")
        self.insert(30, "async-api", "aapi-ret1", "s__a.f")
        newest = self.st.sql("SELECT MAX(seq) FROM task_record WHERE origin_id = 'sapi-ret1'")[0][0]

        def trimmed():
            return (self.count("origin_id = 'sapi-ret1'") == 5 and self.count("origin_id = 'sapi-ret2'") == 5
                    and self.count("origin_id = 'cron-ret1'") == 3
                    and self.count("origin = 'func' AND func_id = 's__a.h'") == 4
                    and self.count("origin = 'func' AND func_id = 's__a.i'") == 4
                    and self.count("origin_id = 'aapi-ret1'") == 7)
        wait_for(trimmed, 30, 0.3, "every origin trimmed to its cap")
        # the newest rows are the ones kept
        kept = self.st.sql("SELECT MAX(seq) FROM task_record WHERE origin_id = 'sapi-ret1'")[0][0]
        self.assertEqual(kept, newest)
        stats = self.st.redis("HGETALL", "tandem:stats:purge")
        self.assertIn("deleted_total", stats)

    def test_retention_other_origins_capped_per_func(self):
        self.insert(25, "subtask", "", "s__sub.f")
        self.insert(1, "subtask", "", "s__sub.g")
        wait_for(lambda: self.count("func_id = 's__sub.f'") == 2, 30, 0.3, "subtasks trimmed to 2 per func")
        self.assertEqual(self.count("func_id = 's__sub.g'"), 1)

    def test_retention_levels_off_under_calls(self):
        code = "@DFF.API('Echo')\ndef echo(x=1):\n    return x\n"
        sapi = self.st.deploy("ret__echo", code, "echo")
        for i in range(30):
            status, _ = self.st.http("POST", f"/api/v1/sync/{sapi}", {"kwargs": {"x": i}}, key=None)
            self.assertEqual(status, 200)
        wait_for(lambda: self.count(f"origin_id = '{sapi}'") == 5, 30, 0.3, "sync API records trimmed to 5")


class RetentionAgeTest(unittest.TestCase):
    """Age limit alone (no count caps): rows older than max_age_days go."""

    @classmethod
    def setUpClass(cls):
        if not have_binaries("tandem-server", "tandem-worker"):
            raise unittest.SkipTest("build first")
        cls.st = Stack(name="retage", conf_extra="""
retention = { max_age_days = 10; sync_api = 0; async_api = 0; cron = 0; func = 0; other = 0; batch = 10; };
""")
        cls.st.up()

    @classmethod
    def tearDownClass(cls):
        cls.st.down()

    def test_retention_age_limit_deletes_old_rows_only(self):
        vals = [f"('task-age-{i}', 's__x.f', 'cron', 'cron-x', 'success', "
                f"UTC_TIMESTAMP(3) - INTERVAL {20 if i % 2 else 1} DAY)" for i in range(50)]
        self.st.sql("INSERT INTO task_record (id, func_id, origin, origin_id, status, ended_at) VALUES "
                    + ",".join(vals))

        def left():
            return int(self.st.sql("SELECT COUNT(*) FROM task_record WHERE id LIKE 'task-age-%'")[0][0])
        # the age pass runs every 10 s, in batches of 10 here
        wait_for(lambda: left() == 25, 40, 0.5, "rows older than 10 days deleted")
        young = int(self.st.sql("SELECT COUNT(*) FROM task_record WHERE id LIKE 'task-age-%' "
                                "AND ended_at > UTC_TIMESTAMP(3) - INTERVAL 2 DAY")[0][0])
        self.assertEqual(young, 25)


if __name__ == "__main__":
    unittest.main()
