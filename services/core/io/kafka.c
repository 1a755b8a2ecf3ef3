#include "patron/kafka.h"
#include "patron/num.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patron/clock.h"
#include "patron/log.h"

#define WAKE_TIMER_MS 100 /* safety net when an IO event is missed */
#define SEEK_TIMEOUT_MS 5000
#define FLUSH_SLICE_MS 100
#define PURGE_WAIT_MS 2000

/* What librdkafka's opaque points to (first member of both clients), so that
 * the log and error callbacks find the logger. */
struct kafka_common {
    const struct patron_log *log;
    const char *kind; /* "consumer" or "producer" */
    bool fatal;
};

/*
 * A queue's wake-up: librdkafka writes a byte to a non-blocking pipe when
 * its queue turns non-empty; uv_poll watches the pipe and a repeating timer
 * covers anything missed. `fire` runs on the loop. After wake_close the owner
 * is freed by `closed` once both handles are closed.
 */
struct wake {
    uv_poll_t poll;
    uv_timer_t timer;
    int fd[2];
    int open;
    void (*fire)(struct wake *w);
    void (*closed)(struct wake *w);
};

struct patron_consumer {
    struct kafka_common common;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    struct wake wake;
    void (*ready)(void *ud);
    void *ready_ud;
    void (*on_assign)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    void (*on_revoke)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    void *ud;
    bool paused;
    int64_t resumed_mono; /* when fetching restarted; 0: never paused */
    bool closing;
};

/* A message waiting in the producer's backlog, its bytes in the same
 * allocation. */
struct backlog_msg {
    struct backlog_msg *next;
    patron_delivery_cb cb;
    void *ud;
    rd_kafka_headers_t *headers;
    const char *topic;
    const void *key, *value;
    size_t keylen, len;
    int32_t partition;
};

/* librdkafka's per-message opaque. */
struct delivery {
    patron_delivery_cb cb;
    void *ud;
};

struct patron_producer {
    struct kafka_common common;
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    struct wake wake;
    size_t outstanding; /* accepted sends whose callback has not run */
    size_t max_message_bytes;
    struct backlog_msg *bl_head, *bl_tail;
    size_t bl_count, bl_bytes;
    bool closing;
};

static void klog(const struct kafka_common *kc, int level, const char *msg, const char *detail)
{
    if (!kc->log || !patron_log_enabled(kc->log, level))
        return;
    char esc[1024];
    (void)patron_json_escape(esc, sizeof esc, detail ? detail : "");
    patron_log(kc->log, level, msg, "\"client\":\"%s\",\"detail\":\"%s\"", kc->kind, esc);
}

/* ---- callbacks shared by both clients ---------------------------------- */

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const struct kafka_common *kc = rd_kafka_opaque(rk);
    if (!kc || !kc->log)
        return;
    /* syslog levels */
    int lv = level <= 3   ? PATRON_LOG_ERROR
             : level == 4 ? PATRON_LOG_WARN
             : level <= 6 ? PATRON_LOG_INFO
                          : PATRON_LOG_DEBUG;
    if (!patron_log_enabled(kc->log, lv))
        return;
    char f[64], b[1024];
    (void)patron_json_escape(f, sizeof f, fac ? fac : "");
    (void)patron_json_escape(b, sizeof b, buf ? buf : "");
    patron_log(kc->log, lv, "librdkafka", "\"client\":\"%s\",\"facility\":\"%s\",\"detail\":\"%s\"",
               kc->kind, f, b);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_common *kc = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
        kc->fatal = true;
        klog(kc, PATRON_LOG_ERROR, "kafka fatal error", orig ? buf : reason);
        return;
    }
    /* Broker connection errors are transient: librdkafka retries. */
    klog(kc, err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ? PATRON_LOG_ERROR : PATRON_LOG_WARN,
         "kafka error", reason);
}

/* ---- wake-up ---------------------------------------------------------------- */

static void wake_drain(struct wake *w)
{
    char buf[64];
    while (read(w->fd[0], buf, sizeof buf) > 0) {
    }
}

