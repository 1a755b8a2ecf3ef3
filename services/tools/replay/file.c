/*
 * `patron-replay file`: produces a file of length-prefixed events (uint32
 * big-endian length + patron.v1.Event bytes, as `--out` writes them), so that
 * a benchmark measures the consumer, not the generator. The key of each
 * message is its event's customer_id, read from the bytes (parse.h); a
 * record that is not a keyable event (what `--garbage` wrote) is counted as
 * garbage and keyed garbage-<i>, as when it was generated.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "replay.h"

/* 1: a record in buf; 0: clean end of file; < 0: error (reported). */
static int read_record(FILE *in, const char *path, uint64_t index, uint8_t *buf, size_t *len)
{
    uint8_t head[4];
    size_t got = fread(head, 1, sizeof(head), in);
    if (got == 0 && feof(in))
        return 0;
    if (got != sizeof(head))
        goto out_truncated;
    *len = (size_t)head[0] << 24 | (size_t)head[1] << 16 | (size_t)head[2] << 8 | head[3];
    if (*len > REPLAY_MESSAGE_MAX) {
        fprintf(stderr, "patron-replay: %s: record %" PRIu64 " claims %zu bytes, more than %zu\n",
                path, index, *len, REPLAY_MESSAGE_MAX);
        return PATRON_ETOOBIG;
    }
    if (fread(buf, 1, *len, in) != *len)
        goto out_truncated;
    return 1;

out_truncated:
    fprintf(stderr, "patron-replay: %s: record %" PRIu64 " is cut short%s%s\n", path, index,
            ferror(in) ? ": " : "", ferror(in) ? strerror(errno) : "");
    return PATRON_EIO;
}

int replay_file(const struct replay_options *o)
{
    FILE *in = fopen(o->in_path, "rb");
    if (!in) {
        fprintf(stderr, "patron-replay: %s: %s\n", o->in_path, strerror(errno));
        return 1;
    }
    int exit_code = 1;
    struct replay_sink sink;
    struct replay_emitter em;
    if (replay_sink_open(&sink, o, true) < 0)
        goto out_close_in;
    replay_emitter_init(&em, &sink, o, true);
    uint8_t *buf = patron_malloc(REPLAY_MESSAGE_MAX);

    int rc;
    size_t len;
    for (uint64_t i = 0; (rc = read_record(in, o->in_path, i, buf, &len)) > 0; i++) {
        const char *key;
        size_t key_len;
        if (replay_event_key(buf, len, &key, &key_len) == 0) {
            rc = replay_emit(&em, key, key_len, buf, len);
        } else {
            char gkey[32];
            int n = snprintf(gkey, sizeof(gkey), "garbage-%" PRIu64, em.garbage);
            rc = replay_sink_put(&sink, gkey, (size_t)n, buf, len);
            em.garbage += rc == 0;
        }
        if (rc < 0)
            break;
    }
    if (rc == 0)
        rc = replay_emitter_finish(&em);
    int close_rc = replay_sink_close(&sink, o->flush_timeout_ms);
    if (rc == 0 && close_rc == 0) {
        replay_emitter_summary(&em, stdout);
        exit_code = 0;
    }
    free(buf);
    replay_emitter_free(&em);
out_close_in:
    fclose(in);
    return exit_code;
}
