/* tandem-supervisor's context: one struct per process, owned by main(). The
 * health and event threads touch only the parts behind their own locks. */
#ifndef TANDEM_SV_H
#define TANDEM_SV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <hiredis.h>

#include "config.h"
#include "sv_fifo.h"
#include "sv_fsm.h"
#include "sv_keepalived.h"

/* A process the supervisor starts and restarts. */
struct sv_child {
    const char *name;     /* "worker", "server", "beat", "keepalived" */
    pid_t pid;            /* 0 = not running */
    int64_t started_mono; /* when the current instance started */
    int64_t started_wall;
    int64_t next_start; /* mono ms when a crashed one may be started again */
    int backoff_ms;     /* doubles on each quick crash, reset after a good run */
    int restarts;
    int64_t term_sent; /* mono ms SIGTERM went out during a stop, 0 = not yet */
    bool kill_sent;
    int grace_ms; /* SIGTERM -> SIGKILL */
};

enum { SV_WORKER = 0, SV_SERVER, SV_BEAT, SV_NSTACK };

#define SV_RECENT 16
struct sv_event_row {
    int64_t at; /* wall ms */
    char from[16], to[16];
    char cause[160];
    int64_t epoch;
};

#define SV_MAX_PEERS 4 /* other supervisors a node keeps track of */

/* What the health thread measured last; read by main under hl.lock. */
struct sv_health_view {
    bool redis_ok;
    int64_t redis_epoch;      /* -1 unknown */
    int server_status;        /* HTTP status of /api/v1/health, 0 = no answer */
    int64_t server_ok_mono;   /* last 200 */
    int64_t server_bad_since; /* first non-200 in the current bad streak, 0 = healthy */
    char server_detail[160];
    /* ready worker children from the heartbeats (while our stack runs): of
     * this node's worker masters, and of the other nodes'; -1 unknown */
    int own_children, peer_children;
    /* the other supervisors as written in Psv */
    int npeers;
    struct {
        char node[64];
        char role[16];
        int64_t epoch;
        int64_t age_ms; /* on Redis's clock (rds_sv_age_ms) */
        int64_t ts;     /* stamp of its last publication: changes with each */
        bool maint;
        bool warm; /* a backup whose server answers: ready to take the VIP */
    } peers[SV_MAX_PEERS];
    char warm_for[64]; /* <prefix>sv:warm: the node asked to warm up, "" none */
};

/* What the supervisor publishes about itself (Psv hash). */
struct sv_self_view {
    char role[16];
    int64_t epoch;
    bool maint;
    bool warm;
};

struct sv_health {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool kick;         /* publish now */
    bool check_server; /* main: the stack runs, probe it */
    struct sv_health_view view;
    struct sv_self_view self;
    pthread_mutex_t pub_lock; /* serialises Psv writes between main and the thread */
    char pub_sha[41];         /* the publish script's SHA1, under pub_lock */
    redisContext *rc;         /* the thread's own */
    int wake_fd;              /* eventfd: the thread -> main, "view changed" */
};

struct sv_events {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    struct sv_event_row queue[256];
    int qhead, qlen;
    struct sv_event_row recent[SV_RECENT];
    int nrecent;          /* ring: newest at (nrecent-1) % SV_RECENT */
    int64_t db_max_epoch; /* MAX(epoch) of failover_event, read by the thread; -1 unknown */
};

struct sv {
    struct tconf conf;
    const char *conf_path;
    struct sv_kpaths kp;
    char **child_env; /* environ without NOTIFY_SOCKET */
    uid_t uid;        /* failover.user, or keep root */
    gid_t gid;
    bool drop_privs;

    struct sv_fsm fsm;
    struct sv_child stack[SV_NSTACK];
    struct sv_child ka;
    pid_t ka_vrrp_pid;     /* keepalived's VRRP child, from its pidfile */
    bool stack_stopping;   /* a stop sequence is in progress */
    bool promote_pending;  /* MASTER seen, epoch not yet taken */
    int64_t promote_retry; /* mono ms */
    bool ready_sent;
    bool stack_healthy_once;
    int64_t stack_started_mono;

