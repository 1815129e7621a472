/* The command line every daemon shares: -c FILE, --version, --check-config,
 * --epoch N, -h/--help. main() reads as a table of contents:
 *     cli_parse(); cli_load_config(); init; run. */
#ifndef TANDEM_CLI_H
#define TANDEM_CLI_H

#include <stdint.h>
#include <stdbool.h>
#include "config.h"

struct cli_opts {
    const char *config_path; /* -c FILE, default TANDEM_DEFAULT_CONFIG or $TANDEM_CONFIG */
    bool check_config;       /* --check-config */
    int64_t epoch;           /* --epoch N (stack processes, from the supervisor); -1 if absent */
    int log_level;           /* -d / --debug forces debug; -1 otherwise */
};

/* Parses argv. Handles --version and --help itself (prints, exit 0); an
 * unknown option prints usage to stderr and exits 2. */
void cli_parse(struct cli_opts *o, int argc, char **argv, const char *prog,
               const char *usage_extra);

/* Loads the config; with --check-config prints "PROG: FILE: ok" or each
 * problem and exits 0/1. Otherwise on error prints the problems and exits 1.
 * Then log_init(prog, level, syslog). */
void cli_load_config(struct tconf *c, const struct cli_opts *o, const char *prog);

#endif