static void wake_poll_cb(uv_poll_t *h, int status, int events)
{
    struct wake *w = h->data;
    (void)status;
    (void)events;
    wake_drain(w);
    w->fire(w);
}

static void wake_timer_cb(uv_timer_t *t)
{
    struct wake *w = t->data;
    w->fire(w);
}

static int wake_init(struct wake *w, uv_loop_t *loop, rd_kafka_queue_t *q, char *err, size_t errlen)
{
    if (pipe2(w->fd, O_NONBLOCK | O_CLOEXEC) < 0) {
        (void)snprintf(err, errlen, "pipe: %s", strerror(errno));
        return PATRON_EIO;
    }
    int rc = uv_poll_init(loop, &w->poll, w->fd[0]);
    if (rc < 0) {
        (void)snprintf(err, errlen, "uv_poll_init: %s", uv_strerror(rc));
        close(w->fd[0]);
        close(w->fd[1]);
        return PATRON_EIO;
    }
    (void)uv_timer_init(loop, &w->timer);
    w->poll.data = w;
    w->timer.data = w;
    w->open = 2;
    rd_kafka_queue_io_event_enable(q, w->fd[1], "1", 1);
    /* Both only fail for a closing handle or a NULL callback. */
    (void)uv_poll_start(&w->poll, UV_READABLE, wake_poll_cb);
    (void)uv_timer_start(&w->timer, wake_timer_cb, WAKE_TIMER_MS, WAKE_TIMER_MS);
    return 0;
}

static void wake_handle_closed(uv_handle_t *h)
{
    struct wake *w = h->data;
    if (--w->open > 0)
        return;
    close(w->fd[0]);
    close(w->fd[1]);
    w->closed(w);
}

/* The queue's IO event must be disabled (or its client destroyed) first. */
static void wake_close(struct wake *w)
{
    uv_close((uv_handle_t *)&w->poll, wake_handle_closed);
    uv_close((uv_handle_t *)&w->timer, wake_handle_closed);
}

/* ---- configuration ---------------------------------------------------------- */

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value, char *err,
                    size_t errlen)
{
    char why[256];
    if (!key || !value) {
        (void)snprintf(err, errlen, "librdkafka property without key or value");
        return PATRON_EINVAL;
    }
    if (rd_kafka_conf_set(conf, key, value, why, sizeof why) != RD_KAFKA_CONF_OK) {
        (void)snprintf(err, errlen, "librdkafka property %s: %s", key, why);
        return PATRON_EINVAL;
    }
    return 0;
}

static int conf_set_all(rd_kafka_conf_t *conf, const char *const *kv, size_t n, char *err,
                        size_t errlen)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        int rc = conf_set(conf, kv[i], kv[i + 1], err, errlen);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void conf_common(rd_kafka_conf_t *conf, struct kafka_common *kc)
{
    rd_kafka_conf_set_opaque(conf, kc);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (kc->log)
        rd_kafka_conf_set_log_cb(conf, log_cb);
}

/* ---- consumer ------------------------------------------------------------------ */

static void consumer_fire(struct wake *w)
{
    struct patron_consumer *c =
        (struct patron_consumer *)(void *)((char *)w - offsetof(struct patron_consumer, wake));
    if (c->ready && !c->closing)
        c->ready(c->ready_ud);
}

