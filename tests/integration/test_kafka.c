/*
 * The Kafka adapters against librdkafka's mock cluster, run in-process by
 * each test (a real Kafka-protocol broker on a loopback port).
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/kafka.h"
#include "stack.h"

#include <librdkafka/rdkafka_mock.h> /* after rdkafka.h */

static uv_loop_t loop;
static rd_kafka_t *mock_rk;
static rd_kafka_mock_cluster_t *mock;
static const char *brokers;

static void setup(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cr_assert_eq(rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err), RD_KAFKA_CONF_OK);
    mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cr_assert_not_null(mock_rk, "%s", err);
    mock = rd_kafka_mock_cluster_new(mock_rk, 1);
    cr_assert_not_null(mock);
    brokers = rd_kafka_mock_cluster_bootstraps(mock);
}

static void teardown(void)
{
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_rk);
}

static void topic(const char *name, int partitions)
{
    cr_assert_eq(rd_kafka_mock_topic_create(mock, name, partitions, 1), 0);
}

static void finish_loop(void)
{
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "a handle was left open");
}

/* ---- producer side ---------------------------------------------------------- */

struct deliveries {
    int n;      /* expected */
    int *calls; /* per message */
    int done, errors;
    int last_seq; /* delivery order check for in-order tests */
    bool in_order;
};

struct dslot {
    struct deliveries *d;
    int seq;
};

static void on_delivery(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    struct dslot *s = ud;
    struct deliveries *d = s->d;
    (void)msg;
    d->calls[s->seq]++;
    d->done++;
    if (err)
        d->errors++;
    if (s->seq != d->last_seq + 1)
        d->in_order = false;
    d->last_seq = s->seq;
}

static bool all_delivered(void *ud)
{
    struct deliveries *d = ud;
    return d->done >= d->n;
}

static struct dslot *deliveries_init(struct deliveries *d, int n)
{
    *d = (struct deliveries){.n = n, .last_seq = -1, .in_order = true};
    d->calls = calloc((size_t)n, sizeof *d->calls);
    struct dslot *slots = calloc((size_t)n, sizeof *slots);
    for (int i = 0; i < n; i++)
        slots[i] = (struct dslot){.d = d, .seq = i};
    return slots;
}

static struct patron_producer *producer(const char *const *props, size_t n)
{
    struct patron_producer *p;
    char err[256];
    cr_assert_eq(patron_producer_open(&p, &loop, brokers, props, n, err, sizeof err), 0, "%s", err);
    return p;
}

static void produce_n(const char *t, int32_t partition, int from, int n)
{
    struct patron_producer *p = producer(NULL, 0);
    struct deliveries d;
    struct dslot *slots = deliveries_init(&d, n);
    for (int i = 0; i < n; i++) {
        char key[32], val[32];
        snprintf(key, sizeof key, "k%d", from + i);
        snprintf(val, sizeof val, "%d", from + i);
        cr_assert_eq(patron_producer_send(p, t, partition, key, strlen(key), val, strlen(val), NULL,
                                          on_delivery, &slots[i]),
                     0);
    }
    cr_assert(stack_run_until(&loop, all_delivered, &d, 20000));
    cr_assert_eq(d.errors, 0);
    cr_assert_eq(patron_producer_close(p, 1000), 0);
    free(slots);
    free(d.calls);
}

/* ---- consumer side ---------------------------------------------------------- */

#define MAX_VALUES 4096

struct reader {
    struct patron_consumer *c;
    int count;
    int dups;
    unsigned char seen[MAX_VALUES];
    int64_t first_offset, last_offset;
    int values[MAX_VALUES]; /* in arrival order */
    int assigned, revoked;  /* partitions */
    int assign_calls, revoke_calls;
    bool store;           /* store every message's next offset */
    int64_t store_limit;  /* only below this offset (single-partition tests) */
    bool store_on_revoke; /* single-partition tests: store the last read on revoke */
    bool pause_on_revoke; /* as ingest's reset does: pause everything on a revoke */
};

