/* The cron engine (see cron.h for the rules, including DST). Civil times
 * ("wall clock" read as if it were UTC) are int64 seconds; instants are unix
 * seconds; instant = civil - offset. */
#include "cron.h"

#include <ctype.h>
#include <stdarg.h>
#include <strings.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define T_MIN INT64_MIN
#define T_MAX INT64_MAX

/* ---------- civil dates (Howard Hinnant's algorithms) ---------- */

int64_t cron_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void cron_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m];
}

static unsigned weekday(int64_t days) /* 0 = Sunday; 1970-01-01 was a Thursday */
{
    int64_t w = (days + 4) % 7;
    return (unsigned)(w < 0 ? w + 7 : w);
}

/* ---------- parsing ---------- */

struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo+i... indexed by value */
};

static const char *const MON_NAMES[13] = {"",    "JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const DOW_NAMES[8] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW };
/* A day field "restricts" the day unless it names every value, however it
 * is written ("*", "1-31", "0-6", "SUN-SAT", "5,*"): croniter's rule, where
 * Vixie cron looks at a leading '*' instead (day-of-week: see F_DOW). */
#define DOM_ALL 0xfffffffeULL /* days 1..31 */
#define DOW_ALL 0x7fULL       /* weekdays 0..6 once 7 is folded onto 0 */
static const struct field_def FIELDS[6] = {
    {"second", 0, 59, NULL},       {"minute", 0, 59, NULL},     {"hour", 0, 23, NULL},
    {"day-of-month", 1, 31, NULL}, {"month", 1, 12, MON_NAMES}, {"day-of-week", 0, 7, DOW_NAMES},
};

static int fail(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(char **err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(err, fmt, ap) == -1)
            *err = NULL;
        va_end(ap);
    }
    return -1;
}

/* One value: a number or (for month/weekday) a name. Advances *p. */
static int parse_value(const struct field_def *f, const char *ftext, const char **p, int *out,
                       char **err)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s)) {
            v = v * 10 + (*s - '0');
            if (v > 1000)
                break;
            s++;
        }
        if (isdigit((unsigned char)*s) || v < f->lo || v > f->hi)
            return fail(err, "%s field \"%s\": value %.*s out of range %d-%d", f->name, ftext,
                        (int)(strspn(*p, "0123456789")), *p, f->lo, f->hi);
        *out = (int)v;
        *p = s;
        return 0;
    }
    if (f->names && isalpha((unsigned char)*s)) {
        size_t n = 0;
        while (isalpha((unsigned char)s[n]))
            n++;
        for (int v = f->lo; v <= f->hi; v++) {
            const char *nm = f->names[v];
            if (nm && *nm && n == 3 && strncasecmp(s, nm, 3) == 0) {
                *out = v;
                *p = s + n;
                return 0;
            }
        }
        if (n == 1 && strchr("LlWwHhRr", *s))
            return fail(err,
                        "%s field \"%s\": unknown name \"%c\" (of croniter's special forms Tandem "
                        "takes L in day-of-month, D#N and LD in day-of-week; not W, ?, H or R)",
                        f->name, ftext, *s);
        return fail(err, "%s field \"%s\": unknown name \"%.*s\"", f->name, ftext, (int)n, s);
    }
    if (*s == '\0' || strchr(",-/", *s))
        return fail(err, "%s field \"%s\": a value is missing", f->name, ftext);
    if (strchr("LlWw#?HhRr", *s))
        return fail(err,
                    "%s field \"%s\": unexpected '%c' (of croniter's special forms Tandem takes L "
                    "in day-of-month, D#N and LD in day-of-week; not W, ?, H or R)",
                    f->name, ftext, *s);
    if (f->names)
        return fail(err, "%s field \"%s\": unexpected '%c' (expected a number or a name)", f->name,
                    ftext, *s);
    return fail(err, "%s field \"%s\": unexpected '%c' (expected a number, '*', '-', '/' or ',')",
                f->name, ftext, *s);
}

#define NTH_LAST 0x20 /* in cron_expr.nth[]: the weekday's last one of the month */

static bool nth_match(const struct cron_expr *e, unsigned wd, unsigned d, unsigned len);

static uint64_t nth_keys(const struct cron_expr *e)
{
    uint64_t k = 0;
    for (int d = 0; d < 8; d++)
        if (e->nth[d])
            k |= 1ULL << d;
    return k;
}

