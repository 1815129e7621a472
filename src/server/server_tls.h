/* HTTPS for tandem-server (server_tls.c). */
#ifndef TANDEM_SERVER_TLS_H
#define TANDEM_SERVER_TLS_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "tlscert.h"

/* Reads server.tls_cert/tls_key (and tls_client_ca) and checks them: the
 * key matches, the chain parses, the priority string is valid. Called before
 * the listener starts. 0 (also when TLS is off) or -1 with *err. */
int srv_tls_init(const struct tconf *c, char **err);
bool srv_tls_enabled(void);

/* SIGHUP: read the files again and serve the new certificate to new
 * handshakes. On error the old one stays in service. */
int srv_tls_reload(char **err);

/* New credentials from memory (the supervisor hands root-only keys over). */
int srv_tls_load_pem(const struct tls_pem *p, char **err);

/* Adds the MHD options (cert callback, priorities, client trust) to ops;
 * returns how many. */
int srv_tls_mhd_options(struct MHD_OptionItem *ops, int max);

/* Mutual TLS: a client CA is configured, and this connection presented a
 * certificate that verifies against it (1), or not (0, why says what). */
bool srv_tls_client_required(void);
int srv_tls_client_ok(struct MHD_Connection *conn, char *why, size_t whyn);

/* SHA-256 of the served leaf certificate, "" when TLS is off. */
const char *srv_tls_fingerprint(void);

#endif
