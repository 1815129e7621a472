/* tandem-server: the HTTP API. main() reads as a table of contents. */
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "rds.h"
#include "server_int.h"
#include "server_tls.h"

static void init_epoch(int64_t cli_epoch)
{
    if (cli_epoch >= 0) {
        S.epoch = cli_epoch;
        S.epoch_known = true;
        return;
    }
    char *err = NULL;
    redisContext *rc = rds_connect(&S.conf, 2000, &err);
    if (!rc) {
        log_warnx("redis unreachable at start (%s): the epoch is read once it is back",
                  err ? err : "?");
        free(err);
        return;
    }
    epoch_read(rc);
    redisFree(rc);
}

static int init(const struct cli_opts *o)
{
    if (o->epoch >= 0) {
        /* started by the supervisor: never outlive it */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            return -1;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, S.conf.server_listen, &a) != 1) {
        log_err("server.listen '%s' is not an IPv4 address", S.conf.server_listen);
        return -1;
    }
    char rnd[ID_MAX];
    id_new(rnd, sizeof rnd, "");
    rnd[8] = '\0';
    snprintf(S.id, sizeof S.id, "%.64s:%d:%.8s", S.conf.node_name, (int)getpid(), rnd);
    init_epoch(o->epoch);
    pthread_mutex_init(&S.cache_mu, NULL);
    pthread_cond_init(&S.cache_cv, NULL);
    pthread_mutex_init(&S.kick_mu, NULL);
    pthread_cond_init(&S.kick_cv, NULL);
    pthread_mutex_init(&S.pend_mu, NULL);
    S.cache = cache_new_empty();
    backend_init();
    mysql_library_init(0, NULL, NULL);

    /* every thread started from here on inherits the blocked set; main sigwaits */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (pthread_create(&S.housekeeper, NULL, housekeeper_main, NULL) != 0 ||
        pthread_create(&S.dispatcher, NULL, dispatcher_main, NULL) != 0 || health_start() != 0 ||
        journal_start() != 0) {
        log_err("cannot start threads");
        return -1;
    }
    char *tls_err = NULL;
    if (srv_tls_init(&S.conf, &tls_err) != 0) {
        log_err("tls: %s", tls_err);
        free(tls_err);
        return -1;
    }
    if (http_start() != 0)
        return -1;
    log_info("server %s up, epoch %lld", S.id, (long long)S.epoch);
    return 0;
}

/* The dispatcher sits in BLPOP for up to 1 s; an empty entry on its list
 * returns it at once, so a demoted node's server exits in milliseconds. */
static void wake_dispatcher(void)
{
    char key[256], *err = NULL;
    redisContext *rc = rds_connect(&S.conf, 500, &err);
    if (rc == NULL) {
        free(err);
        return; /* Redis gone: BLPOP fails by itself */
    }
    rds_key(key, sizeof key, &S.conf, "reply:%s", srv_id());
    redisAppendCommand(rc, "LPUSH %s %b", key, "", (size_t)0);
    redisAppendCommand(rc, "EXPIRE %s 60", key);
    for (int i = 0; i < 2; i++) {
        redisReply *rep = NULL;
        if (redisGetReply(rc, (void **)&rep) != REDIS_OK)
            break;
        freeReplyObject(rep);
    }
    redisFree(rc);
}

/* Drain: stop accepting, let waiting calls finish (bounded), answer the
 * rest, then stop the threads.
 *
 * A planned handover sends SIGTERM after the VIP has moved; connections
 * still arriving come from clients whose ARP entry is stale. Closing the
 * listening socket resets every connection in its accept queue, so it stays
 * open until none came for ACCEPT_QUIET_MS (at most ACCEPT_LINGER_MS).
 * Then the drain waits for requests in flight AND for connections accepted
 * whose request has not arrived yet (over TLS the handshake alone takes two
 * round trips and the server's signature): stopping with one of those open
 * fails a call that was never counted as one. */
#define ACCEPT_QUIET_MS 200
#define ACCEPT_LINGER_MS 1000

static void shutdown_gracefully(void)
{
    int64_t linger_end = mono_ms() + ACCEPT_LINGER_MS;
    while (mono_ms() < linger_end && mono_ms() - http_last_accept() < ACCEPT_QUIET_MS)
        usleep(20 * 1000);
    http_quiesce();
    int grace_ms = (S.conf.fo_drain_grace > 0 ? S.conf.fo_drain_grace : 10) * 1000;
    int64_t end = mono_ms() + grace_ms;
    while (mono_ms() < end && (atomic_load(&S.inflight) > 0 || http_fresh_connections() > 0))
        usleep(20 * 1000);
    dispatcher_expire_all("EWorkerNoResponse", "the server is shutting down");
    end = mono_ms() + 2000;
    while (mono_ms() < end && atomic_load(&S.inflight) > 0)
        usleep(20 * 1000);
    journal_stop(); /* the calls still waiting for their accept record */
    S.stop = 2;
    wake_dispatcher();
    pthread_mutex_lock(&S.kick_mu);
    pthread_cond_signal(&S.kick_cv);
    pthread_mutex_unlock(&S.kick_mu);
    pthread_join(S.dispatcher, NULL);
    pthread_join(S.housekeeper, NULL);
    health_stop();
    http_stop();
}

static int run(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        int sig = 0;
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            /* the certificate (systemctl reload); everything else follows gen */
            char *err = NULL;
            if (srv_tls_reload(&err) == -1)
                log_warnx("tls reload: %s; the previous certificate stays in service", err);
            free(err);
            continue;
        }
        log_info("signal %d: stopping (in flight: %d)", sig, atomic_load(&S.inflight));
        S.stop = 1;
        shutdown_gracefully();
        log_info("stopped");
        return 0;
    }
}

int main(int argc, char **argv)
{
    struct cli_opts o;
    cli_parse(&o, argc, argv, "tandem-server", NULL);
    cli_load_config(&S.conf, &o, "tandem-server");
    if (init(&o) != 0)
        return 1;
    return run();
}