static void reader_ready(void *ud)
{
    struct reader *r = ud;
    rd_kafka_message_t *msgs[64];
    size_t n;
    while ((n = patron_consumer_poll(r->c, msgs, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            rd_kafka_message_t *m = msgs[i];
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)m->len, (const char *)m->payload);
            char *end;
            long v = strtol(buf, &end, 10);
            if (end != buf && *end == '\0' && v >= 0 && v < MAX_VALUES) {
                if (r->seen[v])
                    r->dups++;
                r->seen[v] = 1;
            }
            if (r->count < MAX_VALUES)
                r->values[r->count] = v;
            if (r->count == 0)
                r->first_offset = m->offset;
            r->last_offset = m->offset;
            r->count++;
            if (r->store && m->offset < r->store_limit)
                cr_assert_eq(patron_consumer_store(r->c, rd_kafka_topic_name(m->rkt), m->partition,
                                                   m->offset + 1),
                             0);
            rd_kafka_message_destroy(m);
        }
    }
}

static void reader_assign(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct reader *r = ud;
    r->assigned += parts->cnt;
    r->assign_calls++;
}

static void reader_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts)
{
    struct reader *r = ud;
    r->revoked += parts->cnt;
    r->assigned -= parts->cnt;
    r->revoke_calls++;
    if (r->store_on_revoke && r->count > 0)
        cr_assert_eq(patron_consumer_store(r->c, parts->elems[0].topic, parts->elems[0].partition,
                                           r->last_offset + 1),
                     0);
    if (r->pause_on_revoke)
        cr_assert_eq(patron_consumer_pause_all(r->c), 0);
}

static void reader_open(struct reader *r, const char *group, const char *t)
{
    const char *topics[] = {t};
    static const char *const props[] = {"session.timeout.ms",      "6000",
                                        "heartbeat.interval.ms",   "500",
                                        "auto.commit.interval.ms", "200"};
    struct patron_consumer_options o = {
        .brokers = brokers,
        .group_id = group,
        .topics = topics,
        .n_topics = 1,
        .props = props,
        .n_props = 3,
        .on_assign = reader_assign,
        .on_revoke = reader_revoke,
        .ud = r,
    };
    char err[256];
    cr_assert_eq(patron_consumer_open(&r->c, &loop, &o, err, sizeof err), 0, "%s", err);
    patron_consumer_set_ready_cb(r->c, reader_ready, r);
}

static bool is_assigned(void *ud)
{
    return ((struct reader *)ud)->assigned > 0;
}

struct count_goal {
    struct reader *r;
    int want;
};

static bool has_count(void *ud)
{
    struct count_goal *g = ud;
    return g->r->count >= g->want;
}

static void read_n(struct reader *r, int n, int timeout_ms)
{
    struct count_goal g = {r, n};
    cr_assert(stack_run_until(&loop, has_count, &g, timeout_ms), "read %d of %d", r->count, n);
}

/* ---- tests ------------------------------------------------------------------ */