/* Day-of-week only: croniter's "D#N" (the Nth weekday D of the month,
 * N 1..5) and "LD" (the last weekday D) items. nth[D] gets bit N-1 or
 * NTH_LAST; the weekday D counts as a value of the field too (croniter
 * decides "restricts" with it). 0 if the item at *p is not one. */
static int parse_nth(const struct field_def *f, const char *ftext, const char **p, uint8_t *nth,
                     uint64_t *mask, char **err)
{
    const char *s = *p;
    int d;
    if ((*s == 'L' || *s == 'l') && isdigit((unsigned char)s[1])) {
        s++;
        if (parse_value(f, ftext, &s, &d, err))
            return -1;
        nth[d] |= NTH_LAST;
    } else {
        const char *q = s;
        while (isalnum((unsigned char)*q))
            q++;
        if (*q != '#')
            return 0;
        if (parse_value(f, ftext, &s, &d, err))
            return -1;
        if (s != q)
            return fail(err, "%s field \"%s\": unexpected '%c'", f->name, ftext, *s);
        s++;
        if (!isdigit((unsigned char)*s) || *s < '1' || *s > '5' || isdigit((unsigned char)s[1]))
            return fail(err, "%s field \"%s\": after '#' a week number 1-5", f->name, ftext);
        nth[d] |= (uint8_t)(1u << (*s - '1'));
        s++;
    }
    if (*s != ',' && *s != '\0')
        return fail(err, "%s field \"%s\": unexpected '%c' after a '#' or 'L' weekday", f->name,
                    ftext, *s);
    *mask |= 1ULL << d;
    *p = s;
    return 1;
}

/* A field's text into a bit mask (bit v = value v). nth: day-of-week's
 * "#"/"L" items (NULL for other fields); plain: the values given by other
 * items, "*" aside. */
static int parse_field(const struct field_def *f, const char *ftext, uint64_t *mask, bool *star,
                       uint8_t *nth, uint64_t *plain, char **err)
{
    *mask = 0;
    *plain = 0;
    *star = false; /* a bare "*" item, with no step */
    const char *p = ftext;
    for (;;) {
        int a, b, step = 1;
        bool ranged = false;
        if (nth) {
            int r = parse_nth(f, ftext, &p, nth, mask, err);
            if (r < 0)
                return -1;
            if (r > 0) {
                if (*p == ',') {
                    p++;
                    continue;
                }
                break;
            }
        }
        if (f == &FIELDS[F_DOM] && (*p == 'L' || *p == 'l') && (p[1] == ',' || !p[1])) {
            *mask |= 1; /* "L": the month's last day, kept in the unused bit 0 */
            if (*++p == ',') {
                p++;
                continue;
            }
            break;
        }
        if (*p == '*') {
            a = f->lo;
            b = f->hi;
            ranged = true;
            p++;
            *star |= *p != '/';
        } else {
            if (parse_value(f, ftext, &p, &a, err))
                return -1;
            b = a;
            if (*p == '-') {
                const char *hi_text = ++p;
                if (f == &FIELDS[F_DOM] && (*p == 'L' || *p == 'l')) {
                    b = f->hi; /* "10-L": croniter reads it as 10-31 */
                    p++;
                } else if (parse_value(f, ftext, &p, &b, err)) {
                    return -1;
                }
                /* "FRI-SUN", "5-0": a weekday range may end on Sunday
                 * written as 0 (croniter reads it as 7). */
                if (f->names == DOW_NAMES && b == 0 && b < a &&
                    (p - hi_text == 1 || isalpha((unsigned char)*hi_text)))
                    b = 7;
                if (b < a)
                    return fail(err, "%s field \"%s\": range %d-%d runs backwards", f->name, ftext,
                                a, b);
                ranged = true;
            }
        }
        if (*p == '/') {
            p++;
            if (!isdigit((unsigned char)*p))
                return fail(err, "%s field \"%s\": a step needs a number after '/'", f->name,
                            ftext);
            /* Any positive step, as croniter: one larger than the range
             * leaves just the start value (minute step 100 is minute 0). */
            long s = 0;
            while (isdigit((unsigned char)*p)) {
                s = s * 10 + (*p++ - '0');
                if (s > 1000)
                    s = 1000;
            }
            if (s < 1)
                return fail(err, "%s field \"%s\": step 0 (a step must be 1 or more)", f->name,
                            ftext);
            step = (int)s;
            if (!ranged) /* "A/S" means A through the maximum, as croniter and cronie */
                b = f->hi;
        }
        for (int v = a; v <= b; v += step) {
            *mask |= 1ULL << v;
            if (!*star)
                *plain |= 1ULL << v;
        }
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == '\0')
            break;
        if (*p == '#')
            return fail(err,
                        "%s field \"%s\": unexpected '#' (D#N, the Nth weekday D, belongs in "
                        "day-of-week)",
                        f->name, ftext);
        return fail(err, "%s field \"%s\": unexpected '%c'", f->name, ftext, *p);
    }
    return 0;
}

