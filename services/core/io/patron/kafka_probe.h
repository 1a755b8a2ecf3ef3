/*
 * Did it land? Looks for messages in a topic by an id, for the outbox of
 * patron-trigger: after a crash, a message that was committed to Redis but
 * whose delivery report never came may or may not be in Kafka, and sending
 * it again blindly would duplicate it.
 *
 * BLOCKING: opens its own short-lived librdkafka client, reads, closes. Run
 * it on a worker thread (uv_queue_work), never on the loop. Nothing shared:
 * safe from any thread. Reads only; commits nothing.
 */
#ifndef PATRON_KAFKA_PROBE_H
#define PATRON_KAFKA_PROBE_H

#include "patron/common.h"

#define PATRON_PROBE_ID_MAX 64

/* One message looked for: in `topic`, in the partition the Java client's
 * murmur2 partitioner gives its key, at or after since_ms (the producer's
 * timestamp; the search starts a minute earlier for clock skew). */
struct patron_probe {
    const char *topic;
    const char *key;
    size_t key_len;
    int64_t since_ms;
    char id[PATRON_PROBE_ID_MAX + 1];
    bool found; /* out */
};

/* `id_of` extracts a message's id from its value (false: not one of ours).
 * Reads each partition concerned from its start offset to the high
 * watermark seen at the start of the call, for at most timeout_ms. On error
 * (PATRON_EIO: brokers unreachable, timeout) `found` flags are not to be
 * trusted and `err` says why; props: n_props key/value pairs as in kafka.h. */
int patron_kafka_probe(const char *brokers, const char *const *props, size_t n_props,
                       struct patron_probe *probes, size_t n,
                       bool (*id_of)(const void *value, size_t len,
                                     char out[PATRON_PROBE_ID_MAX + 1]),
                       int timeout_ms, char *err, size_t errlen) PATRON_MUST_USE;

#endif
