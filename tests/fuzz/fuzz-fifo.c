/* Fuzz the supervisor's keepalived notify-fifo reader (failover/sv_fifo.c):
 * any byte stream is split into lines by sv_linebuf_feed() (in chunks the
 * input chooses) and each line goes through sv_fifo_parse(), which must
 * accept it with a well-formed message or refuse it with a reason.
 * libFuzzer:  clang -fsanitize=fuzzer,address -DFUZZ_LIBFUZZER ...
 * Replay:     fuzz-fifo FILE...   (plain main, for CI regression runs) */
#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv_fifo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void on_line(void *arg, const char *line, int overlong)
{
    int *lines = arg;
    (*lines)++;
    size_t n = strlen(line);
    assert(n < SV_LINEBUF);
    assert(strchr(line, '\n') == NULL);
    if (overlong) {
        assert(n == 0);
        return;
    }
    struct sv_fifo_msg m;
    char err[128] = "";
    if (sv_fifo_parse(line, &m, err, sizeof err) != 0) {
        assert(err[0] != '\0');
        return;
    }
    assert(strcmp(m.kind, "INSTANCE") == 0 || strcmp(m.kind, "GROUP") == 0);
    assert(m.name[0] != '\0' && strchr(m.name, '"') == NULL);
    assert(m.word[0] != '\0');
    for (const char *w = m.word; *w; w++)
        assert(isupper((unsigned char)*w) || *w == '_');
    assert(m.priority == -1 || (m.priority >= 0 && m.priority <= 255));
    /* The state is the word's, and names back to it. */
    if (m.state != SV_VRRP_NONE)
        assert(strcmp(sv_vrrp_name(m.state), m.word) == 0);
    else
        assert(strcmp(m.word, "MASTER") && strcmp(m.word, "BACKUP") && strcmp(m.word, "FAULT") &&
               strcmp(m.word, "STOP") && strcmp(m.word, "DELETED"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The first byte sets the chunk size, as read() may split the stream
     * anywhere; the same bytes fed whole must give the same line count. */
    if (size == 0)
        return 0;
    size_t chunk = (size_t)data[0] % 64 + 1;
    data++;
    size--;
    struct sv_linebuf a = {.len = 0}, b = {.len = 0};
    int la = 0, lb = 0;
    for (size_t off = 0; off < size; off += chunk)
        sv_linebuf_feed(&a, (const char *)data + off, size - off < chunk ? size - off : chunk,
                        on_line, &la);
    sv_linebuf_feed(&b, (const char *)data, size, on_line, &lb);
    assert(la == lb);
    assert(a.len == b.len && a.overlong == b.overlong);
    return 0;
}

#include "fuzz_replay.h"
