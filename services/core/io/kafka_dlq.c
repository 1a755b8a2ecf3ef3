/* Dead letters (kafka.h): the original record, cut to what the producer
 * can send, with where it came from and why. Built on the producer's
 * public calls only. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "patron/kafka.h"

/* What a dead letter's key and value may take: the producer's
 * message.max.bytes less its headers and a margin for the record's framing
 * (librdkafka checks key + value against message.max.bytes, the broker
 * checks the whole batch against the topic's max.message.bytes). */
#define DLQ_FRAMING_MARGIN 512

/* Room for a number's text, the decimal of an int64 or a size_t. */
#define NUM_MAX 24

size_t patron_dlq_room(const struct patron_producer *p, const rd_kafka_message_t *orig,
                       const char *error)
{
    size_t max = patron_producer_max_message_bytes(p);
    size_t whylen = strnlen(error ? error : "", PATRON_DLQ_ERROR_MAX);
    const char *topic = orig->rkt ? rd_kafka_topic_name(orig->rkt) : "";
    /* every header's name and the longest its value can be, and room for
     * their framing (two varints each) */
    size_t headers = 5 + whylen + 12 + strlen(topic) + 16 + NUM_MAX + 13 + NUM_MAX + 13 + NUM_MAX +
                     17 + NUM_MAX + 9 + 4 + 8 * 16;
    return max > headers + DLQ_FRAMING_MARGIN ? max - headers - DLQ_FRAMING_MARGIN : 0;
}

int patron_dlq_send_max(struct patron_producer *p, const char *dlq_topic,
                        const rd_kafka_message_t *orig, const char *error, size_t value_max,
                        patron_delivery_cb cb, void *ud)
{
    if (!p || !dlq_topic || !orig || !cb)
        return PATRON_EINVAL;
    const char *why = error ? error : "";
    size_t whylen = strnlen(why, PATRON_DLQ_ERROR_MAX);
    const char *topic = orig->rkt ? rd_kafka_topic_name(orig->rkt) : "";
    char part[NUM_MAX], off[NUM_MAX], size[NUM_MAX], key_size[NUM_MAX];
    (void)snprintf(part, sizeof part, "%" PRId32, orig->partition);
    (void)snprintf(off, sizeof off, "%" PRId64, orig->offset);
    size_t room = patron_dlq_room(p, orig, error);
    /* the key first (it partitions the DLQ like its topic), then the value */
    size_t key_len = orig->key_len < room ? orig->key_len : room;
    size_t value_len = orig->len < room - key_len ? orig->len : room - key_len;
    if (value_len > value_max)
        value_len = value_max;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    /* rd_kafka_header_add only fails for a read-only header list. */
    (void)rd_kafka_header_add(h, "error", -1, why, (ssize_t)whylen);
    (void)rd_kafka_header_add(h, "source.topic", -1, topic, -1);
    (void)rd_kafka_header_add(h, "source.partition", -1, part, -1);
    (void)rd_kafka_header_add(h, "source.offset", -1, off, -1);
    if (value_len < orig->len || key_len < orig->key_len) {
        (void)snprintf(size, sizeof size, "%zu", orig->len);
        (void)rd_kafka_header_add(h, "original.size", -1, size, -1);
        (void)rd_kafka_header_add(h, "truncated", -1, "true", -1);
        if (key_len < orig->key_len) {
            (void)snprintf(key_size, sizeof key_size, "%zu", orig->key_len);
            (void)rd_kafka_header_add(h, "original.key.size", -1, key_size, -1);
        }
    }
    return patron_producer_send(p, dlq_topic, RD_KAFKA_PARTITION_UA, orig->key, key_len,
                                orig->payload, value_len, h, cb, ud);
}

int patron_dlq_send(struct patron_producer *p, const char *dlq_topic,
                    const rd_kafka_message_t *orig, const char *error, patron_delivery_cb cb,
                    void *ud)
{
    return patron_dlq_send_max(p, dlq_topic, orig, error, SIZE_MAX, cb, ud);
}
