/* Fuzz the import of a DFF script-set export (import_collect: the export's
 * META as JSON, as tandemctl import hands it to the server). Any bytes must
 * give either items (each an object with a string id, in a known section),
 * or an answered 400/500; never a crash, a leak or a read past the body.
 * Bytes that are not a JSON object are not an export: the handler refuses
 * them before, so they are skipped here.
 * libFuzzer:  bench/fuzz import      Replay: fuzz-import FILE... */
#include <assert.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *exp = json_loadb((const char *)data, size, 0, NULL);
    if (!json_is_object(exp)) {
        json_decref(exp);
        return 0;
    }
    struct srv_req r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.path = "/api/v1/script-sets/do/import";
    struct import_item *items = NULL;
    size_t n = 0;
    if (import_collect(&r, exp, &items, &n) == 0) {
        assert(!r.answered);
        for (size_t i = 0; i < n; i++) {
            assert(items[i].rs && items[i].section && json_is_object(items[i].item));
            assert(json_is_string(json_object_get(items[i].item, "id")));
            if (strcmp(items[i].section, "scripts") == 0)
                assert(json_object_get(items[i].item, "codeDraft"));
        }
    } else {
        assert(r.answered && (r.status == 400 || r.status == 500));
    }
    free(items);
    if (r.resp)
        MHD_destroy_response(r.resp);
    json_decref(exp);
    return 0;
}

#include "fuzz_replay.h"