static void consumer_closed(struct wake *w)
{
    free((char *)w - offsetof(struct patron_consumer, wake));
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct patron_consumer *c = opaque;
    bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t aerr = RD_KAFKA_RESP_ERR_NO_ERROR;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        /* cooperative rebalances also assign nothing; that is no news */
        if (c->on_assign && parts->cnt > 0)
            c->on_assign(c->ud, parts);
        if (coop)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, parts);
        /* librdkafka keeps a partition's pause flag across a revoke and a
         * new assign (its issue #1849): a partition paused before a lost
         * assignment comes back paused, and a resume_all made while the
         * assignment was empty reached none. So the new partitions take
         * the consumer's state here, whichever it is. Only assigned
         * partitions can be paused or resumed: after the assign. */
        if (parts->cnt > 0) {
            rd_kafka_resp_err_t perr = c->paused ? rd_kafka_pause_partitions(rk, parts)
                                                 : rd_kafka_resume_partitions(rk, parts);
            if (perr)
                klog(&c->common, PATRON_LOG_ERROR,
                     c->paused ? "kafka pause of new partitions failed"
                               : "kafka resume of new partitions failed",
                     rd_kafka_err2str(perr));
        }
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        if (c->on_revoke && parts->cnt > 0)
            c->on_revoke(c->ud, parts);
        if (rd_kafka_assignment_lost(rk))
            klog(&c->common, PATRON_LOG_WARN, "kafka assignment lost",
                 "partitions were revoked without a clean hand-over");
        if (coop)
            error = rd_kafka_incremental_unassign(rk, parts);
        else
            aerr = rd_kafka_assign(rk, NULL);
    } else {
        klog(&c->common, PATRON_LOG_ERROR, "kafka rebalance failed", rd_kafka_err2str(err));
        aerr = rd_kafka_assign(rk, NULL);
    }
    if (error) {
        klog(&c->common, PATRON_LOG_ERROR, "kafka assign failed", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    if (aerr)
        klog(&c->common, PATRON_LOG_ERROR, "kafka assign failed", rd_kafka_err2str(aerr));
}

int patron_consumer_open(struct patron_consumer **out, uv_loop_t *loop,
                         const struct patron_consumer_options *o, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!out || !loop || !o || !o->brokers || !o->brokers[0] || !o->group_id || !o->group_id[0] ||
        !o->topics || o->n_topics == 0 || o->n_topics > INT32_MAX || o->n_props > SIZE_MAX / 4 ||
        (o->n_props && !o->props)) {
        (void)snprintf(err, errlen, "consumer: missing brokers, group id, topics or props");
        return PATRON_EINVAL;
    }
    for (size_t i = 0; i < o->n_topics; i++) {
        if (!o->topics[i] || !o->topics[i][0]) {
            (void)snprintf(err, errlen, "consumer: empty topic name");
            return PATRON_EINVAL;
        }
    }

    struct patron_consumer *c = patron_calloc(1, sizeof *c);
    c->common.log = o->log;
    c->common.kind = "consumer";
    c->on_assign = o->on_assign;
    c->on_revoke = o->on_revoke;
    c->ud = o->ud;
    c->wake.fire = consumer_fire;
    c->wake.closed = consumer_closed;

    static const char *const defaults[] = {
        "enable.auto.commit",
        "true",
        /* offsets are stored by the application after its work is acknowledged */
        "enable.auto.offset.store",
        "false",
        "auto.offset.reset",
        "earliest",
        "enable.partition.eof",
        "false",
        "partition.assignment.strategy",
        "cooperative-sticky",
        /* an idle partition answers a fetch after this long: it bounds the
         * latency from a purchase to the recommendation that reflects it */
        "fetch.wait.max.ms",
        "100",
        /* Memory: what librdkafka fetches ahead of the application. The
         * queue of fetched messages not yet polled (its default is 64 MiB)
         * and one fetch response (default 50 MiB; it may exceed this by one
         * record, and librdkafka raises it to message.max.bytes at least):
         * with the application's own bounds, a service's memory stays
         * within its pod's limit (docs/operations.md, "Memory"). */
        "queued.max.messages.kbytes",
        "32768",
        "fetch.max.bytes",
        "16777216",
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc;
    if ((rc = conf_set(conf, "bootstrap.servers", o->brokers, err, errlen)) < 0 ||
        (rc = conf_set(conf, "group.id", o->group_id, err, errlen)) < 0 ||
        (rc = conf_set_all(conf, defaults, PATRON_ARRAY_LEN(defaults), err, errlen)) < 0 ||
        (o->log && (rc = conf_set(conf, "log.queue", "true", err, errlen)) < 0) ||
        (rc = conf_set_all(conf, o->props, 2 * o->n_props, err, errlen)) < 0)
        goto out_free_conf;
    conf_common(conf, &c->common);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);

    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!c->rk) {
        rc = PATRON_EINVAL;
        goto out_free_conf;
    }
    conf = NULL; /* owned by rk */
    /* Everything (logs, errors, rebalances) comes out of the consumer queue. */
    rd_kafka_poll_set_consumer(c->rk);
    if (o->log && rd_kafka_set_log_queue(c->rk, NULL))
        klog(&c->common, PATRON_LOG_WARN, "kafka log queue not set", NULL);

    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new((int)o->n_topics);
    for (size_t i = 0; i < o->n_topics; i++)
        (void)rd_kafka_topic_partition_list_add(topics, o->topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (serr) {
        (void)snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(serr));
        rc = PATRON_EINVAL;
        goto out_destroy_rk;
    }

    c->queue = rd_kafka_queue_get_consumer(c->rk);
    if ((rc = wake_init(&c->wake, loop, c->queue, err, errlen)) < 0)
        goto out_destroy_queue;
    *out = c;
    return 0;

