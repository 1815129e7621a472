/* tandemctl user add|passwd|disable|enable NAME: console users, straight in
 * MariaDB (like `key create --bootstrap`), so the first administrator can
 * be made before anyone can sign in. The password is read from stdin (one
 * line), never from the command line where `ps` would show it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis.h>
#include "ctl.h"
#include "db.h"
#include "ids.h"
#include "rds.h"
#include "userpw.h"

static int read_password(char *buf, size_t n)
{
    if (!fgets(buf, (int)n, stdin)) {
        fprintf(stderr, "tandemctl user: no password on stdin (one line expected)\n");
        return -1;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!*buf) {
        fprintf(stderr, "tandemctl user: the password is empty\n");
        return -1;
    }
    return 0;
}

/* Sessions of a user end when its password changes or it is disabled. */
static void drop_sessions(struct ctl *c, const char *uid)
{
    char *err = NULL, key[320];
    redisContext *rc = rds_connect(&c->conf, 5000, &err);
    if (!rc) {
        fprintf(stderr,
                "tandemctl user: Redis unreachable (%s): sessions signed in stay until "
                "they expire\n",
                err ? err : "?");
        free(err);
        return;
    }
    snprintf(key, sizeof key, "%sauth:user:%s", c->conf.redis_prefix, uid);
    redisReply *r = redisCommand(rc, "SMEMBERS %s", key);
    if (r && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++) {
            redisReply *d =
                redisCommand(rc, "DEL %sauth:token:%s", c->conf.redis_prefix, r->element[i]->str);
            if (d)
                freeReplyObject(d);
        }
    if (r)
        freeReplyObject(r);
    r = redisCommand(rc, "DEL %s", key);
    if (r)
        freeReplyObject(r);
    redisFree(rc);
}

int ctl_user_main(struct ctl *c, int argc, char **argv)
{
    static const char *usage =
        "usage: tandemctl user add USERNAME [--role sa|admin|user|readonlyUser|customUser] | "
        "user passwd|disable|enable USERNAME (add and passwd read the password from stdin; "
        "sa and admin administer, the other roles may only call funcs and APIs)";
    /* DFF's role names (server/privilege.yaml); the default is the first */
    static const char *const roles[] = {"sa", "admin", "user", "readonlyUser", "customUser"};
    const char *role = roles[0];
    bool role_ok = true;
    if (argc == 4 && !strcmp(argv[0], "add") && !strcmp(argv[2], "--role")) {
        role = argv[3];
        role_ok = false;
        for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
            role_ok |= !strcmp(role, roles[i]);
        argc = 2;
    }
    if (argc != 2 || !id_valid(argv[1]) || !role_ok) {
        if (!role_ok)
            fprintf(stderr, "tandemctl user add: unknown role '%s'\n", role);
        fprintf(stderr, "%s\n", usage);
        return CTL_USAGE;
    }
    const char *sub = argv[0], *name = argv[1];
    bool add = !strcmp(sub, "add"), pw = add || !strcmp(sub, "passwd");
    bool dis = !strcmp(sub, "disable"), en = !strcmp(sub, "enable");
    if (!pw && !dis && !en) {
        fprintf(stderr, "tandemctl user: unknown subcommand '%s'\n%s\n", sub, usage);
        return CTL_USAGE;
    }
    if (!c->have_conf) {
        fprintf(stderr, "tandemctl user: needs a config file (-c) to reach MariaDB\n");
        return CTL_USAGE;
    }
    char pass[256], *hash = NULL;
    if (pw) {
        if (read_password(pass, sizeof pass) != 0)
            return CTL_USAGE;
        hash = userpw_hash(pass);
        memset(pass, 0, sizeof pass);
        if (!hash) {
            fprintf(stderr, "tandemctl user: cannot hash the password\n");
            return CTL_REFUSED;
        }
    }
    char *err = NULL;
    MYSQL *m = db_connect(&c->conf, 10, &err);
    if (!m) {
        fprintf(stderr, "tandemctl user %s: %s\n", sub, err ? err : "cannot connect to MariaDB");
        free(err);
        free(hash);
        return CTL_UNREACHABLE;
    }
    int ret = CTL_OK;
    char uid[ID_MAX] = "";
    char *qn = db_q(m, name), *qh = hash ? db_q(m, hash) : NULL;
    MYSQL_RES *res = db_query(m, &err, "SELECT id FROM user WHERE username = %s", qn);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (row)
        snprintf(uid, sizeof uid, "%s", row[0]);
    if (res)
        mysql_free_result(res);
    if (!res) {
        fprintf(stderr, "tandemctl user %s: %s\n", sub, err ? err : "query failed");
        ret = CTL_REFUSED;
    } else if (add && uid[0]) {
        fprintf(stderr, "tandemctl user add: user '%s' exists (use user passwd)\n", name);
        ret = CTL_REFUSED;
    } else if (!add && !uid[0]) {
        fprintf(stderr, "tandemctl user %s: no user '%s'\n", sub, name);
        ret = CTL_REFUSED;
    } else if (add) {
        id_new(uid, sizeof uid, "u-");
        char *qid = db_q(m, uid);
        if (db_exec(m, &err,
                    "INSERT INTO user (id, username, password_hash, name, roles_json) "
                    "VALUES (%s, %s, %s, %s, '[\"%s\"]')",
                    qid, qn, qh, qn, role) != 0)
            ret = CTL_REFUSED;
        free(qid);
    } else {
        char *qid = db_q(m, uid);
        if (pw ? db_exec(m, &err,
                         "UPDATE user SET password_hash = %s, updated_at = NOW(3) WHERE id = %s",
                         qh, qid)
               : db_exec(m, &err,
                         "UPDATE user SET is_disabled = %d, updated_at = NOW(3) WHERE id = %s",
                         dis ? 1 : 0, qid))
            ret = CTL_REFUSED;
        free(qid);
    }
    if (ret == CTL_REFUSED && err)
        fprintf(stderr, "tandemctl user %s: %s\n", sub, err);
    free(err);
    free(qn);
    free(qh);
    free(hash);
    mysql_close(m);
    if (ret != CTL_OK)
        return ret;
    if (!add && !en)
        drop_sessions(c, uid);
    if (c->json)
        printf("{\"id\":\"%s\",\"username\":\"%s\",\"done\":\"%s\"}\n", uid, name, sub);
    else
        printf("%s %s (%s)\n", sub, name, uid);
    return CTL_OK;
}
