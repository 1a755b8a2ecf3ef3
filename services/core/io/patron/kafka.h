/*
 * Kafka consumer and producer on the service's libuv loop (librdkafka 2.0).
 *
 * librdkafka runs its own threads; these adapters make everything the
 * application sees happen on the loop: a queue's IO event (a pipe watched by
 * uv_poll, plus a 100 ms timer as a safety net) tells the loop to serve the
 * queue, and every callback below (ready, rebalance, delivery, logs and
 * errors) runs inside a call made on the loop. Threading: loop thread only.
 *
 * Ownership: options' strings are copied into librdkafka's configuration;
 * consumed messages belong to the caller (rd_kafka_message_destroy); the
 * producer copies keys and values and takes the headers.
 *
 * Guarantees: the consumer stores offsets only when the application says so
 * (patron_consumer_store, the next offset to read, after its work is
 * acknowledged), and auto-commit commits what was stored: at least once.
 * The producer is idempotent with acks=all and never drops a message: the
 * delivery callback runs exactly once per accepted send.
 */
#ifndef PATRON_KAFKA_H
#define PATRON_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "patron/common.h"

struct patron_log;
struct patron_consumer;
struct patron_producer;

/* Messages the producer holds in its own backlog while librdkafka's queue
 * is full (queue.buffering.max.messages), and their bytes. */
#define PATRON_PRODUCER_BACKLOG_MAX 100000
#define PATRON_PRODUCER_BACKLOG_MAX_BYTES (64u << 20)
/* Bytes of the DLQ's `error` header; longer reasons are cut. */
#define PATRON_DLQ_ERROR_MAX 1024

/* ---- consumer ----------------------------------------------------------- */

struct patron_consumer_options {
    const char *brokers, *group_id;
    const char **topics;
    size_t n_topics;
    /* Extra librdkafka properties, applied last (TLS, SASL, tuning):
     * props holds n_props key, value PAIRS, i.e. 2 * n_props strings. */
    const char *const *props;
    size_t n_props;
    /* Rebalance, on the loop, from inside patron_consumer_poll (or close),
     * with the partitions that change hands (never an empty list; with the
     * cooperative protocol only the ones that move). on_assign runs before
     * the partitions are assigned and on_revoke before they are given up: offsets stored during
     * on_revoke are committed, and the application should store what it has finished there. Both
     * may be NULL. */
    void (*on_assign)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    void (*on_revoke)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    void *ud;
    const struct patron_log *log; /* borrowed, may be NULL: librdkafka logs to stderr */
};

/* Joins the group and subscribes. On failure `err` says why (a bad
 * property is named) and nothing needs closing. Defaults (overridden by
 * props): auto-commit of stored offsets only, earliest, the
 * cooperative-sticky assignor, fetch.wait.max.ms=100, and for memory
 * queued.max.messages.kbytes=32768 (fetched, not yet polled) and
 * fetch.max.bytes=16777216 (one fetch response). */
int patron_consumer_open(struct patron_consumer **out, uv_loop_t *loop,
                         const struct patron_consumer_options *o, char *err,
                         size_t errlen) PATRON_MUST_USE;

/* Non-blocking: up to max messages already fetched (0 if none). Error
 * events are logged here and never returned. Keep polling while paused:
 * rebalances are served by this call (librdkafka leaves the group when it is
 * not called within max.poll.interval.ms). */
size_t patron_consumer_poll(struct patron_consumer *c, rd_kafka_message_t **msgs, size_t max);

/* The same, stopping once the messages taken hold max_bytes of keys and
 * values (the last one may pass it): what the caller holds stays bounded
 * by bytes too. */
size_t patron_consumer_poll_bytes(struct patron_consumer *c, rd_kafka_message_t **msgs, size_t max,
                                  size_t max_bytes);

/* `ready` runs on the loop when the consumer's queue turns non-empty, and
 * every 100 ms; it should call patron_consumer_poll. A caller that leaves
 * messages in the queue (it took fewer than were waiting) polls again itself
 * when it can take more, or waits for the next tick. */
void patron_consumer_set_ready_cb(struct patron_consumer *c, void (*ready)(void *ud), void *ud);

/* Marks everything before next_offset of the partition done; the next
 * auto-commit (or close) commits it. PATRON_ENOTFOUND when the partition is
 * no longer assigned (a rebalance moved it: its new owner will redo the
 * work), PATRON_EINVAL for bad arguments. */
int patron_consumer_store(struct patron_consumer *c, const char *topic, int32_t partition,
                          int64_t next_offset) PATRON_MUST_USE;

/* Stop / restart fetching on every assigned partition; partitions assigned
 * later take the state of the last call (paused, or fetching: librdkafka
 * would otherwise keep a revoked partition's pause when it is assigned
 * again). Backpressure: messages fetched before the pause may still come
 * out of poll. */
int patron_consumer_pause_all(struct patron_consumer *c) PATRON_MUST_USE;
int patron_consumer_resume_all(struct patron_consumer *c) PATRON_MUST_USE;
bool patron_consumer_paused(const struct patron_consumer *c);

/* Rewinds an assigned partition so that `offset` is the next message poll
 * returns (e.g. to redo work that failed); waits (bounded) until no message
 * fetched from the old position can come out of poll. PATRON_ENOTFOUND if
 * the partition is not assigned, PATRON_EIO otherwise. */
int patron_consumer_seek(struct patron_consumer *c, const char *topic, int32_t partition,
                         int64_t offset) PATRON_MUST_USE;