out_destroy_queue:
    rd_kafka_queue_destroy(c->queue);
out_destroy_rk:
    (void)rd_kafka_consumer_close(c->rk);
    rd_kafka_destroy(c->rk);
out_free_conf:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(c);
    return rc;
}

void patron_consumer_set_ready_cb(struct patron_consumer *c, void (*ready)(void *ud), void *ud)
{
    c->ready = ready;
    c->ready_ud = ud;
}

static void consumer_error(struct patron_consumer *c, const rd_kafka_message_t *m)
{
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return;
    char detail[512];
    (void)snprintf(detail, sizeof detail, "%s [%" PRId32 "]: %s",
                   m->rkt ? rd_kafka_topic_name(m->rkt) : "-", m->partition,
                   rd_kafka_message_errstr(m));
    if (m->err == RD_KAFKA_RESP_ERR__FATAL)
        c->common.fatal = true;
    klog(&c->common, m->err == RD_KAFKA_RESP_ERR__FATAL ? PATRON_LOG_ERROR : PATRON_LOG_WARN,
         "kafka consumer error", detail);
}

size_t patron_consumer_poll(struct patron_consumer *c, rd_kafka_message_t **msgs, size_t max)
{
    return patron_consumer_poll_bytes(c, msgs, max, SIZE_MAX);
}

size_t patron_consumer_poll_bytes(struct patron_consumer *c, rd_kafka_message_t **msgs, size_t max,
                                  size_t max_bytes)
{
    size_t n = 0, bytes = 0;
    if (!c || c->closing || !msgs)
        return 0;
    /* Error events do not count against max; bound them so that a storm of
     * errors cannot hold the loop. */
    for (size_t served = 0; n < max && bytes < max_bytes && served < max + 1000; served++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 0);
        if (!m)
            break;
        if (m->err) {
            consumer_error(c, m);
            rd_kafka_message_destroy(m);
            continue;
        }
        bytes += m->len + m->key_len;
        msgs[n++] = m;
    }
    return n;
}

static rd_kafka_topic_partition_list_t *one_partition(const char *topic, int32_t partition,
                                                      int64_t offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = offset;
    return l;
}

static bool is_assigned(struct patron_consumer *c, const char *topic, int32_t partition)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a))
        return false;
    bool found = rd_kafka_topic_partition_list_find(a, topic, partition) != NULL;
    rd_kafka_topic_partition_list_destroy(a);
    return found;
}

int patron_consumer_store(struct patron_consumer *c, const char *topic, int32_t partition,
                          int64_t next_offset)
{
    if (!c || !topic || !topic[0] || partition < 0 || next_offset < 0)
        return PATRON_EINVAL;
    rd_kafka_topic_partition_list_t *l = one_partition(topic, partition, next_offset);
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, l);
    if (!err)
        err = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__STATE:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        return PATRON_ENOTFOUND;
    default:
        klog(&c->common, PATRON_LOG_ERROR, "kafka offset store failed", rd_kafka_err2str(err));
        return PATRON_EINVAL;
    }
}

