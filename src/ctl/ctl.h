/* tandemctl's shared context. Each command family lives in its own file:
 * ctl_main.c (dispatch, db, key, script, func, call, task, api),
 * ctl_http.c (the minimal HTTP/1.1 client), ctl_cron.c (beat issue),
 * ctl_failover.c (status, switchover, maintenance: failover issue),
 * ctl_doctor.c (packaging issue). */
#ifndef TANDEM_CTL_H
#define TANDEM_CTL_H

#include <stdbool.h>
#include <jansson.h>
#include "config.h"

enum ctl_exit { CTL_OK = 0, CTL_REFUSED = 1, CTL_USAGE = 2, CTL_UNREACHABLE = 3 };

struct ctl {
    struct tconf conf;
    bool have_conf; /* a config file was read */
    char url[256];  /* --url, $TANDEM_URL, ctl.url */
    char key[128];  /* --key, $TANDEM_KEY, ctl.key_file */
    bool json;      /* --json: machine output */
};

/* One HTTP request to the server. body may be NULL. On any HTTP answer
 * returns 0 with *status and *resp (parsed JSON, or NULL if not JSON; caller
 * decrefs). On a transport failure returns -1 with *err (malloc'd). */
int ctl_http(struct ctl *c, const char *method, const char *path, json_t *body, long *status,
             json_t **resp, char **err);

/* Print an error envelope / transport error in human or --json form and
 * return the exit code that fits (CTL_REFUSED / CTL_UNREACHABLE). */
int ctl_report_error(struct ctl *c, long status, json_t *resp, const char *err);

/* One option of a command family: "--name VALUE" (has_arg, into *val) or
 * "--name" (into *flag). ctl_parse_opts fills them and the positionals (at
 * most maxpos); a bad argument prints "tandemctl: <prefix>why" and the
 * family's usage and returns CTL_USAGE. */
struct ctl_opt {
    const char *name;
    bool has_arg;
    const char **val;
    bool *flag;
};
int ctl_parse_opts(int argc, char **argv, struct ctl_opt *opts, const char **pos, int maxpos,
                   int *npos, const char *prefix, const char *usage_text);
/* Prints "tandemctl: <prefix><fmt...>" (nothing when fmt is NULL), then the
 * family's usage text, to stderr; returns CTL_USAGE. */
int ctl_usage(const char *usage_text, const char *prefix, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Command families implemented in their own files; each returns an enum ctl_exit. */
int ctl_cron_main(struct ctl *c, int argc, char **argv); /* tandemctl cron ... */
int ctl_failover_main(struct ctl *c, const char *cmd, int argc,
                      char **argv);                           /* status|switchover|maintenance */
int ctl_doctor_main(struct ctl *c, int argc, char **argv);    /* tandemctl doctor */
int ctl_connector_main(struct ctl *c, int argc, char **argv); /* connector ... (ctl_connector.c) */
int ctl_script_run(struct ctl *c, int argc, char **argv);     /* script run ... (ctl_connector.c) */
int ctl_user_main(struct ctl *c, int argc, char **argv);      /* user add|passwd|disable|enable */

#endif