Test(kafka, produce_1000_then_a_group_reads_them_all, .init = setup, .fini = teardown,
     .timeout = 120)
{
    topic("t", 4);
    struct patron_producer *p = producer(NULL, 0);
    struct deliveries d;
    struct dslot *slots = deliveries_init(&d, 1000);
    for (int i = 0; i < 1000; i++) {
        char key[16], val[16];
        snprintf(key, sizeof key, "customer-%d", i % 97);
        snprintf(val, sizeof val, "%d", i);
        cr_assert_eq(patron_producer_send(p, "t", RD_KAFKA_PARTITION_UA, key, strlen(key), val,
                                          strlen(val), NULL, on_delivery, &slots[i]),
                     0);
    }
    cr_assert_eq(patron_producer_outstanding(p), 1000);
    cr_assert(stack_run_until(&loop, all_delivered, &d, 30000));
    stack_run_for(&loop, 100); /* no late duplicates */
    cr_assert_eq(d.errors, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(d.calls[i], 1, "message %d: %d callbacks", i, d.calls[i]);
    cr_assert_eq(patron_producer_outstanding(p), 0);
    cr_assert_eq(patron_producer_close(p, 1000), 0);

    struct reader *r = calloc(1, sizeof *r);
    r->store = true;
    r->store_limit = INT64_MAX;
    reader_open(r, "g1", "t");
    read_n(r, 1000, 30000);
    stack_run_for(&loop, 300);
    cr_assert_eq(r->count, 1000);
    cr_assert_eq(r->dups, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert(r->seen[i], "value %d missing", i);
    cr_assert_eq(r->assigned, 4);
    patron_consumer_close(r->c);
    finish_loop();
    free(r);
    free(slots);
    free(d.calls);
}

Test(kafka, stored_offsets_are_committed_on_close, .init = setup, .fini = teardown, .timeout = 120)
{
    topic("one", 1);
    produce_n("one", 0, 0, 100);
    /* A reads everything but finishes (stores) only the first 60. */
    struct reader *a = calloc(1, sizeof *a);
    a->store = true;
    a->store_limit = 60;
    reader_open(a, "g", "one");
    read_n(a, 100, 30000);
    patron_consumer_close(a->c);
    cr_assert_eq(a->revoke_calls, 1, "leaving the group revokes");

    /* B, same group, starts right after what A stored. */
    struct reader *b = calloc(1, sizeof *b);
    b->store = true;
    b->store_limit = INT64_MAX;
    reader_open(b, "g", "one");
    read_n(b, 40, 30000);
    cr_assert_eq(b->first_offset, 60);
    cr_assert_eq(b->values[0], 60);
    produce_n("one", 0, 100, 10);
    read_n(b, 50, 30000);
    stack_run_for(&loop, 300);
    cr_assert_eq(b->count, 50);
    patron_consumer_close(b->c);

    /* C: everything was stored, nothing is left. */
    struct reader *c = calloc(1, sizeof *c);
    reader_open(c, "g", "one");
    cr_assert(stack_run_until(&loop, is_assigned, c, 30000));
    struct count_goal g = {c, 1};
    cr_assert_not(stack_run_until(&loop, has_count, &g, 2000), "C got %d messages", c->count);
    patron_consumer_close(c->c);
    finish_loop();
    free(a);
    free(b);
    free(c);
}

Test(kafka, offsets_stored_in_on_revoke_are_committed, .init = setup, .fini = teardown,
     .timeout = 120)
{
    topic("rev", 1);
    produce_n("rev", 0, 0, 20);
    struct reader *a = calloc(1, sizeof *a);
    a->store_on_revoke = true;
    reader_open(a, "g-rev", "rev");
    read_n(a, 20, 30000);
    patron_consumer_close(a->c); /* revoke: stores 20, then leaves */
    cr_assert_eq(a->revoke_calls, 1);

    struct reader *b = calloc(1, sizeof *b);
    reader_open(b, "g-rev", "rev");
    cr_assert(stack_run_until(&loop, is_assigned, b, 30000));
    produce_n("rev", 0, 20, 1);
    read_n(b, 1, 30000);
    cr_assert_eq(b->first_offset, 20, "B starts where A's on_revoke stored");
    patron_consumer_close(b->c);
    finish_loop();
    free(a);
    free(b);
}

struct pair {
    struct reader *a, *b;
};

static bool split(void *ud)
{
    struct pair *p = ud;
    return p->a->assigned > 0 && p->b->assigned > 0 && p->a->assigned + p->b->assigned == 4;
}

static bool both_read(void *ud)
{
    struct pair *p = ud;
    return p->a->count + p->b->count >= 400;
}

static bool has_all_four(void *ud)
{
    return ((struct reader *)ud)->assigned == 4;
}

Test(kafka, two_consumers_split_the_partitions, .init = setup, .fini = teardown, .timeout = 120)
{
    topic("shared", 4);
    struct reader *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    reader_open(a, "g2", "shared");
    cr_assert(stack_run_until(&loop, has_all_four, a, 30000), "a=%d", a->assigned);
    reader_open(b, "g2", "shared");
    struct pair p = {a, b};
    cr_assert(stack_run_until(&loop, split, &p, 60000), "a=%d b=%d", a->assigned, b->assigned);
    cr_assert_eq(a->assigned + b->assigned, 4);
    /* cooperative-sticky: A gives up only what B takes, and keeps reading the rest */
    cr_assert_eq(a->revoked, b->assigned, "a revoked %d, b got %d", a->revoked, b->assigned);
    cr_assert_eq(a->assign_calls, 1);
    produce_n("shared", RD_KAFKA_PARTITION_UA, 0, 400);
    cr_assert(stack_run_until(&loop, both_read, &p, 30000));
    stack_run_for(&loop, 300);
    cr_assert_eq(a->count + b->count, 400);
    cr_assert_gt(a->count, 0);
    cr_assert_gt(b->count, 0);
    for (int i = 0; i < 400; i++)
        cr_assert(a->seen[i] ^ b->seen[i], "value %d read by exactly one consumer", i);
    patron_consumer_close(a->c);
    patron_consumer_close(b->c);
    finish_loop();
    free(a);
    free(b);
}

struct dlq_check {
    struct patron_consumer *c;
    rd_kafka_message_t *got;
};

static void grab_one(void *ud)
{
    struct dlq_check *d = ud;
    if (d->got)
        return;
    rd_kafka_message_t *m;
    if (patron_consumer_poll(d->c, &m, 1) == 1)
        d->got = m;
}

static bool got_one(void *ud)
{
    return ((struct dlq_check *)ud)->got != NULL;
}

static struct patron_consumer *open_plain(const char *group, const char *t)
{
    const char *topics[] = {t};
    struct patron_consumer_options o = {
        .brokers = brokers, .group_id = group, .topics = topics, .n_topics = 1};
    struct patron_consumer *c;
    char err[256];
    cr_assert_eq(patron_consumer_open(&c, &loop, &o, err, sizeof err), 0, "%s", err);
    return c;
}

static void expect_header(const rd_kafka_message_t *m, const char *name, const char *want)
{
    rd_kafka_headers_t *h = NULL;
    cr_assert_eq(rd_kafka_message_headers(m, &h), 0);
    const void *v;
    size_t len;
    cr_assert_eq(rd_kafka_header_get_last(h, name, &v, &len), 0, "header %s", name);
    cr_assert_eq(len, strlen(want), "header %s: %.*s", name, (int)len, (const char *)v);
    cr_assert(memcmp(v, want, len) == 0, "header %s: %.*s", name, (int)len, (const char *)v);
}

Test(kafka, dlq_carries_the_original_and_its_origin, .init = setup, .fini = teardown,
     .timeout = 120)
{
    topic("in", 2);
    topic("dlq", 1);
    struct patron_producer *p = producer(NULL, 0);
    struct deliveries d;
    struct dslot *slots = deliveries_init(&d, 2);
    static const char bytes[] = "\x00\xff not protobuf";
    cr_assert_eq(patron_producer_send(p, "in", 1, "cust-7", 6, bytes, sizeof bytes - 1, NULL,
                                      on_delivery, &slots[0]),
                 0);
    d.n = 1;
    cr_assert(stack_run_until(&loop, all_delivered, &d, 20000));

    struct dlq_check in = {.c = open_plain("dlq-test", "in")};
    patron_consumer_set_ready_cb(in.c, grab_one, &in);
    cr_assert(stack_run_until(&loop, got_one, &in, 30000));
    d.n = 2;
    cr_assert_eq(
        patron_dlq_send(p, "dlq", in.got, "decode: \"bad\" wire type", on_delivery, &slots[1]), 0);
    cr_assert(stack_run_until(&loop, all_delivered, &d, 20000));
    cr_assert_eq(d.errors, 0);

    struct dlq_check out = {.c = open_plain("dlq-reader", "dlq")};
    patron_consumer_set_ready_cb(out.c, grab_one, &out);
    cr_assert(stack_run_until(&loop, got_one, &out, 30000));
    const rd_kafka_message_t *m = out.got;
    cr_assert_eq(m->key_len, 6);
    cr_assert(memcmp(m->key, "cust-7", 6) == 0);
    cr_assert_eq(m->len, sizeof bytes - 1);
    cr_assert(memcmp(m->payload, bytes, m->len) == 0);
    expect_header(m, "error", "decode: \"bad\" wire type");
    expect_header(m, "source.topic", "in");
    expect_header(m, "source.partition", "1");
    char off[24];
    snprintf(off, sizeof off, "%" PRId64, in.got->offset);
    expect_header(m, "source.offset", off);

    rd_kafka_message_destroy(in.got);
    rd_kafka_message_destroy(out.got);
    patron_consumer_close(in.c);
    patron_consumer_close(out.c);
    cr_assert_eq(patron_producer_close(p, 1000), 0);
    finish_loop();
    free(slots);
    free(d.calls);
}

Test(kafka, backlog_delivers_everything_in_order, .init = setup, .fini = teardown, .timeout = 120)
{
    topic("ordered", 2);
    static const char *const props[] = {"queue.buffering.max.messages", "10"};
    struct patron_producer *p = producer(props, 1);
    enum { N = 2000 };
    struct deliveries d;
    struct dslot *slots = deliveries_init(&d, N);
    /* All in one go: librdkafka takes 10, the backlog keeps the rest. */
    for (int i = 0; i < N; i++) {
        char val[16];
        snprintf(val, sizeof val, "%d", i);
        cr_assert_eq(patron_producer_send(p, "ordered", 1, "k", 1, val, strlen(val), NULL,
                                          on_delivery, &slots[i]),
                     0, "send %d", i);
    }
    cr_assert_eq(patron_producer_outstanding(p), N);
    cr_assert(stack_run_until(&loop, all_delivered, &d, 60000), "delivered %d", d.done);
    cr_assert_eq(d.errors, 0);
    cr_assert(d.in_order, "delivery reports in order");
    for (int i = 0; i < N; i++)
        cr_assert_eq(d.calls[i], 1);
    cr_assert_eq(patron_producer_close(p, 1000), 0);

    struct reader *r = calloc(1, sizeof *r);
    reader_open(r, "ordered-reader", "ordered");
    read_n(r, N, 30000);
    for (int i = 0; i < N; i++)
        cr_assert_eq(r->values[i], i, "position %d holds %d", i, r->values[i]);
    patron_consumer_close(r->c);
    finish_loop();
    free(r);
    free(slots);
    free(d.calls);
}

static void count_cb(void *ud, rd_kafka_resp_err_t err, const rd_kafka_message_t *msg)
{
    int *counts = ud; /* [0] calls, [1] errors, [2] NULL messages */
    counts[0]++;
    if (err)
        counts[1]++;
    if (!msg)
        counts[2]++;
}

Test(kafka, backlog_is_bounded_and_close_reports_everything, .init = setup, .fini = teardown,
     .timeout = 120)
{
    /* No broker: nothing is ever delivered. */
    static const char *const props[] = {"queue.buffering.max.messages", "1", "message.timeout.ms",
                                        "600000"};
    struct patron_producer *p;
    char err[256];
    cr_assert_eq(patron_producer_open(&p, &loop, "127.0.0.1:1", props, 2, err, sizeof err), 0, "%s",
                 err);
    int counts[3] = {0};
    int accepted = 0, rc = 0;
    while (accepted < PATRON_PRODUCER_BACKLOG_MAX + 100) {
        rc = patron_producer_send(p, "t", 0, NULL, 0, "v", 1, NULL, count_cb, counts);
        if (rc)
            break;
        accepted++;
    }
    cr_assert_eq(rc, PATRON_EAGAIN, "full for now, not too big");
    cr_assert_geq(accepted, PATRON_PRODUCER_BACKLOG_MAX);
    cr_assert_leq(accepted, PATRON_PRODUCER_BACKLOG_MAX + 10);
    cr_assert_eq(patron_producer_outstanding(p), (size_t)accepted);
    cr_assert_eq(counts[0], 0, "a refused send never calls back");
    size_t undelivered = patron_producer_close(p, 200);
    cr_assert_eq(undelivered, (size_t)accepted);
    cr_assert_eq(counts[0], accepted, "every accepted send called back once");
    cr_assert_eq(counts[1], accepted);
    cr_assert_geq(counts[2], PATRON_PRODUCER_BACKLOG_MAX - 10);
    finish_loop();
}

Test(kafka, producer_bad_arguments, .init = setup, .fini = teardown, .timeout = 60)
{
    struct patron_producer *p;
    char err[256];
    static const char *const unknown[] = {"no.such.property", "1"};
    cr_assert_eq(patron_producer_open(&p, &loop, brokers, unknown, 1, err, sizeof err),
                 PATRON_EINVAL);
    cr_assert(strstr(err, "no.such.property") != NULL, "%s", err);
    static const char *const bad_value[] = {"acks", "banana"};
    cr_assert_eq(patron_producer_open(&p, &loop, brokers, bad_value, 1, err, sizeof err),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_open(&p, &loop, brokers, NULL, 1, err, sizeof err), PATRON_EINVAL,
                 "pairs promised, none given");
    cr_assert_eq(patron_producer_open(&p, &loop, "", NULL, 0, err, sizeof err), PATRON_EINVAL);
    cr_assert_eq(patron_producer_open(&p, &loop, NULL, NULL, 0, NULL, 0), PATRON_EINVAL);

    p = producer(NULL, 0);
    int counts[3] = {0};
    cr_assert_eq(patron_producer_send(p, NULL, 0, NULL, 0, "v", 1, NULL, count_cb, counts),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_send(p, "", 0, NULL, 0, "v", 1, NULL, count_cb, counts),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_send(p, "t", -7, NULL, 0, "v", 1, NULL, count_cb, counts),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_send(p, "t", 0, NULL, 0, NULL, 5, NULL, count_cb, counts),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_send(p, "t", 0, NULL, 3, "v", 1, NULL, count_cb, counts),
                 PATRON_EINVAL);
    cr_assert_eq(patron_producer_send(p, "t", 0, NULL, 0, "v", 1, NULL, NULL, NULL), PATRON_EINVAL);
    /* headers are taken even on failure (ASan would see a leak otherwise) */
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    cr_assert_eq(rd_kafka_header_add(h, "a", -1, "b", -1), 0);
    cr_assert_eq(patron_producer_send(p, "", 0, NULL, 0, "v", 1, h, count_cb, counts),
                 PATRON_EINVAL);
    /* huge: over message.max.bytes */
    size_t big = 2u << 20;
    char *v = calloc(1, big);
    cr_assert_eq(patron_producer_send(p, "t", 0, NULL, 0, v, big, NULL, count_cb, counts),
                 PATRON_ETOOBIG);
    cr_assert_eq(patron_producer_send(p, "t", 0, v, SIZE_MAX / 2, v, big, NULL, count_cb, counts),
                 PATRON_ETOOBIG);
    free(v);
    cr_assert_eq(patron_producer_close(p, 100), 0);
    cr_assert_eq(counts[0], 0);
    finish_loop();
}

Test(kafka, consumer_bad_arguments, .init = setup, .fini = teardown, .timeout = 60)
{
    const char *topics[] = {"t"};
    const char *no_name[] = {""};
    static const char *const unknown[] = {"bogus.key", "x"};
    struct patron_consumer_options cases[] = {
        {.brokers = brokers, .group_id = "g", .topics = topics, .n_topics = 0},
        {.brokers = brokers, .group_id = "", .topics = topics, .n_topics = 1},
        {.brokers = NULL, .group_id = "g", .topics = topics, .n_topics = 1},
        {.brokers = brokers, .group_id = "g", .topics = no_name, .n_topics = 1},
        {.brokers = brokers,
         .group_id = "g",
         .topics = topics,
         .n_topics = 1,
         .props = unknown,
         .n_props = 1},
        {.brokers = brokers,
         .group_id = "g",
         .topics = topics,
         .n_topics = 1,
         .props = NULL,
         .n_props = 1},
    };
    struct patron_consumer *c;
    char err[256];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        cr_assert_eq(patron_consumer_open(&c, &loop, &cases[i], err, sizeof err), PATRON_EINVAL,
                     "case %zu", i);
        cr_assert_neq(err[0], '\0', "case %zu says why", i);
    }
    cr_assert_eq(patron_consumer_open(&c, &loop, &cases[4], err, sizeof err), PATRON_EINVAL);
    cr_assert(strstr(err, "bogus.key") != NULL, "%s", err);

    /* operations on partitions that are not assigned */
    topic("t", 1);
    c = open_plain("g", "t");
    cr_assert_eq(patron_consumer_store(c, "t", 0, 5), PATRON_ENOTFOUND);
    cr_assert_eq(patron_consumer_store(c, "t", -1, 5), PATRON_EINVAL);
    cr_assert_eq(patron_consumer_store(c, "t", 0, -5), PATRON_EINVAL);
    cr_assert_eq(patron_consumer_store(c, NULL, 0, 5), PATRON_EINVAL);
    cr_assert_eq(patron_consumer_seek(c, "nope", 3, 0), PATRON_ENOTFOUND);
    cr_assert_eq(patron_consumer_lag(c, "nope", 3, -1), PATRON_ENOTFOUND);
    rd_kafka_message_t *m;
    cr_assert_eq(patron_consumer_poll(c, &m, 0), 0);
    patron_consumer_close(c);
    finish_loop();
}

struct lag_seen {
    int calls;
    int64_t lag;
};

static void on_lag(void *ud, const char *t, int32_t partition, int64_t lag)
{
    struct lag_seen *s = ud;
    cr_assert_str_eq(t, "seekable");
    cr_assert_eq(partition, 0);
    s->calls++;
    s->lag = lag;
}

struct lag_goal {
    struct reader *r;
    int64_t want;
};

static bool lag_is(void *ud)
{
    struct lag_goal *g = ud;
    return patron_consumer_lag(g->r->c, "seekable", 0, -1) == g->want;
}

Test(kafka, pause_seek_resume_and_lag, .init = setup, .fini = teardown, .timeout = 120)
{
    topic("seekable", 1);
    produce_n("seekable", 0, 0, 10);
    struct reader *r = calloc(1, sizeof *r);
    reader_open(r, "seeker", "seekable");
    read_n(r, 10, 30000);
    struct lag_goal g = {r, 0};
    cr_assert(stack_run_until(&loop, lag_is, &g, 5000), "lag %" PRId64,
              patron_consumer_lag(r->c, "seekable", 0, -1));
    cr_assert_eq(patron_consumer_lag(r->c, "seekable", 0, 4), 6, "from the app's own offset");
    cr_assert_eq(patron_consumer_lag(r->c, "seekable", 0, 50), 0);
    struct lag_seen seen = {0};
    cr_assert_eq(patron_consumer_lag_each(r->c, on_lag, &seen), 1);
    cr_assert_eq(seen.calls, 1);
    cr_assert_eq(seen.lag, 0);

    cr_assert_eq(patron_consumer_pause_all(r->c), 0);
    cr_assert(patron_consumer_paused(r->c));
    cr_assert_eq(patron_consumer_seek(r->c, "seekable", 0, 3), 0);
    produce_n("seekable", 0, 10, 5);
    stack_run_for(&loop, 500);
    cr_assert_eq(r->count, 10, "paused: nothing new");
    /* the watermark known is from before the pause: 10, where 15 exist */
    cr_assert_eq(patron_consumer_lag(r->c, "seekable", 0, 10), PATRON_EIO, "paused: stale");
    cr_assert_eq(patron_consumer_resume_all(r->c), 0);
    cr_assert_eq(patron_consumer_lag(r->c, "seekable", 0, 10), PATRON_EIO,
                 "just resumed: no fetch has answered yet");
    read_n(r, 10 + 12, 30000); /* 3..14 again */
    cr_assert_eq(r->values[10], 3);
    cr_assert_eq(r->values[21], 14);
    stack_run_for(&loop, 300);
    cr_assert_eq(r->count, 22);
    stack_run_for(&loop, PATRON_LAG_SETTLE_MS);
    cr_assert_eq(patron_consumer_lag(r->c, "seekable", 0, 10), 5, "settled: the new watermark");
    patron_consumer_close(r->c);
    finish_loop();
    free(r);
}

/* ---- hostile sizes and lost assignments ------------------------------------- */

/* A topic may take records larger than librdkafka's message.max.bytes (a
 * broker's default max.message.bytes is 1048588): such a record cannot be
 * dead-lettered whole. It goes cut, with its size, never fails for it. */
Test(kafka, dlq_of_a_record_too_big_is_truncated, .init = setup, .fini = teardown, .timeout = 120)
{
    topic("in", 1);
    topic("dlq", 1);
    static const char *const big_props[] = {"message.max.bytes", "2000000"};
    struct patron_producer *site = producer(big_props, 1);
    struct deliveries d;
    struct dslot *slots = deliveries_init(&d, 2);
    size_t big = 1020000;
    char *value = malloc(big);
    for (size_t i = 0; i < big; i++)
        value[i] = (char)('a' + i % 26);
    d.n = 1;
    cr_assert_eq(
        patron_producer_send(site, "in", 0, "cust-9", 6, value, big, NULL, on_delivery, &slots[0]),
        0);
    cr_assert(stack_run_until(&loop, all_delivered, &d, 20000));
    cr_assert_eq(d.errors, 0, "the topic takes it");

    struct dlq_check in = {.c = open_plain("big-in", "in")};
    patron_consumer_set_ready_cb(in.c, grab_one, &in);
    cr_assert(stack_run_until(&loop, got_one, &in, 30000));
    cr_assert_eq(in.got->len, big);
    struct patron_producer *p = producer(NULL, 0); /* message.max.bytes: 1000000 */
    cr_assert_eq(
        patron_producer_send(p, "dlq", 0, "k", 1, value, big, NULL, on_delivery, &slots[1]),
        PATRON_ETOOBIG, "whole, it never fits");
    d.n = 2;
    cr_assert_eq(patron_dlq_send(p, "dlq", in.got, "decode: event too big", on_delivery, &slots[1]),
                 0);
    cr_assert(stack_run_until(&loop, all_delivered, &d, 20000));
    cr_assert_eq(d.errors, 0);

    struct dlq_check out = {.c = open_plain("big-reader", "dlq")};
    patron_consumer_set_ready_cb(out.c, grab_one, &out);
    cr_assert(stack_run_until(&loop, got_one, &out, 30000));
    const rd_kafka_message_t *m = out.got;
    cr_assert_eq(m->key_len, 6);
    cr_assert_lt(m->len, 1000000);
    cr_assert_gt(m->len, 990000, "as much as fits: %zu", m->len);
    cr_assert(memcmp(m->payload, value, m->len) == 0, "a prefix of the original");
    expect_header(m, "error", "decode: event too big");
    expect_header(m, "original.size", "1020000");
    expect_header(m, "truncated", "true");
    expect_header(m, "source.partition", "0");

    /* a DLQ topic that refuses even that: the key and headers alone */
    rd_kafka_message_destroy(out.got);
    out.got = NULL;
    struct deliveries d2;
    struct dslot *s2 = deliveries_init(&d2, 1);
    cr_assert_eq(patron_dlq_send_max(p, "dlq", in.got, "x", 0, on_delivery, &s2[0]), 0);
    cr_assert(stack_run_until(&loop, all_delivered, &d2, 20000));
    cr_assert(stack_run_until(&loop, got_one, &out, 30000));
    cr_assert_eq(out.got->len, 0);
    expect_header(out.got, "original.size", "1020000");

    rd_kafka_message_destroy(in.got);
    rd_kafka_message_destroy(out.got);
    patron_consumer_close(in.c);
    patron_consumer_close(out.c);
    cr_assert_eq(patron_producer_close(p, 1000), 0);
    cr_assert_eq(patron_producer_close(site, 1000), 0);
    finish_loop();
    free(value);
    free(slots);
    free(d.calls);
    free(s2);
    free(d2.calls);
}

static bool was_revoked(void *ud)
{
    return ((struct reader *)ud)->revoke_calls > 0;
}

struct assigned_count {
    int n;
};

static bool read_20_to_39(void *ud)
{
    const struct reader *r = ud;
    for (int i = 20; i < 40; i++)
        if (!r->seen[i])
            return false;
    return true;
}

static void count_assigned(void *ud, const char *t, int32_t partition, int64_t lag)
{
    (void)t;
    (void)partition;
    (void)lag;
    ((struct assigned_count *)ud)->n++;
}

/* The consumer pauses everything when its partitions are revoked (ingest's
 * reset does), its session is lost (no clean hand-over), and it resumes
 * while nothing is assigned; the group gives the partitions back. They must
 * be fetched again: librdkafka keeps a partition's pause across a revoke
 * and an assign, so a consumer that resumed nothing would read nothing for
 * ever (librdkafka issue #1849). */
Test(kafka, partitions_come_back_fetching_after_a_lost_assignment, .init = setup, .fini = teardown,
     .timeout = 120)
{
    topic("lossy", 2);
    produce_n("lossy", RD_KAFKA_PARTITION_UA, 0, 20);
    struct reader *r = calloc(1, sizeof *r);
    reader_open(r, "lossy-group", "lossy");
    read_n(r, 20, 30000);
    r->pause_on_revoke = true;
    /* The coordinator forgets the member (a session timeout as seen by the
     * client: its heartbeat is refused), and its rejoin is slowed down, so
     * that the resume below finds nothing assigned. Heartbeat is API 12,
     * JoinGroup 11. */
    rd_kafka_mock_push_request_errors(mock, 12, 1, RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID);
    rd_kafka_mock_push_request_errors(mock, 11, 3, RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                      RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS);
    cr_assert(stack_run_until(&loop, was_revoked, r, 30000), "the assignment was never lost");
    cr_assert(patron_consumer_paused(r->c));
    struct assigned_count ac = {0};
    cr_assert_eq(patron_consumer_lag_each(r->c, count_assigned, &ac), 0,
                 "nothing assigned when the reset resumes");
    cr_assert_eq(patron_consumer_resume_all(r->c), 0);
    cr_assert(stack_run_until(&loop, is_assigned, r, 60000), "never assigned again");
    produce_n("lossy", RD_KAFKA_PARTITION_UA, 20, 20);
    /* the first 20 may come again (nothing was stored), then the new ones */
    cr_assert(stack_run_until(&loop, read_20_to_39, r, 30000),
              "read %d after the partitions came back: they stayed paused", r->count);
    patron_consumer_close(r->c);
    finish_loop();
    free(r);
}