static int set_paused(struct patron_consumer *c, bool pause)
{
    rd_kafka_topic_partition_list_t *a = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(c->rk, &a);
    if (err)
        return PATRON_EIO;
    if (a->cnt > 0)
        err = pause ? rd_kafka_pause_partitions(c->rk, a) : rd_kafka_resume_partitions(c->rk, a);
    rd_kafka_topic_partition_list_destroy(a);
    if (err) {
        klog(&c->common, PATRON_LOG_ERROR, pause ? "kafka pause failed" : "kafka resume failed",
             rd_kafka_err2str(err));
        return PATRON_EIO;
    }
    c->paused = pause;
    if (!pause)
        c->resumed_mono = patron_monotonic_ms();
    return 0;
}

int patron_consumer_pause_all(struct patron_consumer *c)
{
    return c ? set_paused(c, true) : PATRON_EINVAL;
}

int patron_consumer_resume_all(struct patron_consumer *c)
{
    return c ? set_paused(c, false) : PATRON_EINVAL;
}

bool patron_consumer_paused(const struct patron_consumer *c)
{
    return c->paused;
}

int patron_consumer_seek(struct patron_consumer *c, const char *topic, int32_t partition,
                         int64_t offset)
{
    if (!c || !topic || !topic[0] || partition < 0 || offset < 0)
        return PATRON_EINVAL;
    if (!is_assigned(c, topic, partition))
        return PATRON_ENOTFOUND;
    rd_kafka_topic_partition_list_t *l = one_partition(topic, partition, offset);
    rd_kafka_error_t *error = rd_kafka_seek_partitions(c->rk, l, SEEK_TIMEOUT_MS);
    rd_kafka_resp_err_t perr = l->elems[0].err;
    rd_kafka_topic_partition_list_destroy(l);
    if (error) {
        klog(&c->common, PATRON_LOG_ERROR, "kafka seek failed", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
        return PATRON_EIO;
    }
    if (perr) {
        klog(&c->common, PATRON_LOG_ERROR, "kafka seek failed", rd_kafka_err2str(perr));
        return perr == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION ? PATRON_ENOTFOUND : PATRON_EIO;
    }
    return 0;
}

int64_t patron_consumer_lag(struct patron_consumer *c, const char *topic, int32_t partition,
                            int64_t next_offset)
{
    if (!c || !topic || partition < 0)
        return PATRON_EINVAL;
    if (!is_assigned(c, topic, partition))
        return PATRON_ENOTFOUND;
    /* The high watermark is the one the last fetch response carried: while
     * paused nothing is fetched, and after a resume it is stale until the
     * first fetch answers, while the producers may have gone on. */
    if (c->paused ||
        (c->resumed_mono && patron_monotonic_ms() - c->resumed_mono < PATRON_LAG_SETTLE_MS))
        return PATRON_EIO;
    int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) || hi < 0)
        return PATRON_EIO;
    if (next_offset < 0) {
        rd_kafka_topic_partition_list_t *l = one_partition(topic, partition, 0);
        rd_kafka_resp_err_t err = rd_kafka_position(c->rk, l);
        next_offset = err ? RD_KAFKA_OFFSET_INVALID : l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        if (next_offset < 0)
            return PATRON_EIO;
    }
    return hi > next_offset ? hi - next_offset : 0;
}

int patron_consumer_lag_each(struct patron_consumer *c,
                             void (*fn)(void *ud, const char *topic, int32_t partition,
                                        int64_t lag),
                             void *ud)
{
    if (!c || !fn)
        return PATRON_EINVAL;
    rd_kafka_topic_partition_list_t *a = NULL;
    if (rd_kafka_assignment(c->rk, &a))
        return PATRON_EIO;
    if (a->cnt > 0 && rd_kafka_position(c->rk, a)) {
        rd_kafka_topic_partition_list_destroy(a);
        return PATRON_EIO;
    }
    int n = a->cnt;
    for (int i = 0; i < n; i++) {
        const rd_kafka_topic_partition_t *tp = &a->elems[i];
        int64_t lo = RD_KAFKA_OFFSET_INVALID, hi = RD_KAFKA_OFFSET_INVALID, lag = -1;
        if (!rd_kafka_get_watermark_offsets(c->rk, tp->topic, tp->partition, &lo, &hi) && hi >= 0 &&
            tp->offset >= 0)
            lag = hi > tp->offset ? hi - tp->offset : 0;
        fn(ud, tp->topic, tp->partition, lag);
    }
    rd_kafka_topic_partition_list_destroy(a);
    return n;
}