static const struct {
    const char *name, *expr;
} MACROS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

int cron_parse(struct cron_expr *e, const char *text, char **err)
{
    memset(e, 0, sizeof *e);
    if (!text)
        return fail(err, "cron expression is missing");
    if (strlen(text) >= CRON_EXPR_MAX)
        return fail(err, "cron expression is too long (%zu bytes, at most %d)", strlen(text),
                    CRON_EXPR_MAX - 1);
    snprintf(e->text, sizeof e->text, "%s", text);

    char buf[CRON_EXPR_MAX];
    const char *src = text;
    while (isspace((unsigned char)*src))
        src++;
    if (*src == '@') {
        size_t n = strcspn(src, " \t\r\n");
        const char *rest = src + n + strspn(src + n, " \t\r\n");
        const char *found = NULL;
        for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0]; i++)
            if (strlen(MACROS[i].name) == n && strncasecmp(src, MACROS[i].name, n) == 0)
                found = MACROS[i].expr;
        if (!found || *rest)
            return fail(err,
                        "cron expression \"%s\": unknown macro \"%.*s\" (known: @yearly "
                        "@annually @monthly @weekly @daily @midnight @hourly)",
                        text, (int)n, src);
        src = found;
    }
    snprintf(buf, sizeof buf, "%s", src);

    char *fields[7];
    int nf = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t\r\n", &save); tok; tok = strtok_r(NULL, " \t\r\n", &save)) {
        if (nf == 7)
            break;
        fields[nf++] = tok;
    }
    if (nf != 5 && nf != 6)
        return fail(err,
                    "cron expression \"%s\": expected 5 fields (minute hour day-of-month month "
                    "day-of-week) or 6 (with seconds first), got %d",
                    text, nf);
    int first = nf == 6 ? F_SEC : F_MIN;
    e->has_seconds = nf == 6;
    if (nf == 5)
        e->sec = 1; /* second 0 */
    for (int i = 0; i < nf; i++) {
        int fi = first + i;
        uint64_t m, plain;
        bool star;
        if (parse_field(&FIELDS[fi], fields[i], &m, &star, fi == F_DOW ? e->nth : NULL, &plain,
                        err))
            return -1;
        switch (fi) {
        case F_SEC:
            e->sec = m;
            break;
        case F_MIN:
            e->min = m;
            break;
        case F_HOUR:
            e->hour = (uint32_t)m;
            break;
        case F_DOM:
            e->dom = (uint32_t)m;
            e->dom_all = star || m == DOM_ALL;
            break;
        case F_MON:
            e->mon = (uint16_t)m;
            break;
        case F_DOW:
            /* croniter (as DFF calls it, seconds last) keeps 7 apart from 0
             * when it decides whether the field names "every weekday": it
             * does with a bare "*" item or exactly 7 distinct values of
             * 0..7, so "1-7" and "MON-SUN" do, "0-7" and "*" with step 1
             * (eight values) do not, and "0-5,7" does ... which croniter
             * then reads as every day, Saturday included. 7 matches Sunday. */
            e->dow_all = star || __builtin_popcountll(m & 0xff) == 7;
            for (int d = 0; d < 8; d++)
                if (e->nth[d]) {
                    e->has_nth = true;
                    /* croniter refuses a plain weekday beside "#"/"L" ones,
                     * unless the same weekday also has one ("5,5#2"). */
                    if (plain & ~nth_keys(e))
                        return fail(err,
                                    "day-of-week field \"%s\": plain weekdays cannot be mixed "
                                    "with '#' or 'L' ones (croniter refuses it)",
                                    fields[i]);
                    break;
                }
            if (m & (1ULL << 7))
                m = (m | 1) & 0x7f;
            e->dow = e->dow_all ? DOW_ALL : (uint8_t)m;
            break;
        }
    }
    /* Some chosen day must exist in some chosen month (Feb counts 29, so
     * "0 0 29 2 *" is fine). With day-of-week "*" the job would never fire;
     * with a restricted day-of-week too (either matches) croniter gives up
     * on the whole expression, so DFF never fires it either. */
    bool ok = e->dom & 1; /* every month has a last day */
    for (unsigned mo = 1; mo <= 12 && !ok; mo++) {
        if (!(e->mon & (1u << mo)))
            continue;
        unsigned maxd = mo == 2 ? 29 : days_in_month(2001, mo);
        for (unsigned d = 1; d <= maxd && !ok; d++)
            ok = e->dom & (1u << d);
    }
    if (!ok)
        return fail(err,
                    "day-of-month field \"%s\": no chosen day occurs in the chosen months, "
                    "the job would never fire",
                    fields[F_DOM - first]);
    /* With "#"/"L" weekdays and a restricted day-of-month croniter needs a
     * day that is both (see day_match()) and gives up without one. One
     * Gregorian cycle of 400 years holds every combination there is. */
    if (e->has_nth && !e->dom_all) {
        ok = false;
        for (int64_t y = 2000; y < 2400 && !ok; y++)
            for (unsigned mo = 1; mo <= 12 && !ok; mo++) {
                if (!(e->mon & (1u << mo)))
                    continue;
                unsigned len = days_in_month(y, mo);
                int64_t first = cron_days_from_civil(y, mo, 1);
                for (unsigned d = 1; d <= len && !ok; d++)
                    ok = ((e->dom & (1u << d)) || ((e->dom & 1) && d == len)) &&
                         nth_match(e, weekday(first + d - 1), d, len);
            }
        if (!ok)
            return fail(err,
                        "day-of-month field \"%s\" and day-of-week field \"%s\": no chosen "
                        "day of the month is ever the chosen '#'/'L' weekday, and croniter "
                        "gives up on such an expression: it would never fire",
                        fields[F_DOM - first], fields[F_DOW - first]);
    }
    return 0;
}

