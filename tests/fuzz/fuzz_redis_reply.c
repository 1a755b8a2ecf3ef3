/*
 * Bytes from Redis: hiredis' reader (the parser every Patron connection
 * uses) fed the input in chunks the input chooses, and every reply it makes
 * handed to each pure consumer of replies Patron has: patron_reply_i64, the
 * RESP splitter, the clock value, the statistics field, and the stored
 * profile, neighbour list and trigger state on string replies.
 *
 * Input: byte 0 is the chunk size (0: everything at once), the rest is the
 * stream. Arrays are capped at 1024 elements and negative counts refused
 * (hiredis 0.14 allocates the element vector that the header announces,
 * before any element arrives, and takes the count as an int: a trusted Redis
 * never sends such headers, and the fuzzer should spend its time on Patron's
 * code, not on calloc).
 *
 * Properties: an accepted integer lies in the asked range; a split command's
 * arguments lie inside the reply; a decoded clock value and statistics field
 * encode back to the same bytes; the stored decoders keep their bounds (their
 * own targets check the rest); nothing leaks.
 */
#include <hiredis/hiredis.h>

#include "fuzz.h"
#include "patron/campaign_state_codec.h"
#include "patron/clock.h"
#include "patron/graph_row.h"
#include "patron/profile_codec.h"
#include "patron/redis.h"
#include "patron/resp.h"
#include "patron/stats_field.h"

#define ARRAY_MAX 1024
#define ARGS_MAX 16

static redisReplyObjectFunctions fns;
static void *(*default_create_array)(const redisReadTask *, int);

static void *create_array_capped(const redisReadTask *task, int elements)
{
    /* a negative count other than -1 (nil, never passed here) is no RESP */
    if (elements < 0 || elements > ARRAY_MAX)
        return NULL; /* the reader reports out of memory: an error, not a crash */
    return default_create_array(task, elements);
}

static void check_i64(const redisReply *r, int64_t min, int64_t max)
{
    int64_t v = 0;
    if (patron_reply_i64(r, min, max, &v) == 0)
        FUZZ_CHECK(v >= min && v <= max &&
                       (r->type == REDIS_REPLY_INTEGER || r->type == REDIS_REPLY_STRING),
                   "patron_reply_i64 gave %lld outside [%lld, %lld] or from type %d", (long long)v,
                   (long long)min, (long long)max, r->type);
}

static void check_split(const char *s, size_t len)
{
    const char *argv[ARGS_MAX];
    size_t lens[ARGS_MAX];
    int n = patron_resp_split(s, len, argv, lens, ARGS_MAX);
    if (n < 0) {
        FUZZ_CHECK(n == PATRON_EINVAL, "patron_resp_split returned %d", n);
        return;
    }
    FUZZ_CHECK(n >= 1, "patron_resp_split found %d arguments", n);
    if ((size_t)n > ARGS_MAX)
        return; /* filled only when it fits */
    for (int i = 0; i < n; i++)
        FUZZ_CHECK(argv[i] >= s && lens[i] <= len && argv[i] + lens[i] <= s + len,
                   "argument %d outside the command", i);
}

static void check_clock(const char *s, size_t len)
{
    struct patron_partition_time t;
    if (patron_clock_value_decode(s, len, &t) != 0)
        return;
    char back[PATRON_CLOCK_VALUE_MAX];
    int n = patron_clock_value_encode(back, sizeof(back), &t);
    FUZZ_CHECK(n >= 0 && (size_t)n == len && memcmp(back, s, len) == 0,
               "clock value \"%.*s\" encodes back as \"%.*s\"", (int)len, s, n > 0 ? n : 0, back);
}

static void check_stats_field(const char *s, size_t len)
{
    char campaign[PATRON_CAMPAIGN_ID_MAX + 1], variant[PATRON_CAMPAIGN_ID_MAX + 1];
    enum patron_stat stat;
    if (patron_stats_field_parse(s, len, campaign, variant, &stat) != 0)
        return;
    char back[PATRON_STATS_FIELD_MAX];
    int n = patron_stats_field_format(back, campaign, variant, stat);
    FUZZ_CHECK(n >= 0 && (size_t)n == len && memcmp(back, s, len) == 0,
               "stats field \"%.*s\" formats back as \"%.*s\"", (int)len, s, n > 0 ? n : 0, back);
}

static void check_stored(const char *s, size_t len)
{
    static struct patron_profile p;
    (void)patron_profile_stored_decode(&p, s, len, NULL);

    static struct patron_graph_cell cells[PATRON_GRAPH_ROW_MAX];
    uint64_t version;
    size_t n = 0;
    if (patron_graph_row_decode(s, len, &version, cells, PATRON_GRAPH_ROW_MAX, &n, NULL) == 0)
        FUZZ_CHECK(n <= PATRON_GRAPH_ROW_MAX, "%zu cells", n);

    static struct patron_customer_state st;
    (void)patron_customer_state_decode(&st, s, len);
    patron_customer_state_free(&st);
}

static void consume(const redisReply *r, int depth)
{
    FUZZ_CHECK(depth < 64, "replies nested deeper than hiredis allows");
    check_i64(r, INT64_MIN, INT64_MAX);
    check_i64(r, 0, 1000);
    switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        FUZZ_CHECK(r->str && r->str[r->len] == '\0', "reply string not NUL-terminated");
        check_split(r->str, r->len);
        check_clock(r->str, r->len);
        check_stats_field(r->str, r->len);
        check_stored(r->str, r->len);
        break;
    case REDIS_REPLY_ARRAY:
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i])
                consume(r->element[i], depth + 1);
        break;
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t ignored;
    FUZZ_CHECK(patron_reply_i64(NULL, 0, 1, &ignored) == PATRON_EINVAL, "a NULL reply accepted");
    struct fuzz_in in = {data, size};
    size_t chunk = fuzz_u8(&in);
    if (chunk == 0)
        chunk = in.len ? in.len : 1;
    redisReader *reader = redisReaderCreate();
    FUZZ_CHECK(reader, "out of memory");
    if (!default_create_array) {
        fns = *reader->fn;
        default_create_array = fns.createArray;
        fns.createArray = create_array_capped;
    }
    reader->fn = &fns;
    bool failed = false;
    while (in.len > 0 && !failed) {
        size_t n = chunk;
        const uint8_t *p = fuzz_bytes(&in, &n);
        if (redisReaderFeed(reader, (const char *)p, n) != REDIS_OK)
            break;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
                failed = true; /* a protocol error: the connection would be dropped */
                break;
            }
            if (!reply)
                break;
            consume(reply, 0);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
    return 0;
}
