/* The plain main() every fuzz target gets (systemd's habit): replays the
 * files named on the command line through LLVMFuzzerTestOneInput, so each
 * corpus case runs as a regression test in ordinary CI. Included at the end
 * of a tests/fuzz/fuzz-<what>.c; libFuzzer builds define FUZZ_LIBFUZZER. */
#ifndef TANDEM_FUZZ_REPLAY_H
#define TANDEM_FUZZ_REPLAY_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_LIBFUZZER
int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 1;
        }
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0, k;
        uint8_t chunk[4096];
        while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0) {
            if (len + k > cap) {
                cap = (len + k) * 2;
                buf = realloc(buf, cap);
                if (buf == NULL)
                    return 1;
            }
            memcpy(buf + len, chunk, k);
            len += k;
        }
        fclose(f);
        LLVMFuzzerTestOneInput(buf ? buf : (const uint8_t *)"", len);
        free(buf);
        printf("%s: ok\n", argv[i]);
    }
    return 0;
}
#endif

#endif