void patron_consumer_close(struct patron_consumer *c)
{
    if (!c || c->closing)
        return;
    c->closing = true;
    rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0 /* sync */);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        klog(&c->common, PATRON_LOG_WARN, "kafka commit on close failed", rd_kafka_err2str(err));
    err = rd_kafka_consumer_close(c->rk);
    if (err)
        klog(&c->common, PATRON_LOG_WARN, "kafka consumer close failed", rd_kafka_err2str(err));
    rd_kafka_queue_io_event_enable(c->queue, -1, NULL, 0);
    rd_kafka_queue_destroy(c->queue);
    rd_kafka_destroy(c->rk);
    c->rk = NULL;
    wake_close(&c->wake);
}

/* ---- producer ------------------------------------------------------------------ */

static rd_kafka_resp_err_t produce(struct patron_producer *p, const char *topic, int32_t partition,
                                   const void *key, size_t keylen, const void *value, size_t len,
                                   rd_kafka_headers_t *headers, struct delivery *d)
{
    if (headers)
        return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_KEY(key, keylen), RD_KAFKA_V_VALUE((void *)value, len),
                                 RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    return rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY(key, keylen),
                             RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_OPAQUE(d),
                             RD_KAFKA_V_END);
}

static int produce_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
        return PATRON_ETOOBIG;
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
        return PATRON_EINVAL;
    default:
        return PATRON_EIO;
    }
}

/* Moves the backlog into librdkafka's queue, in order, until it is full
 * again. A message librdkafka refuses for good gets its callback now. */
static void drain_backlog(struct patron_producer *p)
{
    struct backlog_msg *b;
    while ((b = p->bl_head)) {
        struct delivery *d = patron_malloc(sizeof *d);
        d->cb = b->cb;
        d->ud = b->ud;
        rd_kafka_resp_err_t err =
            produce(p, b->topic, b->partition, b->key, b->keylen, b->value, b->len, b->headers, d);
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            free(d);
            return;
        }
        p->bl_head = b->next;
        if (!p->bl_head)
            p->bl_tail = NULL;
        p->bl_count--;
        p->bl_bytes -= b->keylen + b->len;
        if (err) {
            free(d);
            if (b->headers)
                rd_kafka_headers_destroy(b->headers);
            p->outstanding--;
            klog(&p->common, PATRON_LOG_ERROR, "kafka produce from backlog failed",
                 rd_kafka_err2str(err));
            b->cb(b->ud, err, NULL);
        }
        free(b);
    }
}

static void producer_fire(struct wake *w)
{
    struct patron_producer *p =
        (struct patron_producer *)(void *)((char *)w - offsetof(struct patron_producer, wake));
    if (!p->rk)
        return;
    (void)rd_kafka_poll(p->rk, 0); /* delivery reports, logs, errors */
    drain_backlog(p);
}

static void producer_closed(struct wake *w)
{
    free((char *)w - offsetof(struct patron_producer, wake));
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct patron_producer *p = opaque;
    struct delivery *d = m->_private;
    (void)rk;
    p->outstanding--;
    d->cb(d->ud, m->err, m);
    free(d);
}

