#ifndef TANDEM_IDS_H
#define TANDEM_IDS_H

#include <stddef.h>
#include <stdbool.h>

#define ID_MAX 64

/* prefix + 24 lowercase hex chars from getrandom(2), e.g. "task-3f9a...".
 * Prefixes in use: "task-", "sapi-", "aapi-", "cron-", "ak-". */
void id_new(char *buf, size_t n, const char *prefix);
/* Random secret for access keys: "tk_" + 40 hex chars. */
void secret_new(char *buf, size_t n);

/* Func id "<set>__<script>.<func>": each part [A-Za-z0-9_], set and script
 * non-empty and without "__" inside the set. Splits into the given buffers
 * (any may be NULL). Returns true if valid. */
bool func_id_split(const char *func_id, char *set, size_t setn, char *script_id, size_t scriptn,
                   char *func, size_t funcn);
/* Script id "<set>__<name>" validity (same character rules). */
bool script_id_valid(const char *script_id);
/* Generic id check for ids that appear in URLs/keys: [A-Za-z0-9_.-]{1,ID_MAX-1}. */
bool id_valid(const char *id);

#endif
