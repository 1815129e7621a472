/* The planned handover's relay: for a while after the VIP moves, packets of
 * connections the new primary does not know (they began on the old one
 * just before the move) are passed on to the old primary instead of being
 * reset. */
#ifndef TANDEM_SV_RELAY_H
#define TANDEM_SV_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"

#define SV_RELAY_TABLE "tandem_relay"

/* The peer's IPv4 address for the relay: failover.peer (an address or a
 * name), else the first failover.unicast_peers. 0 or -1 with err. */
int sv_relay_peer(const struct tconf *c, char *ip, size_t n, char *err, size_t errn);

/* The nft script that installs the relay towards peer_ip (an IPv4 address),
 * replacing any earlier one (on = true), or that removes it (on = false).
 * Returns its length, or -1 with err. */
int sv_relay_render(const struct tconf *c, const char *peer_ip, bool on, char *buf, size_t n,
                    char *err, size_t errn);

/* Runs nft with the script; 0 or -1 with err (nft missing, refused). */
int sv_relay_apply(const struct tconf *c, bool on, char *err, size_t errn);

/* Packets relayed so far by the installed relay, -1 if none is (or nft is
 * missing): the log says how many connections it saved. */
long sv_relay_packets(void);

#endif