int patron_producer_open_log(struct patron_producer **out, uv_loop_t *loop, const char *brokers,
                             const char *const *props, size_t n_props, const struct patron_log *log,
                             char *err, size_t errlen)
{
    char dummy[1];
    if (!err || errlen == 0) {
        err = dummy;
        errlen = sizeof dummy;
    }
    err[0] = '\0';
    if (!out || !loop || !brokers || !brokers[0] || n_props > SIZE_MAX / 4 || (n_props && !props)) {
        (void)snprintf(err, errlen, "producer: missing brokers or props");
        return PATRON_EINVAL;
    }
    struct patron_producer *p = patron_calloc(1, sizeof *p);
    p->common.log = log;
    p->common.kind = "producer";
    p->wake.fire = producer_fire;
    p->wake.closed = producer_closed;

    static const char *const defaults[] = {
        "acks",
        "all",
        "enable.idempotence",
        "true",
        "linger.ms",
        "5",
        "batch.num.messages",
        "10000",
        "compression.codec",
        "none",
        "queue.buffering.max.messages",
        "1000000",
        /* bytes of messages waiting for delivery (default 1 GiB): beyond,
         * sends wait in the backlog below, then fail for now */
        "queue.buffering.max.kbytes",
        "65536",
        "partitioner",
        "murmur2_random",
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc;
    if ((rc = conf_set(conf, "bootstrap.servers", brokers, err, errlen)) < 0 ||
        (rc = conf_set_all(conf, defaults, PATRON_ARRAY_LEN(defaults), err, errlen)) < 0 ||
        (log && (rc = conf_set(conf, "log.queue", "true", err, errlen)) < 0) ||
        (rc = conf_set_all(conf, props, 2 * n_props, err, errlen)) < 0)
        goto out_free_conf;
    char buf[32];
    size_t bufsz = sizeof buf;
    int64_t max_bytes = 0;
    if (rd_kafka_conf_get(conf, "message.max.bytes", buf, &bufsz) != RD_KAFKA_CONF_OK ||
        patron_parse_i64_str(buf, 1, INT32_MAX, &max_bytes))
        max_bytes = 0;
    p->max_message_bytes = max_bytes > 0 ? (size_t)max_bytes : 1000000;
    conf_common(conf, &p->common);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);

    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!p->rk) {
        rc = PATRON_EINVAL;
        goto out_free_conf;
    }
    conf = NULL;
    if (log && rd_kafka_set_log_queue(p->rk, NULL))
        klog(&p->common, PATRON_LOG_WARN, "kafka log queue not set", NULL);
    p->mainq = rd_kafka_queue_get_main(p->rk);
    if ((rc = wake_init(&p->wake, loop, p->mainq, err, errlen)) < 0)
        goto out_destroy_rk;
    *out = p;
    return 0;

out_destroy_rk:
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
out_free_conf:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(p);
    return rc;
}

int patron_producer_open(struct patron_producer **out, uv_loop_t *loop, const char *brokers,
                         const char *const *props, size_t n_props, char *err, size_t errlen)
{
    return patron_producer_open_log(out, loop, brokers, props, n_props, NULL, err, errlen);
}

static int backlog_push(struct patron_producer *p, const char *topic, int32_t partition,
                        const void *key, size_t keylen, const void *value, size_t len,
                        rd_kafka_headers_t *headers, patron_delivery_cb cb, void *ud)
{
    if (p->bl_count >= PATRON_PRODUCER_BACKLOG_MAX ||
        p->bl_bytes + keylen + len > PATRON_PRODUCER_BACKLOG_MAX_BYTES)
        return PATRON_EAGAIN;
    size_t tlen = strlen(topic) + 1;
    struct backlog_msg *b = patron_malloc(sizeof *b + tlen + keylen + len);
    char *data = (char *)(b + 1);
    memcpy(data, topic, tlen);
    b->topic = data;
    data += tlen;
    if (keylen)
        memcpy(data, key, keylen);
    b->key = keylen ? data : NULL;
    data += keylen;
    if (len)
        memcpy(data, value, len);
    b->value = len ? data : NULL;
    b->keylen = keylen;
    b->len = len;
    b->partition = partition;
    b->headers = headers;
    b->cb = cb;
    b->ud = ud;
    b->next = NULL;
    if (p->bl_tail)
        p->bl_tail->next = b;
    else
        p->bl_head = b;
    p->bl_tail = b;
    p->bl_count++;
    p->bl_bytes += keylen + len;
    return 0;
}