/* ---------- matching in civil time ---------- */

/* Day-of-week's "#"/"L" items for weekday wd (0..6; 7 counts as Sunday):
 * is day d of a month of `len` days one of them? */
static bool nth_match(const struct cron_expr *e, unsigned wd, unsigned d, unsigned len)
{
    unsigned bits = e->nth[wd] | (wd == 0 ? e->nth[7] : 0);
    return (bits & (1u << ((d - 1) / 7))) || ((bits & NTH_LAST) && d + 7 > len);
}

static int next_bit(uint64_t mask, int from, int hi)
{
    if (from > hi || from > 63)
        return -1;
    uint64_t m = mask >> from;
    if (!m)
        return -1;
    int b = from + __builtin_ctzll(m);
    return b <= hi ? b : -1;
}

static bool day_match(const struct cron_expr *e, int64_t y, unsigned mo, unsigned d, int64_t days)
{
    bool dom = (e->dom & (1u << d)) || ((e->dom & 1) && d == days_in_month(y, mo));
    if (e->has_nth) {
        /* croniter: with "#"/"L" weekdays and both fields restricting, the
         * "either" search always lands on the weekday's own match (the
         * other branch needs both); with day-of-week naming every day, or
         * day-of-month doing so, both apply. */
        bool n = nth_match(e, weekday(days), d, days_in_month(y, mo));
        return (e->dow_all && !e->dom_all) ? n && dom : n;
    }
    bool dow = e->dow & (1u << weekday(days));
    if (e->dom_all || e->dow_all)
        return dom && dow;
    return dom || dow; /* croniter's day_or: both restricted means either */
}

/* Smallest matching civil time in [cs, climit], or -1. */
static int64_t civil_next(const struct cron_expr *e, int64_t cs, int64_t climit)
{
    if (cs > climit)
        return -1;
    int64_t days = floor_div(cs, 86400), rem = cs - days * 86400;
    int h = (int)(rem / 3600), mi = (int)(rem / 60 % 60), s = (int)(rem % 60);
    int64_t y;
    unsigned mo, d;
    cron_civil_from_days(days, &y, &mo, &d);
    int64_t lim_days = floor_div(climit, 86400);

#define NEXT_DAY()                                                                                 \
    do {                                                                                           \
        days++;                                                                                    \
        cron_civil_from_days(days, &y, &mo, &d);                                                   \
        h = mi = s = 0;                                                                            \
    } while (0)

    for (;;) {
        if (days > lim_days)
            return -1;
        if (!(e->mon & (1u << mo))) {
            int nm = next_bit(e->mon, (int)mo + 1, 12);
            if (nm < 0) {
                y++;
                nm = next_bit(e->mon, 1, 12);
            }
            mo = (unsigned)nm;
            d = 1;
            days = cron_days_from_civil(y, mo, 1);
            h = mi = s = 0;
            continue;
        }
        if (!day_match(e, y, mo, d, days)) {
            NEXT_DAY();
            continue;
        }
        int nh = next_bit(e->hour, h, 23);
        if (nh < 0) {
            NEXT_DAY();
            continue;
        }
        if (nh != h) {
            h = nh;
            mi = s = 0;
        }
        int nmi = next_bit(e->min, mi, 59);
        if (nmi < 0) {
            mi = s = 0;
            if (++h > 23)
                NEXT_DAY();
            continue;
        }
        if (nmi != mi) {
            mi = nmi;
            s = 0;
        }
        int ns = next_bit(e->sec, s, 59);
        if (ns < 0) {
            s = 0;
            if (++mi > 59) {
                mi = 0;
                if (++h > 23)
                    NEXT_DAY();
            }
            continue;
        }
        int64_t r = days * 86400 + h * 3600 + mi * 60 + ns;
        return r <= climit ? r : -1;
    }
#undef NEXT_DAY
}

