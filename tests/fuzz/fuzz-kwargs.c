/* Fuzz request -> kwargs of the Sync/Async APIs: a request body under one of
 * the content types DFF reads (JSON, form, text, anything else), then DFF's
 * fixed-kwargs rule (api_kwargs_merge). Any bytes must give either an
 * object (one key, "text" or "base64", for a raw body), or no object and an
 * answered 400/500; the merge either refuses exactly a fixed key the caller
 * sent, or leaves every key the caller sent with the caller's value.
 * Input: byte 0 picks the Content-Type, the rest is the body.
 * libFuzzer:  bench/fuzz kwargs      Replay: fuzz-kwargs FILE... */
#include <assert.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const content_types[] = {"application/json",
                                            "application/x-www-form-urlencoded; charset=utf-8",
                                            "text/plain",
                                            "application/octet-stream",
                                            "application/vnd.api+json",
                                            NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *ct = content_types[data[0] % (sizeof content_types / sizeof content_types[0])];
    struct srv_req r;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.path = "/api/v1/async/fuzz";
    r.body_len = size - 1;
    r.body = malloc(r.body_len + 1);
    if (!r.body)
        return 0;
    memcpy(r.body, data + 1, r.body_len);
    r.body[r.body_len] = '\0';

    bool raw = false;
    json_t *in = api_body_data(&r, ct, &raw);
    if (!in) {
        assert(r.answered && (r.status == 400 || r.status == 500));
    } else {
        assert(json_is_object(in) && !r.answered);
        if (raw)
            assert(json_object_size(in) == 1 && (json_is_string(json_object_get(in, "text")) ||
                                                 json_is_string(json_object_get(in, "base64"))));
        json_t *base = json_pack("{s:i,s:s}", "fixed", 1, "free", "INPUT_BY_CALLER");
        const char *bad = NULL;
        if (api_kwargs_merge(base, in, &bad) != 0) {
            assert(bad && strcmp(bad, "fixed") == 0 && json_object_get(in, "fixed"));
        } else {
            assert(!json_object_get(in, "fixed"));
            const char *k;
            json_t *v;
            json_object_foreach(in, k, v) assert(json_equal(json_object_get(base, k), v));
            assert(json_object_get(base, "free") ? json_object_get(in, "free") != NULL : true);
        }
        json_decref(base);
        json_decref(in);
    }
    if (r.resp)
        MHD_destroy_response(r.resp);
    free(r.body);
    return 0;
}

#include "fuzz_replay.h"
