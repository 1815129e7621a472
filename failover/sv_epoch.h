/* The fencing epoch in Redis: taken on promotion, never backwards. */
#ifndef TANDEM_SV_EPOCH_H
#define TANDEM_SV_EPOCH_H

#include <stddef.h>
#include <stdint.h>
#include <hiredis.h>

/* A new epoch, in one step: max(value at key, floor) + 1, stored at key.
 * floor is every epoch known to have been used (what this node saw, and
 * failover_event's highest): a Redis that lost writes (restarted without its
 * append-only file, restored from a snapshot) then never hands out an epoch
 * that was already used. Returns it, or -1 with a reason in err. */
int64_t sv_epoch_take(redisContext *rc, const char *key, int64_t floor, char *err, size_t errn);

/* The primary's repair: if the value at key is below `to`, set it to `to`.
 * Returns the value found when it raised it, -1 when nothing was to do, or
 * -2 with a reason in err. */
int64_t sv_epoch_raise(redisContext *rc, const char *key, int64_t to, char *err, size_t errn);

#endif
