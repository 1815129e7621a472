/* tandemctl doctor's HTTPS checks (ctl_doctor_tls.c). */
#ifndef TANDEM_CTL_DOCTOR_TLS_H
#define TANDEM_CTL_DOCTOR_TLS_H

#include "config.h"

/* verdict: 0 ok, 1 warn, 2 FAIL; fix may be NULL for ok. */
typedef void (*doctor_report_fn)(void *d, int verdict, const char *check, const char *fix,
                                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

void ctl_doctor_tls(const struct tconf *t, doctor_report_fn report, void *d);

#endif