    bool maint;         /* tandemctl maintenance on */
    int64_t hold_until; /* mono ms: the track file says FAULT until then */
    int track_value;    /* what the file says now */
    int64_t last_unhealthy_handover;
    int64_t planned_at; /* mono ms: a planned handover moves the VIP then at the latest */
    int64_t planned_begun;
    char planned_why[96];
    char planned_peer[64];     /* the backup asked to warm up */
    int64_t server_hold_until; /* mono ms: the server keeps serving the drain until then */
    bool vip_on_lo;
    bool warm; /* backup running worker + server for a planned handover */
    int64_t warm_since;
    int64_t warm_ok_since;     /* first of the health 200s in a row while warm */
    bool stop_after_handover;  /* SIGTERM on a primary: hand over first, then stop */
    int64_t worker_hold_since; /* planned stop: waiting for the peer's worker since */
    bool relay_on;             /* sv_relay.c's table is installed */
    int64_t relay_until;       /* mono ms: removed then (0 = while warm) */
    bool relay_warned;         /* nft missing or refused: said once */
    /* The highest epoch this process ever saw (Redis, peers, our own). A
     * promotion takes one above it and above failover_event's: a Redis that
     * lost data must never hand out an epoch that was already used. */
    int64_t epoch_seen;
    int64_t guard_ts;    /* promotion guard: the peer's publication we saw */
    int64_t guard_until; /* mono ms: wait this long for a newer one */

    int sig_fd, fifo_fd, ctl_fd;
    struct sv_linebuf fifo_lb;
    bool shutting_down;
    int64_t shutdown_deadline;

    redisContext *rc; /* main thread's: INCR epoch, promotion guard */
    int tls_wfd;      /* write end of the server's certificate pipe, -1 = none */
    struct sv_health hl;
    struct sv_events ev;
};

/* sv_tls.c: the server's certificate, read here as root (the key file stays
 * root-only) and handed to the unprivileged server through a pipe that
 * becomes its fd 3 (TANDEM_TLS_FD=3); SIGHUP (systemctl reload) sends the
 * files again and the server swaps them without a restart. */
int sv_tls_pipe(struct sv *s, int *rfd); /* before the server's fork; -1 = none */
void sv_tls_send(struct sv *s);          /* read the files, write them to the pipe */
void sv_tls_close(struct sv *s);

/* sv_proc.c: starting and stopping processes */
int sv_proc_init(struct sv *s);
int sv_ka_start(struct sv *s);
void sv_stack_start(struct sv *s);         /* worker, server, beat with --epoch */
void sv_stack_stop_begin(struct sv *s);    /* beat first, at once */
void sv_proc_tick(struct sv *s);           /* stop sequence, restarts with backoff */
void sv_proc_reap(struct sv *s);           /* SIGCHLD: waitpid and react */
bool sv_stack_running(const struct sv *s); /* any stack process alive */
int sv_vip_drop(const struct tconf *c);    /* remove the VIP from the interface (netlink) */
bool sv_vip_present(const struct tconf *c);
int sv_vip_lo(const struct tconf *c, bool add); /* the VIP on lo during a planned drain */
void sv_stack_warm(struct sv *s);               /* worker and server, no beat (planned handover) */
void sv_kill_all(struct sv *s);                 /* last resort at exit */

/* sv_health.c */
int sv_health_start(struct sv *s);
void sv_health_stop(struct sv *s);
void sv_health_publish(struct sv *s, const char *role); /* synchronous Psv write */
/* The main thread's connection, (re)connected on demand (NULL while Redis is
 * away; a failed attempt is retried after a second). */
redisContext *sv_main_rc(struct sv *s);
/* The peer runs a fresh stack (a primary we must not fight). */
bool sv_peer_fresh_master(struct sv *s, char *who, size_t n, int64_t *ts);
bool sv_peer_ready_backup(struct sv *s, char *who, size_t n);
int64_t sv_fresh_ms(const struct tconf *c);

/* sv_events.c */
int64_t sv_events_db_max_epoch(struct sv *s); /* -1 if MariaDB was never read */
int sv_events_start(struct sv *s);
void sv_events_stop(struct sv *s);
void sv_event(struct sv *s, const char *from, const char *to, const char *cause, int64_t epoch);

/* sv_ctl.c */
int sv_ctl_open(struct sv *s);
void sv_ctl_accept(struct sv *s);
/* The web console's switchover request left in Redis (<prefix>sv:switchover). */
void sv_ctl_console_request(struct sv *s);
void sv_ctl_close(struct sv *s);

/* sv_main.c: role changes that the control socket may ask for */
void sv_handover(struct sv *s, const char *why);
void sv_set_maint(struct sv *s, bool on);
void sv_track_update(struct sv *s);

#endif
