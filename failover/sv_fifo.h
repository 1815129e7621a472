/* keepalived's vrrp_notify_fifo: lines such as
 *     INSTANCE "VI_1" MASTER 100
 * arrive in the order keepalived made the transitions. This module only
 * parses; the supervisor decides what a line means (sv_fsm.h). */
#ifndef TANDEM_SV_FIFO_H
#define TANDEM_SV_FIFO_H

#include <stddef.h>

enum sv_vrrp {
    SV_VRRP_NONE = 0, /* not a state line (e.g. MASTER_RX_LOWER_PRI) */
    SV_VRRP_MASTER,
    SV_VRRP_BACKUP,
    SV_VRRP_FAULT,
    SV_VRRP_STOP,
    SV_VRRP_DELETED,
};

struct sv_fifo_msg {
    char kind[16]; /* "INSTANCE" or "GROUP" */
    char name[64]; /* the instance or group name, unquoted */
    char word[32]; /* the state word as sent */
    enum sv_vrrp state;
    int priority; /* -1 if the line had none */
};

/* Parse one line (without or with the trailing newline). Returns 0, or -1
 * with a reason in err ("missing closing quote", ...). Unknown words such as
 * MASTER_PRIORITY parse fine with state SV_VRRP_NONE. */
int sv_fifo_parse(const char *line, struct sv_fifo_msg *m, char *err, size_t errn);

const char *sv_vrrp_name(enum sv_vrrp s);

/* Splits a byte stream into lines. A line longer than the buffer is
 * dropped whole (reported once as overlong) instead of being cut in two. */
#define SV_LINEBUF 1024
struct sv_linebuf {
    char buf[SV_LINEBUF];
    size_t len;
    int overlong; /* discarding until the next newline */
};

/* Append n bytes. */
void sv_linebuf_feed(struct sv_linebuf *lb, const char *data, size_t n,
                     void (*on_line)(void *arg, const char *line, int overlong), void *arg);

#endif