/* ---------- time zones ---------- */

struct tz_rule {
    char kind; /* 'M' month.week.day, 'J' julian 1..365 without Feb 29, 'N' 0..365 */
    int m, w, d, n;
    int32_t time; /* seconds after local midnight; may be negative or > 24 h */
};

struct cron_tz {
    char name[64];
    int n;
    int64_t *at;   /* transition instants, ascending */
    int32_t *off;  /* offset in force from at[i] */
    int32_t off0;  /* before at[0] (time type 0) */
    bool has_rule; /* a POSIX TZ footer */
    bool rule_dst;
    int32_t std_off, dst_off;
    struct tz_rule start, end;
};

const char *cron_tz_name(const struct cron_tz *tz)
{
    return tz->name;
}

void cron_tz_free(struct cron_tz *tz)
{
    if (!tz)
        return;
    free(tz->at);
    free(tz->off);
    free(tz);
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return (int64_t)v;
}

static int32_t be32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]);
}

/* POSIX TZ pieces. Each returns the advanced pointer or NULL. */
static const char *posix_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 2 ? q + 1 : NULL;
    }
    const char *q = p;
    while (isalpha((unsigned char)*q))
        q++;
    return q - p >= 3 ? q : NULL;
}

static const char *posix_hms(const char *p, int32_t *out, bool sign_ok)
{
    int sign = 1;
    if (sign_ok && (*p == '+' || *p == '-'))
        sign = *p++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char)*p))
        return NULL;
    long h = strtol(p, (char **)&p, 10), m = 0, s = 0;
    if (*p == ':') {
        m = strtol(p + 1, (char **)&p, 10);
        if (*p == ':')
            s = strtol(p + 1, (char **)&p, 10);
    }
    if (h > 167 || m > 59 || s > 59)
        return NULL;
    *out = (int32_t)(sign * (h * 3600 + m * 60 + s));
    return p;
}

static const char *posix_rule(const char *p, struct tz_rule *r)
{
    memset(r, 0, sizeof *r);
    r->time = 7200;
    if (*p == 'M') {
        r->kind = 'M';
        char *q;
        r->m = (int)strtol(p + 1, &q, 10);
        if (*q != '.')
            return NULL;
        r->w = (int)strtol(q + 1, &q, 10);
        if (*q != '.')
            return NULL;
        r->d = (int)strtol(q + 1, &q, 10);
        p = q;
        if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d < 0 || r->d > 6)
            return NULL;
    } else if (*p == 'J' || isdigit((unsigned char)*p)) {
        r->kind = *p == 'J' ? 'J' : 'N';
        if (*p == 'J')
            p++;
        char *q;
        r->n = (int)strtol(p, &q, 10);
        if (q == p || r->n < 0 || r->n > 365 || (r->kind == 'J' && r->n < 1))
            return NULL;
        p = q;
    } else {
        return NULL;
    }
    if (*p == '/') {
        p = posix_hms(p + 1, &r->time, true);
        if (!p)
            return NULL;
    }
    return p;
}

static int parse_posix_tz(struct cron_tz *tz, const char *s)
{
    const char *p = posix_name(s);
    int32_t v;
    if (!p || !(p = posix_hms(p, &v, true)))
        return -1;
    tz->std_off = -v; /* POSIX counts west of Greenwich as positive */
    tz->has_rule = true;
    if (*p == '\0')
        return 0;
    if (!(p = posix_name(p)))
        return -1;
    tz->rule_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = posix_hms(p, &v, true)))
            return -1;
        tz->dst_off = -v;
    }
    if (*p == '\0') { /* no rule given: POSIX's default is the US one */
        posix_rule("M3.2.0", &tz->start);
        posix_rule("M11.1.0", &tz->end);
        return 0;
    }
    if (*p != ',' || !(p = posix_rule(p + 1, &tz->start)) || *p != ',' ||
        !(p = posix_rule(p + 1, &tz->end)) || *p)
        return -1;
    return 0;
}

