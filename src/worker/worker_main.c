/* tandem-worker: runs published Python functions from the queues.
 * docs/INTERNALS.md "Worker consumption"; structure in worker.h. */
#include "worker.h"

#include "cli.h"
#include "config.h"
#include "log.h"

int main(int argc, char **argv)
{
    struct cli_opts opts;
    struct tconf conf;
    struct wopts w;

    cli_parse(&opts, argc, argv, "tandem-worker", NULL);
    cli_load_config(&conf, &opts, "tandem-worker");
    w.conf = &conf;
    w.epoch = opts.epoch;
    w.supervised = opts.epoch >= 0;
    return pool_run(&w);
}
