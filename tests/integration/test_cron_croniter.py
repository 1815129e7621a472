"""Differential test: Tandem's cron engine against croniter, DataFlux Func's.

DFF decides a cron job's fires by asking, at each tick, whether the tick's
time in the job's zone matches: croniter.match() on the expression with a
seconds field "0" appended (DFF's croniter style), for a datetime made with
arrow.get(t).to(zone). That predicate is the reference here; croniter's own
get_next() proposes candidate fires so that sparse expressions are covered
without scanning every minute.

For each generated (expression, zone, start) case the test asks
build/tests/cron-batch (src/common/cron.c) for the next fires and checks:
  - every fire Tandem gives matches in DFF;
  - every candidate from get_next() up to Tandem's last fire that matches in
    DFF is one of Tandem's fires (none skipped);
  - random minutes in the same window match in DFF exactly when Tandem fires;
  - Tandem accepts an expression exactly when croniter does (except ones that
    can never fire, which Tandem refuses and DFF silently never runs).
Zones include daylight saving time, half-hour shifts and midnight changes,
and half of the starts are just before a change of offset. Africa/Casablanca
is left out on purpose: its "negative DST" (UTC+1 with UTC+0 in Ramadan) is
misread by dateutil, which arrow gives DFF, so DFF's own answers there
are off by an hour around the changes; Tandem follows the tz database.

Environment: TANDEM_BUILD (build dir), TANDEM_CRON_CASES (default 1500),
TANDEM_CRON_SEED (default fixed; "random" for a new one, printed).
Needs Debian's python3-croniter and python3-arrow.
"""

import datetime
import os
import random
import subprocess
import sys
import time
import unittest
import zoneinfo

try:
    import arrow
    from croniter import croniter, CroniterBadDateError
except ImportError as exc:  # a missing component fails, never skips
    sys.exit("test_cron_croniter: needs python3-croniter and python3-arrow (%s)" % exc)