/* Instant at which rule r happens in year y, with offset off in force. */
static int64_t rule_instant(const struct tz_rule *r, int64_t y, int32_t off)
{
    int64_t days;
    if (r->kind == 'M') {
        int64_t first = cron_days_from_civil(y, (unsigned)r->m, 1);
        int wd1 = (int)weekday(first);
        int d = 1 + (r->d - wd1 + 7) % 7 + 7 * (r->w - 1);
        while (d > (int)days_in_month(y, (unsigned)r->m))
            d -= 7;
        days = first + d - 1;
    } else if (r->kind == 'J') {
        days = cron_days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60);
    } else {
        days = cron_days_from_civil(y, 1, 1) + r->n;
    }
    return days * 86400 + r->time - off;
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    unsigned m, d;
    cron_civil_from_days(floor_div(t, 86400), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const struct cron_tz *tz, int64_t t)
{
    if (!tz->rule_dst)
        return tz->std_off;
    int64_t y = year_of(t);
    int64_t s = rule_instant(&tz->start, y, tz->std_off);
    int64_t e = rule_instant(&tz->end, y, tz->dst_off);
    bool dst = s < e ? (t >= s && t < e) : !(t >= e && t < s);
    return dst ? tz->dst_off : tz->std_off;
}

/* The rule's transitions of years y-1..y+1, ascending, into out[6]. */
static int rule_transitions(const struct cron_tz *tz, int64_t y, int64_t out[6])
{
    int n = 0;
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t a = rule_instant(&tz->start, yy, tz->std_off);
        int64_t b = rule_instant(&tz->end, yy, tz->dst_off);
        out[n++] = a < b ? a : b;
        out[n++] = a < b ? b : a;
    }
    return n;
}

static bool in_rule_region(const struct cron_tz *tz, int64_t t)
{
    return tz->n == 0 || t >= tz->at[tz->n - 1];
}

int cron_tz_offset(const struct cron_tz *tz, int64_t t)
{
    if (in_rule_region(tz, t)) {
        if (tz->has_rule)
            return rule_offset(tz, t);
        return tz->n ? tz->off[tz->n - 1] : tz->off0;
    }
    if (t < tz->at[0])
        return tz->off0;
    int lo = 0, hi = tz->n - 1; /* at[lo] <= t < at[hi] */
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->off[lo];
}

/* Smallest transition instant > t, or T_MAX. */
static int64_t tz_next_trans(const struct cron_tz *tz, int64_t t)
{
    if (!in_rule_region(tz, t)) {
        int lo = 0, hi = tz->n - 1; /* answer in (lo-1, hi] */
        if (t < tz->at[0])
            return tz->at[0];
        while (hi - lo > 1) {
            int mid = lo + (hi - lo) / 2;
            if (tz->at[mid] <= t)
                lo = mid;
            else
                hi = mid;
        }
        return tz->at[hi];
    }
    if (!tz->has_rule || !tz->rule_dst)
        return T_MAX;
    int64_t tr[6];
    for (int64_t y = year_of(t);; y++) {
        int n = rule_transitions(tz, y, tr);
        for (int i = 0; i < n; i++)
            if (tr[i] > t)
                return tr[i];
    }
}

/* Largest transition instant <= t, or T_MIN. */
static int64_t tz_prev_trans(const struct cron_tz *tz, int64_t t)
{
    if (in_rule_region(tz, t)) {
        int64_t floor_t = tz->n ? tz->at[tz->n - 1] : T_MIN;
        if (tz->has_rule && tz->rule_dst) {
            int64_t tr[6];
            int n = rule_transitions(tz, year_of(t), tr);
            for (int i = n - 1; i >= 0; i--)
                if (tr[i] <= t && tr[i] >= floor_t)
                    return tr[i];
        }
        return floor_t;
    }
    if (t < tz->at[0])
        return T_MIN;
    int lo = 0, hi = tz->n - 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return tz->at[lo];
}

static bool tz_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= 64 || name[0] == '/' || strstr(name, "..") || strstr(name, "//"))
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("/_+-", *p))
            return false;
    return true;
}