/* Messages of the partition after `next_offset` (the application's own next
 * offset; negative: the consumer's fetch position), from the high watermark
 * of the last fetch response: >= 0, or a negative PATRON_E* when the
 * partition is not assigned (PATRON_ENOTFOUND) or its watermark or position
 * is not known (PATRON_EIO): not fetched yet, or possibly stale because the
 * consumer is paused or resumed less than PATRON_LAG_SETTLE_MS ago. A 0 is
 * what the event clock's idleness rests on (ingest marks partitions idle,
 * the trigger fires timers to now), so it is never a stale one. */
#define PATRON_LAG_SETTLE_MS 1000 /* fetches answer within fetch.wait.max.ms (100) */
int64_t patron_consumer_lag(struct patron_consumer *c, const char *topic, int32_t partition,
                            int64_t next_offset);

/* Calls `fn` for every assigned partition with its lag from the fetch
 * position (-1 when not known yet); returns the number of partitions or a
 * negative PATRON_E*. */
int patron_consumer_lag_each(struct patron_consumer *c,
                             void (*fn)(void *ud, const char *topic, int32_t partition,
                                        int64_t lag),
                             void *ud) PATRON_MUST_USE;

/* Commits the stored offsets synchronously, leaves the group (on_revoke
 * runs), destroys the client. Blocks the loop for up to about
 * session.timeout.ms when the broker does not answer. Memory is freed once
 * the loop has run the handles' close callbacks. May be called from `ready`,
 * not from on_assign / on_revoke. */
void patron_consumer_close(struct patron_consumer *c);

/* ---- producer ----------------------------------------------------------- */

/* props: n_props key, value pairs as above. Defaults (overridden by props): acks=all,
 * enable.idempotence=true, linger.ms=5, batch.num.messages=10000, compression none,
 * queue.buffering.max.messages=1000000, queue.buffering.max.kbytes=65536,
 * partitioner=murmur2_random (the Java client's, so that keys land where
 * other producers put them). */
int patron_producer_open(struct patron_producer **out, uv_loop_t *loop, const char *brokers,
                         const char *const *props, size_t n_props, char *err,
                         size_t errlen) PATRON_MUST_USE;
/* As above, with a logger for librdkafka's logs and errors. */
int patron_producer_open_log(struct patron_producer **out, uv_loop_t *loop, const char *brokers,
                             const char *const *props, size_t n_props, const struct patron_log *log,
                             char *err, size_t errlen) PATRON_MUST_USE;

/* Runs once per accepted send, on the loop, with err == NO_ERROR when the
 * broker acknowledged it. `msg` is valid only inside the callback and is
 * NULL when the message never reached librdkafka (close with a backlog). */
typedef void (*patron_delivery_cb)(void *ud, rd_kafka_resp_err_t err,
                                   const rd_kafka_message_t *msg);

/* Copies topic, key and value; takes `headers` (may be NULL) even when it
 * fails. Messages keep their order per partition, through the backlog too.
 * PATRON_ETOOBIG when the message exceeds message.max.bytes (it never will
 * fit), PATRON_EAGAIN when the backlog is full (try again once deliveries
 * came back), PATRON_EINVAL for bad arguments or an unknown partition,
 * PATRON_EIO when closing or after a fatal error. On failure the callback
 * never runs. */
int patron_producer_send(struct patron_producer *p, const char *topic, int32_t partition,
                         const void *key, size_t keylen, const void *value, size_t len,
                         rd_kafka_headers_t *headers, patron_delivery_cb cb,
                         void *ud) PATRON_MUST_USE;

/* Accepted sends whose callback has not run yet (backlog included). */
size_t patron_producer_outstanding(const struct patron_producer *p);

/* Flushes (bounded by timeout_ms), then destroys. Delivery callbacks run
 * inside this call: the delivered ones, then the messages still not
 * delivered with a purge error. Returns how many those were. Not from
 * inside a delivery callback. */
size_t patron_producer_close(struct patron_producer *p, int timeout_ms);

/* The producer's message.max.bytes (librdkafka's limit on key + value). */
size_t patron_producer_max_message_bytes(const struct patron_producer *p);

/* The partition count of `topic`, from a metadata request that blocks the
 * loop for up to timeout_ms (at start, or rarely): > 0, PATRON_ENOTFOUND
 * when the topic does not exist, PATRON_EIO when the brokers did not
 * answer in time. */
int patron_producer_partitions(struct patron_producer *p, const char *topic,
                               int timeout_ms) PATRON_MUST_USE;

/* Sends `orig`'s key and value to the dead-letter topic (partitioned by the
 * key) with headers error, source.topic, source.partition, source.offset.
 * A record too big for the producer (a topic may take records larger than
 * librdkafka's message.max.bytes) is cut to what it can send: its value
 * (and, past that, its key) cut to fit, with the headers original.size
 * (the value's bytes, decimal), truncated ("true") and, when the key was
 * cut, original.key.size. So a dead letter never fails for its size. */
int patron_dlq_send(struct patron_producer *p, const char *dlq_topic,
                    const rd_kafka_message_t *orig, const char *error, patron_delivery_cb cb,
                    void *ud) PATRON_MUST_USE;

/* What of orig's key and value a dead letter with that error carries
 * whole: a larger one is cut to this many bytes. */
size_t patron_dlq_room(const struct patron_producer *p, const rd_kafka_message_t *orig,
                       const char *error);

/* The same with the value cut to value_max bytes at most (0: headers and
 * key only), for a dead letter whose topic refused it as too large
 * (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE: its max.message.bytes is below
 * the producer's message.max.bytes). */
int patron_dlq_send_max(struct patron_producer *p, const char *dlq_topic,
                        const rd_kafka_message_t *orig, const char *error, size_t value_max,
                        patron_delivery_cb cb, void *ud) PATRON_MUST_USE;

#endif
