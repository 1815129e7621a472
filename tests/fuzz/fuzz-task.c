/* Fuzz task_decode(): any bytes must give either a task whose re-encoding
 * decodes to the same task, or -1 with an error message.
 * libFuzzer:  clang -fsanitize=fuzzer,address -DFUZZ_LIBFUZZER ...
 * Replay:     fuzz-task FILE...   (plain main, for CI regression runs) */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "task.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    struct task t, u;
    char *err = NULL;
    if (task_decode(&t, s, &err) == 0) {
        assert(err == NULL);
        char *enc = task_encode(&t);
        assert(enc != NULL);
        char *err2 = NULL;
        int rc = task_decode(&u, enc, &err2);
        assert(rc == 0);
        assert(strcmp(t.id, u.id) == 0 && strcmp(t.func, u.func) == 0);
        assert(t.timeout == u.timeout && t.origin == u.origin && t.enq_ms == u.enq_ms);
        assert(json_equal(t.kwargs, u.kwargs));
        task_free(&u);
        free(enc);
        task_free(&t);
    } else {
        assert(err != NULL && err[0] != '\0');
        assert(t.kwargs == NULL);
        free(err);
    }
    free(s);
    return 0;
}

#include "fuzz_replay.h"
