/* Fuzz tconf_load(): any file must load or fail with "PATH..." problems,
 * never crash; a file that loads must dump to a file that loads again.
 * libFuzzer:  clang -fsanitize=fuzzer,address -DFUZZ_LIBFUZZER ...
 * Replay:     fuzz-config FILE...   (plain main, for CI regression runs) */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* libconfig reads from a path, so each input goes through a temp file;
 * @include is neutralised so the fuzzer cannot read arbitrary files. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/tandem-common-fuzz-XXXXXX";
    int fd = mkstemp(path);
    if (fd == -1)
        return 0;
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL) {
        close(fd);
        unlink(path);
        return 0;
    }
    memcpy(copy, data, size);
    for (size_t i = 0; i < size; i++)
        if (copy[i] == '@')
            copy[i] = '#';
    if (write(fd, copy, size) != (ssize_t)size) {
        free(copy);
        close(fd);
        unlink(path);
        return 0;
    }
    free(copy);
    close(fd);

    struct tconf c, d;
    char *err = NULL;
    if (tconf_load(&c, path, &err) == 0) {
        assert(err == NULL);
        FILE *f = fopen(path, "w");
        if (f) {
            tconf_dump(&c, f);
            fclose(f);
            int rc = tconf_load(&d, path, &err);
            if (rc != 0)
                fprintf(stderr, "dump does not load back: %s\n", err);
            assert(rc == 0);
        }
    } else {
        assert(err != NULL && strncmp(err, path, strlen(path)) == 0);
        free(err);
    }
    unlink(path);
    return 0;
}

#include "fuzz_replay.h"
