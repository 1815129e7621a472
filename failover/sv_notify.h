/* systemd's notify protocol (READY=1, STOPPING=1, STATUS=...), spoken
 * directly as keepalived does: one datagram to $NOTIFY_SOCKET. */
#ifndef TANDEM_SV_NOTIFY_H
#define TANDEM_SV_NOTIFY_H

/* Sends msg when $NOTIFY_SOCKET is set (a path, or "@name" for an abstract
 * socket); does nothing otherwise. 0 sent or nothing to do, -1 on failure
 * (logged at debug: systemd being away is not the supervisor's problem). */
int sv_notify(const char *msg);

#endif
