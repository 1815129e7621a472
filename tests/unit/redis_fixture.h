/* A real redis-server on a unix socket in a temp dir, for unit tests of
 * code that talks to Redis (cmocka group setup/teardown). When redis-server
 * is not installed, the fixture's rc stays NULL and the tests skip. */
#ifndef TANDEM_TEST_REDIS_FIXTURE_H
#define TANDEM_TEST_REDIS_FIXTURE_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "rds.h"

struct redis_fixture {
    char dir[64];
    pid_t pid;
    struct tconf conf;
    redisContext *rc;
};

static int redis_up(void **state)
{
    static struct redis_fixture f;
    memset(&f, 0, sizeof(f));
    *state = &f;
    if (access("/usr/bin/redis-server", X_OK) != 0)
        return 0; /* tests skip */
    snprintf(f.dir, sizeof(f.dir), "/tmp/tandem-common-redis-XXXXXX");
    if (mkdtemp(f.dir) == NULL)
        return -1;
    tconf_defaults(&f.conf);
    snprintf(f.conf.redis_socket, sizeof(f.conf.redis_socket), "%s/redis.sock", f.dir);
    snprintf(f.conf.redis_prefix, sizeof(f.conf.redis_prefix), "ut:");
    f.conf.task_ttl = 600;
    f.conf.sync_task_ttl = 120;
    f.pid = fork();
    if (f.pid == 0) {
        execl("/usr/bin/redis-server", "redis-server", "--port", "0", "--unixsocket",
              f.conf.redis_socket, "--dir", f.dir, "--save", "", "--appendonly", "no", "--loglevel",
              "warning", "--logfile", "redis.log", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100; i++) {
        char *err = NULL;
        f.rc = rds_connect(&f.conf, 2000, &err);
        if (f.rc)
            return 0;
        free(err);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int redis_down(void **state)
{
    struct redis_fixture *f = *state;
    if (f->rc)
        redisFree(f->rc);
    if (f->pid > 0) {
        kill(f->pid, SIGTERM);
        waitpid(f->pid, NULL, 0);
    }
    if (f->dir[0]) {
        char sock[300];
        snprintf(sock, sizeof(sock), "%s/redis.sock", f->dir);
        unlink(sock);
        snprintf(sock, sizeof(sock), "%s/redis.log", f->dir);
        unlink(sock);
        rmdir(f->dir);
    }
    return 0;
}

#endif
