/* Parsing keepalived's notify fifo lines. */
#include "sv_fifo.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *word;
    enum sv_vrrp state;
} vrrp_words[] = {
    {"MASTER", SV_VRRP_MASTER}, {"BACKUP", SV_VRRP_BACKUP},   {"FAULT", SV_VRRP_FAULT},
    {"STOP", SV_VRRP_STOP},     {"DELETED", SV_VRRP_DELETED},
};

const char *sv_vrrp_name(enum sv_vrrp s)
{
    for (size_t i = 0; i < sizeof(vrrp_words) / sizeof(vrrp_words[0]); i++)
        if (vrrp_words[i].state == s)
            return vrrp_words[i].word;
    return "NONE";
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Copies a bare word [A-Z_] into out. Returns the end, or NULL if empty/too long. */
static const char *take_word(const char *p, char *out, size_t n)
{
    size_t i = 0;
    while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
        if (i + 1 >= n)
            return NULL;
        out[i++] = *p++;
    }
    out[i] = '\0';
    return i ? p : NULL;
}

int sv_fifo_parse(const char *line, struct sv_fifo_msg *m, char *err, size_t errn)
{
    memset(m, 0, sizeof(*m));
    m->priority = -1;
    const char *p = skip_ws(line);

    if ((p = take_word(p, m->kind, sizeof(m->kind))) == NULL) {
        snprintf(err, errn, "empty line or overlong first word");
        return -1;
    }
    if (strcmp(m->kind, "INSTANCE") != 0 && strcmp(m->kind, "GROUP") != 0) {
        snprintf(err, errn, "first word \"%.15s\" is neither INSTANCE nor GROUP", m->kind);
        return -1;
    }
    p = skip_ws(p);
    if (*p != '"') {
        snprintf(err, errn, "name after %s is not quoted", m->kind);
        return -1;
    }
    p++;
    const char *q = strchr(p, '"');
    if (q == NULL) {
        snprintf(err, errn, "missing closing quote after the name");
        return -1;
    }
    if ((size_t)(q - p) == 0 || (size_t)(q - p) >= sizeof(m->name)) {
        snprintf(err, errn, "name is empty or longer than %zu bytes", sizeof(m->name) - 1);
        return -1;
    }
    memcpy(m->name, p, (size_t)(q - p));
    m->name[q - p] = '\0';
    p = skip_ws(q + 1);

    if ((p = take_word(p, m->word, sizeof(m->word))) == NULL) {
        snprintf(err, errn, "missing state after \"%s\"", m->name);
        return -1;
    }
    m->state = SV_VRRP_NONE;
    for (size_t i = 0; i < sizeof(vrrp_words) / sizeof(vrrp_words[0]); i++)
        if (strcmp(m->word, vrrp_words[i].word) == 0)
            m->state = vrrp_words[i].state;
    for (const char *w = m->word; *w; w++)
        if (!isupper((unsigned char)*w) && *w != '_') {
            snprintf(err, errn, "state word \"%s\" is not upper case", m->word);
            return -1;
        }

    p = skip_ws(p);
    if (*p && *p != '\n' && *p != '\r') {
        char *end;
        long prio = strtol(p, &end, 10);
        if (end == p || prio < 0 || prio > 255) {
            snprintf(err, errn, "priority \"%.16s\" is not a number 0..255", p);
            return -1;
        }
        p = skip_ws(end);
        if (*p && *p != '\n' && *p != '\r') {
            snprintf(err, errn, "trailing bytes after the priority");
            return -1;
        }
        m->priority = (int)prio;
    }
    return 0;
}

void sv_linebuf_feed(struct sv_linebuf *lb, const char *data, size_t n,
                     void (*on_line)(void *arg, const char *line, int overlong), void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char ch = data[i];
        if (ch == '\n') {
            if (lb->overlong) {
                on_line(arg, "", 1);
            } else {
                lb->buf[lb->len] = '\0';
                on_line(arg, lb->buf, 0);
            }
            lb->len = 0;
            lb->overlong = 0;
            continue;
        }
        if (lb->overlong)
            continue;
        if (lb->len + 1 >= sizeof(lb->buf)) {
            lb->overlong = 1;
            lb->len = 0;
            continue;
        }
        lb->buf[lb->len++] = ch;
    }
}
