/* cron-batch: the cron engine for a differential test
 * (tests/integration/test_cron_croniter.py). One case per stdin line,
 *   EXPR <TAB> ZONE <TAB> AFTER_UNIX_SECONDS <TAB> COUNT
 * and one answer line per case on stdout: "ok T1 T2 ..." (the next COUNT
 * fire instants, fewer if the search gives up) or "err MESSAGE". A batch
 * keeps thousands of cases in one process; the zone cache keeps it fast. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cron.h"

#define ZONES_MAX 64

static struct {
    char name[64];
    struct cron_tz *tz;
} zones[ZONES_MAX];
static int nzones;

static struct cron_tz *zone(const char *name, char **err)
{
    for (int i = 0; i < nzones; i++)
        if (strcmp(zones[i].name, name) == 0)
            return zones[i].tz;
    struct cron_tz *tz = cron_tz_load(name, err);
    if (tz && nzones < ZONES_MAX) {
        snprintf(zones[nzones].name, sizeof zones[nzones].name, "%s", name);
        zones[nzones++].tz = tz;
    }
    return tz;
}

int main(void)
{
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        line[strcspn(line, "\n")] = '\0';
        char *f[4], *p = line;
        int n = 0;
        for (char *tok; n < 4 && (tok = strsep(&p, "\t")) != NULL;)
            f[n++] = tok;
        if (n != 4) {
            printf("err malformed line (want EXPR, ZONE, AFTER, COUNT separated by tabs)\n");
            continue;
        }
        struct cron_expr e;
        char *err = NULL;
        struct cron_tz *tz = NULL;
        if (cron_parse(&e, f[0], &err) || !(tz = zone(f[1], &err))) {
            printf("err %s\n", err ? err : "?");
            free(err);
            continue;
        }
        int64_t t = strtoll(f[2], NULL, 10);
        long count = strtol(f[3], NULL, 10);
        fputs("ok", stdout);
        for (long i = 0; i < count; i++) {
            t = cron_next(&e, tz, t);
            if (t < 0)
                break;
            printf(" %" PRId64, t);
        }
        putchar('\n');
    }
    for (int i = 0; i < nzones; i++)
        cron_tz_free(zones[i].tz);
    return 0;
}