static int parse_tzif(struct cron_tz *tz, const unsigned char *b, size_t len, char **err)
{
#define NEED(k)                                                                                    \
    do {                                                                                           \
        if ((size_t)(k) > len - pos)                                                               \
            return fail(err, "time zone \"%s\": truncated TZif file", tz->name);                   \
    } while (0)
    size_t pos = 0;
    NEED(44);
    if (memcmp(b, "TZif", 4) != 0)
        return fail(err, "time zone \"%s\": not a TZif file", tz->name);
    char version = (char)b[4];
    int timesz = 4;
    uint32_t cnt[6];
    for (;;) {
        for (int i = 0; i < 6; i++)
            cnt[i] = (uint32_t)be32(b + pos + 20 + 4 * i);
        pos += 44;
        uint32_t isut = cnt[0], isstd = cnt[1], leap = cnt[2], timecnt = cnt[3], typecnt = cnt[4],
                 charcnt = cnt[5];
        if (timecnt > 100000 || typecnt == 0 || typecnt > 256 || leap > 10000)
            return fail(err, "time zone \"%s\": malformed TZif header", tz->name);
        size_t datalen = (size_t)timecnt * timesz + timecnt + typecnt * 6 + charcnt +
                         (size_t)leap * (timesz + 4) + isstd + isut;
        if (version != '\0' && timesz == 4) { /* skip the 32-bit block, use the 64-bit one */
            NEED(datalen + 44);
            pos += datalen;
            timesz = 8;
            continue;
        }
        NEED(datalen);
        const unsigned char *tt = b + pos, *idx = tt + (size_t)timecnt * timesz,
                            *types = idx + timecnt;
        tz->n = (int)timecnt;
        tz->at = calloc(timecnt ? timecnt : 1, sizeof *tz->at);
        tz->off = calloc(timecnt ? timecnt : 1, sizeof *tz->off);
        if (!tz->at || !tz->off)
            return fail(err, "out of memory");
        for (uint32_t i = 0; i < timecnt; i++) {
            tz->at[i] = timesz == 8 ? be64(tt + 8 * i) : be32(tt + 4 * i);
            if (idx[i] >= typecnt)
                return fail(err, "time zone \"%s\": malformed TZif type index", tz->name);
            tz->off[i] = be32(types + 6 * idx[i]);
            if (i && tz->at[i] <= tz->at[i - 1])
                return fail(err, "time zone \"%s\": TZif transitions out of order", tz->name);
        }
        tz->off0 = be32(types);
        pos += datalen;
        break;
    }
    /* Footer: "\nPOSIX-TZ\n" (version 2+). */
    if (version != '\0' && pos < len && b[pos] == '\n') {
        const char *f = (const char *)b + pos + 1;
        const char *nl = memchr(f, '\n', len - pos - 1);
        if (nl && nl > f) {
            char rule[128];
            size_t rn = (size_t)(nl - f);
            if (rn >= sizeof rule)
                return fail(err, "time zone \"%s\": TZif footer too long", tz->name);
            memcpy(rule, f, rn);
            rule[rn] = '\0';
            if (parse_posix_tz(tz, rule))
                return fail(err, "time zone \"%s\": cannot read its rule \"%s\"", tz->name, rule);
        }
    }
    return 0;
#undef NEED
}

struct cron_tz *cron_tz_load(const char *name, char **err)
{
    if (!name || !tz_name_valid(name)) {
        fail(err, "time zone \"%s\": not a valid IANA zone name (like \"Europe/Berlin\")",
             name ? name : "");
        return NULL;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
        if (fd != -1)
            close(fd);
        fail(err, "time zone \"%s\": unknown (not in the tz database %s)", name, dir);
        return NULL;
    }
    unsigned char *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    struct cron_tz *tz = calloc(1, sizeof *tz);
    if (!b || !tz) {
        free(b);
        free(tz);
        fail(err, "out of memory");
        return NULL;
    }
    snprintf(tz->name, sizeof tz->name, "%s", name);
    if (parse_tzif(tz, b, got, err)) {
        free(b);
        cron_tz_free(tz);
        return NULL;
    }
    free(b);
    return tz;
}

/* ---------- next fire ---------- */

