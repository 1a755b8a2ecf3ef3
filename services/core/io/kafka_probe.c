#include "patron/kafka_probe.h"

#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"

#define SKEW_MS 60000 /* producers' clocks may be this far behind ours */
#define PROBE_TAIL_MAX 1000000

struct range {
    const char *topic;
    int32_t partition;
    int64_t since_ms;
    int64_t start, high;
    bool done;
};

static struct range *range_of(struct range *r, size_t n, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].partition == partition && strcmp(r[i].topic, topic) == 0)
            return &r[i];
    return NULL;
}

static rd_kafka_t *open_client(const char *brokers, const char *const *props, size_t n_props,
                               char *err, size_t errlen)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    const char *base[] = {"bootstrap.servers",
                          brokers,
                          "group.id",
                          "patron-probe",
                          "enable.auto.commit",
                          "false",
                          "enable.partition.eof",
                          "true",
                          "log_level",
                          "3"};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(base); i += 2)
        if (rd_kafka_conf_set(conf, base[i], base[i + 1], err, errlen) != RD_KAFKA_CONF_OK)
            goto out_destroy_conf;
    for (size_t i = 0; i < n_props; i++)
        if (rd_kafka_conf_set(conf, props[2 * i], props[2 * i + 1], err, errlen) !=
            RD_KAFKA_CONF_OK)
            goto out_destroy_conf;
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (rk == NULL)
        goto out_destroy_conf;
    return rk; /* the client owns conf now */

out_destroy_conf:
    rd_kafka_conf_destroy(conf);
    return NULL;
}

/* Where each partition's search starts and ends. */
static int plan(rd_kafka_t *rk, struct range *ranges, size_t nr, int timeout_ms, char *err,
                size_t errlen)
{
    rd_kafka_topic_partition_list_t *times = rd_kafka_topic_partition_list_new((int)nr);
    for (size_t i = 0; i < nr; i++)
        rd_kafka_topic_partition_list_add(times, ranges[i].topic, ranges[i].partition)->offset =
            ranges[i].since_ms - SKEW_MS;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(rk, times, timeout_ms);
    for (size_t i = 0; i < nr; i++) {
        int64_t low = 0, high = 0;
        rd_kafka_resp_err_t we = rd_kafka_query_watermark_offsets(
            rk, ranges[i].topic, ranges[i].partition, &low, &high, timeout_ms);
        if (we) {
            snprintf(err, errlen, "watermarks of %s [%d]: %s", ranges[i].topic, ranges[i].partition,
                     rd_kafka_err2str(we));
            rd_kafka_topic_partition_list_destroy(times);
            return PATRON_EIO;
        }
        const rd_kafka_topic_partition_t *t = &times->elems[i];
        /* -1 means "no message that recent" from a real broker, and "cannot
         * search by time" from librdkafka's mock cluster: both read the
         * partition's tail instead, at most PROBE_TAIL_MAX messages (a
         * message older than that is far outside any delivery timeout). */
        int64_t start = high - PROBE_TAIL_MAX > low ? high - PROBE_TAIL_MAX : low;
        if (!e && !t->err && t->offset >= 0)
            start = t->offset > low ? t->offset : low;
        ranges[i].start = start;
        ranges[i].high = high;
        ranges[i].done = start >= high;
    }
    rd_kafka_topic_partition_list_destroy(times);
    return 0;
}

int patron_kafka_probe(const char *brokers, const char *const *props, size_t n_props,
                       struct patron_probe *probes, size_t n,
                       bool (*id_of)(const void *value, size_t len,
                                     char out[PATRON_PROBE_ID_MAX + 1]),
                       int timeout_ms, char *err, size_t errlen)
{
    if (brokers == NULL || (probes == NULL && n > 0) || id_of == NULL || err == NULL || errlen == 0)
        return PATRON_EINVAL;
    err[0] = 0;
    for (size_t i = 0; i < n; i++)
        probes[i].found = false;
    if (n == 0)
        return 0;
    int rc = PATRON_EIO;
    int64_t deadline = patron_monotonic_ms() + timeout_ms;
    rd_kafka_t *rk = open_client(brokers, props, n_props, err, errlen);
    if (rk == NULL)
        return PATRON_EIO;

    /* Each probe's partition, as the producer's partitioner chose it. */
    struct range *ranges = patron_calloc(n, sizeof(*ranges));
    int32_t *part_of = patron_calloc(n, sizeof(*part_of));
    size_t nr = 0;
    for (size_t i = 0; i < n; i++) {
        rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, probes[i].topic, NULL);
        if (rkt == NULL) {
            snprintf(err, errlen, "topic %s: %s", probes[i].topic,
                     rd_kafka_err2str(rd_kafka_last_error()));
            goto out_free;
        }
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
        int cnt =
            (!e && md->topic_cnt == 1 && !md->topics[0].err) ? md->topics[0].partition_cnt : 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        if (cnt <= 0) {
            snprintf(err, errlen, "metadata of %s: %s", probes[i].topic,
                     e ? rd_kafka_err2str(e) : "no partitions");
            rd_kafka_topic_destroy(rkt);
            goto out_free;
        }
        part_of[i] = rd_kafka_msg_partitioner_murmur2(rkt, probes[i].key, probes[i].key_len, cnt,
                                                      NULL, NULL);
        rd_kafka_topic_destroy(rkt);
        struct range *r = range_of(ranges, nr, probes[i].topic, part_of[i]);
        if (r == NULL) {
            r = &ranges[nr++];
            r->topic = probes[i].topic;
            r->partition = part_of[i];
            r->since_ms = probes[i].since_ms;
        } else if (probes[i].since_ms < r->since_ms) {
            r->since_ms = probes[i].since_ms;
        }
    }
    if ((rc = plan(rk, ranges, nr, timeout_ms, err, errlen)))
        goto out_free;

    rd_kafka_topic_partition_list_t *assign = rd_kafka_topic_partition_list_new((int)nr);
    size_t open = 0;
    for (size_t i = 0; i < nr; i++)
        if (!ranges[i].done) {
            rd_kafka_topic_partition_list_add(assign, ranges[i].topic, ranges[i].partition)
                ->offset = ranges[i].start;
            open++;
        }
    rc = 0;
    if (open > 0) {
        rd_kafka_resp_err_t e = rd_kafka_assign(rk, assign);
        if (e) {
            snprintf(err, errlen, "assign: %s", rd_kafka_err2str(e));
            rc = PATRON_EIO;
        }
    }
    rd_kafka_topic_partition_list_destroy(assign);

    char id[PATRON_PROBE_ID_MAX + 1];
    while (rc == 0 && open > 0) {
        if (patron_monotonic_ms() >= deadline) {
            snprintf(err, errlen, "timed out with %zu partitions unread", open);
            rc = PATRON_EIO;
            break;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        struct range *r =
            m->rkt ? range_of(ranges, nr, rd_kafka_topic_name(m->rkt), m->partition) : NULL;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(err, errlen, "read: %s", rd_kafka_message_errstr(m));
            rc = PATRON_EIO;
        } else if (r && !r->done) {
            if (!m->err && id_of(m->payload, m->len, id)) {
                for (size_t i = 0; i < n; i++)
                    if (part_of[i] == r->partition && strcmp(probes[i].topic, r->topic) == 0 &&
                        strcmp(probes[i].id, id) == 0)
                        probes[i].found = true;
            }
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->offset + 1 >= r->high) {
                r->done = true;
                open--;
            }
        }
        rd_kafka_message_destroy(m);
    }

out_free:
    free(part_of);
    free(ranges);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}
