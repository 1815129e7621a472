#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "log.h"

static void usage(FILE *f, const char *prog, const char *usage_extra)
{
    fprintf(f,
            "usage: %s [-c FILE] [--check-config] [--epoch N] [-d] [--version] [-h]\n"
            "  -c, --config FILE   configuration file (default $TANDEM_CONFIG, else %s)\n"
            "      --check-config  load and validate the configuration, then exit\n"
            "      --epoch N       the epoch the supervisor started this stack in\n"
            "  -d, --debug         log at debug level\n"
            "      --version       print the version and exit\n"
            "  -h, --help          this help\n",
            prog, TANDEM_DEFAULT_CONFIG);
    if (usage_extra && usage_extra[0])
        fprintf(f, "%s%s", usage_extra, usage_extra[strlen(usage_extra) - 1] == '\n' ? "" : "\n");
}

void cli_parse(struct cli_opts *o, int argc, char **argv, const char *prog, const char *usage_extra)
{
    enum { OPT_CHECK = 256, OPT_EPOCH, OPT_VERSION };
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"epoch", required_argument, NULL, OPT_EPOCH},
        {"debug", no_argument, NULL, 'd'},
        {"version", no_argument, NULL, OPT_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *env = getenv("TANDEM_CONFIG");

    o->config_path = (env && env[0]) ? env : TANDEM_DEFAULT_CONFIG;
    o->check_config = false;
    o->epoch = -1;
    o->log_level = -1;

    optind = 1; /* callable more than once (tests) */
    int ch;
    while ((ch = getopt_long(argc, argv, "c:dh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            o->config_path = optarg;
            break;
        case OPT_CHECK:
            o->check_config = true;
            break;
        case OPT_EPOCH: {
            char *end;
            long long v = strtoll(optarg, &end, 10);
            if (optarg[0] == '\0' || *end != '\0' || v < 0) {
                fprintf(stderr, "%s: --epoch: \"%s\" is not a non-negative integer\n", prog,
                        optarg);
                exit(2);
            }
            o->epoch = v;
            break;
        }
        case 'd':
            o->log_level = LOG_LVL_DEBUG;
            break;
        case OPT_VERSION:
            printf("%s (tandem) %s\n", prog, TANDEM_VERSION);
            exit(0);
        case 'h':
            usage(stdout, prog, usage_extra);
            exit(0);
        default:
            usage(stderr, prog, usage_extra);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\n", prog, argv[optind]);
        usage(stderr, prog, usage_extra);
        exit(2);
    }
}

void cli_load_config(struct tconf *c, const struct cli_opts *o, const char *prog)
{
    char *err = NULL;
    int rc = tconf_load(c, o->config_path, &err);

    if (o->check_config) {
        if (rc == 0)
            printf("%s: %s: ok\n", prog, o->config_path);
        else
            fprintf(stderr, "%s\n", err);
        free(err);
        exit(rc == 0 ? 0 : 1);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: bad configuration:\n%s\n", prog, err);
        free(err);
        exit(1);
    }
    int level = o->log_level >= 0 ? o->log_level : log_level_parse(c->log_level);
    log_init(prog, (enum log_level)level, c->log_syslog);
}