int64_t cron_next(const struct cron_expr *e, const struct cron_tz *tz, int64_t after)
{
    /* Far outside any calendar a job could use: also keeps the sums below
     * from overflowing. */
    if (after < -CRON_TIME_LIMIT || after > CRON_TIME_LIMIT)
        return -1;
    int64_t u = after + 1;
    int64_t limit = after + (int64_t)CRON_SEARCH_YEARS * 366 * 86400;

    /* DFF's rule (croniter.match at every tick): an instant fires when its
     * local wall-clock time matches. Between two offset changes local time
     * runs straight, so the first match there is the first matching civil
     * time; local times a spring-forward skips never fire, those a fall-back
     * repeats fire at both occurrences. */
    while (u <= limit) {
        int32_t o = cron_tz_offset(tz, u);
        int64_t tn = tz_next_trans(tz, u);
        int64_t cend = tn == T_MAX || tn > limit ? limit + o : tn + o - 1;
        int64_t m = civil_next(e, u + o, cend);
        if (m >= 0)
            return m - o;
        if (tn == T_MAX || tn > limit)
            return -1;
        u = tn;
    }
    return -1;
}

/* ---------- formatting and parsing times ---------- */

char *cron_format(int64_t t, const struct cron_tz *tz, char *buf, size_t n)
{
    int32_t o = tz ? cron_tz_offset(tz, t) : 0;
    int64_t c = t + o, days = floor_div(c, 86400), rem = c - days * 86400;
    int64_t y;
    unsigned m, d;
    cron_civil_from_days(days, &y, &m, &d);
    int ao = o < 0 ? -o : o;
    snprintf(buf, n, "%04lld-%02u-%02uT%02d:%02d:%02d%c%02d:%02d", (long long)y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60), o < 0 ? '-' : '+', ao / 3600,
             ao / 60 % 60);
    return buf;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int cron_parse_time(const char *s, const struct cron_tz *tz, int64_t *out, char **err)
{
    if (!s)
        return fail(err, "time is missing");
    if (s[0] == '@') {
        char *end;
        errno = 0;
        long long v = strtoll(s + 1, &end, 10);
        if (errno || end == s + 1 || *end)
            return fail(err, "time \"%s\": expected @UNIXSECONDS", s);
        /* Callers turn times into milliseconds and SQL DATETIMEs: keep them
         * to the years ISO 8601 writes with four digits. */
        if (v < CRON_TIME_MIN || v > CRON_TIME_MAX)
            return fail(err, "time \"%s\": out of range (years 0001 to 9999)", s);
        *out = v;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0;
    const char *p = s;
    if (!digits(p, 4, &y) || p[4] != '-' || !digits(p + 5, 2, &mo) || p[7] != '-' ||
        !digits(p + 8, 2, &d))
        goto bad;
    p += 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi))
            goto bad;
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec))
                goto bad;
            p += 3;
            if (*p == '.' || *p == ',') {
                p++;
                while (isdigit((unsigned char)*p))
                    p++;
            }
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > (int)days_in_month(y, (unsigned)mo) || h > 23 ||
        mi > 59 || sec > 60)
        return fail(err, "time \"%s\": date or time out of range", s);
    if (sec == 60)
        sec = 59;
    int64_t c =
        cron_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec;
    if (*p == 'Z' || *p == 'z') {
        if (p[1])
            goto bad;
        *out = c;
        return 0;
    }
    if (*p == '+' || *p == '-') {
        int oh, om = 0;
        int sign = *p == '-' ? -1 : 1;
        if (!digits(p + 1, 2, &oh))
            goto bad;
        const char *q = p + 3;
        if (*q == ':')
            q++;
        if (*q) {
            if (!digits(q, 2, &om) || q[2])
                goto bad;
        }
        if (oh > 23 || om > 59)
            return fail(err, "time \"%s\": offset out of range", s);
        *out = c - sign * (oh * 3600 + om * 60);
        return 0;
    }
    if (*p)
        goto bad;
    if (!tz) {
        *out = c;
        return 0;
    }
    /* Local time: the first instant whose local time it is; in a gap, the
     * transition that skipped it. */
    {
        int32_t cands[3] = {cron_tz_offset(tz, c - 86400), cron_tz_offset(tz, c),
                            cron_tz_offset(tz, c + 86400)};
        int64_t best = T_MAX;
        for (int i = 0; i < 3; i++)
            if (cron_tz_offset(tz, c - cands[i]) == cands[i] && c - cands[i] < best)
                best = c - cands[i];
        if (best == T_MAX)
            best = tz_prev_trans(tz, c - cands[0]);
        *out = best;
        return 0;
    }
bad:
    return fail(err,
                "time \"%s\": expected ISO 8601 like 2026-03-29T01:30:00+01:00 (offset or Z "
                "optional) or @UNIXSECONDS",
                s);
}