int patron_producer_send(struct patron_producer *p, const char *topic, int32_t partition,
                         const void *key, size_t keylen, const void *value, size_t len,
                         rd_kafka_headers_t *headers, patron_delivery_cb cb, void *ud)
{
    int rc;
    if (!p || !topic || !topic[0] || !cb || (keylen && !key) || (len && !value) ||
        partition < RD_KAFKA_PARTITION_UA) {
        rc = PATRON_EINVAL;
        goto out_free_headers;
    }
    if (p->closing || p->common.fatal) {
        rc = PATRON_EIO;
        goto out_free_headers;
    }
    if (keylen > p->max_message_bytes || len > p->max_message_bytes - keylen) {
        rc = PATRON_ETOOBIG;
        goto out_free_headers;
    }
    if (p->bl_head)
        drain_backlog(p);
    if (!p->bl_head) {
        struct delivery *d = patron_malloc(sizeof *d);
        d->cb = cb;
        d->ud = ud;
        rd_kafka_resp_err_t err = produce(p, topic, partition, key, keylen, value, len, headers, d);
        if (!err) {
            p->outstanding++;
            return 0;
        }
        free(d);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            rc = produce_error(err);
            goto out_free_headers;
        }
    }
    /* Behind a backlog or on a full queue: keep the order, keep the message. */
    rc = backlog_push(p, topic, partition, key, keylen, value, len, headers, cb, ud);
    if (rc < 0)
        goto out_free_headers;
    p->outstanding++;
    return 0;

out_free_headers:
    if (headers)
        rd_kafka_headers_destroy(headers);
    return rc;
}

size_t patron_producer_outstanding(const struct patron_producer *p)
{
    return p->outstanding;
}

size_t patron_producer_close(struct patron_producer *p, int timeout_ms)
{
    if (!p || p->closing)
        return 0;
    p->closing = true;
    uint64_t deadline = uv_hrtime() / 1000000 + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    for (;;) {
        drain_backlog(p);
        if (p->outstanding == 0)
            break;
        uint64_t now = uv_hrtime() / 1000000;
        if (now >= deadline)
            break;
        uint64_t left = deadline - now;
        /* flush serves delivery reports (and so runs callbacks) meanwhile */
        (void)rd_kafka_flush(p->rk, (int)(left < FLUSH_SLICE_MS ? left : FLUSH_SLICE_MS));
    }
    size_t undelivered = p->outstanding;
    if (undelivered) {
        klog(&p->common, PATRON_LOG_WARN, "kafka producer closing with undelivered messages", NULL);
        rd_kafka_resp_err_t err =
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        if (err)
            klog(&p->common, PATRON_LOG_ERROR, "kafka purge failed", rd_kafka_err2str(err));
        /* Purged messages come back as delivery reports with an error. */
        uint64_t until = uv_hrtime() / 1000000 + PURGE_WAIT_MS;
        while (p->outstanding > p->bl_count && uv_hrtime() / 1000000 < until)
            (void)rd_kafka_poll(p->rk, 10);
        struct backlog_msg *b;
        while ((b = p->bl_head)) {
            p->bl_head = b->next;
            p->bl_count--;
            p->outstanding--;
            if (b->headers)
                rd_kafka_headers_destroy(b->headers);
            b->cb(b->ud, RD_KAFKA_RESP_ERR__PURGE_QUEUE, NULL);
            free(b);
        }
        p->bl_tail = NULL;
        p->bl_bytes = 0;
        if (p->outstanding)
            klog(&p->common, PATRON_LOG_ERROR, "kafka delivery reports lost on close", NULL);
    }
    rd_kafka_queue_io_event_enable(p->mainq, -1, NULL, 0);
    rd_kafka_queue_destroy(p->mainq);
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    wake_close(&p->wake);
    return undelivered;
}

size_t patron_producer_max_message_bytes(const struct patron_producer *p)
{
    return p->max_message_bytes;
}

int patron_producer_partitions(struct patron_producer *p, const char *topic, int timeout_ms)
{
    if (!p || !p->rk || !topic || !topic[0])
        return PATRON_EINVAL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
    if (!rkt)
        return PATRON_EINVAL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, rkt, &md, timeout_ms);
    int n = PATRON_EIO;
    if (!err && md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
        n = md->topics[0].partition_cnt;
    else if (!err && md->topic_cnt == 1 &&
             md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        n = PATRON_ENOTFOUND;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}