SRC = os.path.abspath(os.environ.get("TANDEM_SRC") or os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.abspath(os.environ.get("TANDEM_BUILD") or os.path.join(SRC, "build"))
HELPER = os.environ.get("TANDEM_CRON_BATCH") or os.path.join(BUILD, "tests", "cron-batch")

ZONES = [
    "UTC", "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Europe/London",
    "Australia/Sydney", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata",
    "Pacific/Chatham", "America/Havana", "Asia/Tehran", "America/Sao_Paulo",
    "America/Chicago", "Pacific/Auckland", "America/St_Johns", "Asia/Kathmandu",
    "America/Asuncion",
]
FIRES = 6  # fires asked per case
SAMPLES = 3  # random minutes checked per case

MON = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DOW = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


def dff_style(expr):
    """A 5-field expression as DFF hands it to croniter: seconds last, 0."""
    return expr + " 0"


RAISED = []  # (expr, zone, t) where croniter.match() itself raised


def dff_match(expr, t, zone):
    # croniter.match() searches backwards and gives up (raises) when nothing
    # matched within its years limit; DFF's starter then fails that tick, so
    # nothing fires: count it as no match, and report how often it happened.
    try:
        return croniter.match(dff_style(expr), arrow.get(t).to(zone).datetime)
    except CroniterBadDateError:
        RAISED.append((expr, zone, t))
        return False


def rand_value(rng, lo, hi, names):
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3 and v - (1 if names is MON else 0) < len(names):
        return names[v - (1 if names is MON else 0)].upper() if rng.random() < 0.5 else names[v - (1 if names is MON else 0)]
    return str(v)


def rand_item(rng, lo, hi, names, dow=False):
    r = rng.random()
    if r < 0.15:
        return "*"
    if r < 0.30:
        return "*/%d" % rng.choice([1, 2, 3, 4, 5, 6, 7, 10, 13, 15, 18, 20, 30, 45, 100])
    if r < 0.55:
        return rand_value(rng, lo, hi, names)
    a = rng.randint(lo, hi)
    b = rng.randint(a, hi)
    if dow and rng.random() < 0.15:  # a weekday range ending on Sunday as 0 / SUN
        a, b = rng.randint(1, 6), rng.choice(["0", "sun", "SUN", "7"])
        item = "%s-%s" % (DOW[a] if rng.random() < 0.5 else a, b)
    elif r < 0.75:
        item = "%s-%s" % (a, b)
    elif r < 0.85:
        return "%d/%d" % (a, rng.randint(1, hi - lo + 2))
    else:
        item = "%d-%d" % (a, b)
        if names and rng.random() < 0.4:
            off = 1 if names is MON else 0
            if a - off < len(names) and b - off < len(names):
                item = "%s-%s" % (names[a - off], names[b - off])
    if rng.random() < 0.5:
        item += "/%d" % rng.randint(1, hi - lo + 3)
    return item


def rand_field(rng, lo, hi, names=None, dow=False, star_bias=0.0):
    if rng.random() < star_bias:
        return "*"
    n = rng.choice([1, 1, 1, 2, 3])
    return ",".join(rand_item(rng, lo, hi, names, dow) for _ in range(n))


def rand_expr(rng):
    # Fields that fire rarely keep the window short; days get the most variety.
    minute = rand_field(rng, 0, 59, star_bias=0.05)
    hour = rand_field(rng, 0, 23, star_bias=0.2)
    dom = rand_field(rng, 1, 31, star_bias=0.3)
    r = rng.random()
    if r < 0.05:
        dom = rng.choice(["1-31", "*/1", "1/1", "5,*"])
    elif r < 0.15:  # the month's last day, alone, listed or ending a range
        dom = rng.choice(["L", "l", "%s,L" % dom, "L,%s" % dom, "%d-L" % rng.randint(1, 31),
                          "%d-L/%d" % (rng.randint(1, 31), rng.randint(1, 9)), "1-31,L", "*,L"])
    mon = rand_field(rng, 1, 12, MON, star_bias=0.55)
    dow = rand_field(rng, 0, 7, DOW, dow=True, star_bias=0.3)
    if rng.random() < 0.12:  # croniter's nth ("5#2") and last ("L5") weekdays
        items = []
        for _ in range(rng.choice([1, 1, 2, 3])):
            d = rng.randint(0, 7)
            ds = DOW[d % 7] if rng.random() < 0.3 else str(d)
            items.append(("%s#%d" % (ds, rng.randint(1, 5))) if rng.random() < 0.6 else "L%d" % d)
        if rng.random() < 0.15:
            items.append(rng.choice(["*", str(rng.randint(0, 7))]))
        dow = ",".join(items)
    if rng.random() < 0.05:
        dow = rng.choice(["0-6", "0-7", "*/1", "sun-sat", "1-7", "mon-sun"])
    return " ".join([minute, hour, dom, mon, dow])


def offset_changes(zone, years=range(2024, 2032)):
    """Instants (unix s) just after the zone's offset changes in those years."""
    tz = zoneinfo.ZoneInfo(zone)
    out = []
    t = int(datetime.datetime(years[0], 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    end = int(datetime.datetime(years[-1] + 1, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
    prev = None
    while t < end:
        off = datetime.datetime.fromtimestamp(t, tz).utcoffset()
        if prev is not None and off != prev:
            lo, hi = t - 3600, t  # the change is in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.datetime.fromtimestamp(mid, tz).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            out.append(hi)
        prev = off
        t += 3600
    return out


def croniter_valid(expr):
    # croniter's is_valid() itself raises NameError on some bad fields
    # ("L/2"): that is a refusal too.
    try:
        return croniter.is_valid(dff_style(expr))
    except Exception:
        return False


def croniter_never_fires(expr):
    try:
        croniter(dff_style(expr), datetime.datetime(2024, 1, 1)).get_next(float)
        return False
    except CroniterBadDateError:
        return True


def run_helper(cases):
    if not os.access(HELPER, os.X_OK):
        raise AssertionError("%s is missing: build the tree first (cmake --build build)" % HELPER)
    data = "".join("%s\t%s\t%d\t%d\n" % c for c in cases)
    out = subprocess.run([HELPER], input=data, capture_output=True, text=True, check=True, timeout=120).stdout
    lines = out.splitlines()
    if len(lines) != len(cases):
        raise AssertionError("cron-batch answered %d lines for %d cases" % (len(lines), len(cases)))
    res = []
    for ln in lines:
        kind, _, rest = ln.partition(" ")
        res.append((kind, [int(x) for x in rest.split()] if kind == "ok" else rest))
    return res


def fmt(t, zone):
    return "%s (%d)" % (arrow.get(t).to(zone).isoformat(), t)


def check_case(expr, zone, start, answer, rng):
    """A list of disagreements for one case (empty if none), and the number
    of get_next() candidates DFF's own match() refused (croniter quirks)."""
    kind, val = answer
    ok_c = croniter_valid(expr)
    if kind == "err":
        if ok_c and not croniter_never_fires(expr):
            return ["Tandem refuses (%s), croniter accepts" % val], 0
        return [], 0
    if not ok_c:
        return ["Tandem accepts, croniter refuses"], 0
    fires = val
    bad = []
    for t in fires:
        if not dff_match(expr, t, zone):
            bad.append("Tandem fires at %s, DFF does not" % fmt(t, zone))
    if len(fires) == FIRES:
        window_end = fires[-1]
    else:  # Tandem found fewer in its 10-year search: check a year ahead
        window_end = start + 366 * 86400
    quirks = 0
    fire_set = set(fires)
    try:
        it = croniter(dff_style(expr), arrow.get(start).to(zone).datetime)
        for _ in range(FIRES + 2):
            g = int(it.get_next(float))
            if g > window_end:
                break
            if g <= start or g in fire_set:
                continue
            if dff_match(expr, g, zone):
                bad.append("DFF fires at %s, Tandem skips it" % fmt(g, zone))
            else:
                quirks += 1
    except CroniterBadDateError:
        pass
    lo = (start // 60 + 1) * 60
    if window_end > lo:
        for _ in range(SAMPLES):
            m = lo + 60 * rng.randint(0, (window_end - lo) // 60)
            if dff_match(expr, m, zone) != (m in fire_set):
                bad.append("at %s DFF %s, Tandem %s" % (
                    fmt(m, zone), "fires" if dff_match(expr, m, zone) else "does not fire",
                    "fires" if m in fire_set else "does not fire"))
    return bad, quirks


class CronMatchesCroniter(unittest.TestCase):
    def run_cases(self, cases, seed):
        rng = random.Random(seed + 1)
        answers = run_helper(cases)
        failures, quirks = [], 0
        for case, ans in zip(cases, answers):
            bad, q = check_case(case[0], case[1], case[2], ans, rng)
            quirks += q
            if bad:
                failures.append("%r in %s after %s: %s" % (case[0], case[1], fmt(case[2], case[1]), "; ".join(bad[:3])))
        return failures, quirks

    def test_issue_examples(self):
        # The two expressions issue 8 found disagreeing, in DFF's default zone.
        start = int(datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
        cases = [(e, z, start, 40) for e in ["*/18 16-19 5 * */3", "35 * 19-25 2,5,7 */2"]
                 for z in ["Asia/Shanghai", "UTC"]]
        global FIRES
        saved, FIRES = FIRES, 40
        try:
            failures, _ = self.run_cases(cases, 0)
        finally:
            FIRES = saved
        self.assertEqual(failures, [], "\n".join(failures))

    def test_generated_expressions_and_zones(self):
        seed_env = os.environ.get("TANDEM_CRON_SEED", "20260830")
        seed = random.randrange(1 << 30) if seed_env == "random" else int(seed_env)
        n = int(os.environ.get("TANDEM_CRON_CASES", "1500"))
        print("test_cron_croniter: seed %d, %d cases" % (seed, n), file=sys.stderr)
        rng = random.Random(seed)
        changes = {z: offset_changes(z) for z in ZONES}
        lo = int(datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
        hi = int(datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc).timestamp())
        cases = []
        for _ in range(n):
            zone = rng.choice(ZONES)
            if changes[zone] and rng.random() < 0.5:
                start = rng.choice(changes[zone]) - rng.randint(0, 3 * 86400)
            else:
                start = rng.randint(lo, hi)
            cases.append((rand_expr(rng), zone, start, FIRES))
        t0 = time.monotonic()
        failures, quirks = self.run_cases(cases, seed)
        print("test_cron_croniter: %d cases in %.1f s, %d disagreements, %d get_next() "
              "candidates that DFF's match() refuses (ignored)" % (n, time.monotonic() - t0, len(failures), quirks),
              file=sys.stderr)
        self.assertEqual(failures, [], "%d of %d cases disagree (seed %d):\n%s" % (
            len(failures), n, seed, "\n".join(failures[:25])))


if __name__ == "__main__":
    unittest.main(verbosity=2)
