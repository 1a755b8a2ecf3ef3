/* Where events go: a librdkafka producer or a file of length-prefixed events. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "replay.h"

/* Called from rd_kafka_poll/flush on this thread, once per message. */
static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    struct replay_sink *s = opaque;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->delivered++;
        return;
    }
    if (s->failed++ == 0)
        snprintf(s->first_error, sizeof(s->first_error), "%s", rd_kafka_err2str(m->err));
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, key, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "patron-replay: kafka property %s=%s: %s\n", key, value, err);
        return PATRON_EINVAL;
    }
    return 0;
}

int replay_sink_open_kafka(struct replay_sink *s, const struct replay_options *o, bool bulk)
{
    /* Replays of real data favour a steady trickle; benchmarks favour
     * throughput. -X overrides either. */
    static const struct replay_prop latency[] = {
        {"linger.ms", "5"},
        {"queue.buffering.max.messages", "100000"},
    };
    static const struct replay_prop throughput[] = {
        {"linger.ms", "50"},
        {"batch.num.messages", "10000"},
        {"batch.size", "1000000"},
        {"queue.buffering.max.messages", "1000000"},
        {"queue.buffering.max.kbytes", "1048576"},
    };
    memset(s, 0, sizeof(*s));
    s->kind = REPLAY_SINK_KAFKA;
    s->topic = o->topic;

    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = PATRON_EINVAL;
    if (o->brokers && conf_set(conf, "bootstrap.servers", o->brokers) < 0)
        goto out_free_conf;
    const struct replay_prop *defaults = bulk ? throughput : latency;
    size_t n_defaults = bulk ? PATRON_ARRAY_LEN(throughput) : PATRON_ARRAY_LEN(latency);
    for (size_t i = 0; i < n_defaults; i++)
        if (conf_set(conf, defaults[i].key, defaults[i].value) < 0)
            goto out_free_conf;
    for (size_t i = 0; i < o->n_props; i++)
        if (conf_set(conf, o->props[i].key, o->props[i].value) < 0)
            goto out_free_conf;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, s);

    char err[512];
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (!s->rk) {
        fprintf(stderr, "patron-replay: kafka producer: %s\n", err);
        goto out_free_conf;
    }
    return 0; /* conf is the producer's now */

out_free_conf:
    rd_kafka_conf_destroy(conf);
    return rc;
}

int replay_sink_open_file(struct replay_sink *s, const char *path)
{
    memset(s, 0, sizeof(*s));
    s->kind = REPLAY_SINK_FILE;
    s->path = path;
    s->out = fopen(path, "wb");
    if (!s->out) {
        fprintf(stderr, "patron-replay: %s: %s\n", path, strerror(errno));
        return PATRON_EIO;
    }
    /* Big writes: the synthetic generator writes >500k events/s. */
    if (setvbuf(s->out, NULL, _IOFBF, 1 << 20) != 0) {
        fclose(s->out);
        s->out = NULL;
        return PATRON_EIO;
    }
    return 0;
}

int replay_sink_open(struct replay_sink *s, const struct replay_options *o, bool bulk)
{
    if (o->out_path)
        return replay_sink_open_file(s, o->out_path);
    return replay_sink_open_kafka(s, o, bulk);
}

int replay_sink_put(struct replay_sink *s, const char *key, size_t key_len, const void *value,
                    size_t len)
{
    return replay_sink_put_to(s, s->topic, key, key_len, value, len);
}

int replay_sink_put_to(struct replay_sink *s, const char *topic, const char *key, size_t key_len,
                       const void *value, size_t len)
{
    if (len > REPLAY_MESSAGE_MAX)
        return PATRON_ETOOBIG;
    if (s->kind == REPLAY_SINK_FILE) {
        uint8_t head[4] = {(uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                           (uint8_t)len};
        if (fwrite(head, 1, 4, s->out) != 4 || fwrite(value, 1, len, s->out) != len) {
            fprintf(stderr, "patron-replay: %s: %s\n", s->path, strerror(errno));
            return PATRON_EIO;
        }
        s->produced++;
        s->delivered++;
        return 0;
    }
    for (;;) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *)value, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            break;
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            fprintf(stderr, "patron-replay: produce to %s: %s\n", topic, rd_kafka_err2str(err));
            return PATRON_EIO;
        }
        /* The queue drains only as deliveries are served. */
        rd_kafka_poll(s->rk, 100);
    }
    s->produced++;
    /* Serve delivery reports now and then so that the queue does not fill. */
    if ((s->produced & 1023) == 0)
        rd_kafka_poll(s->rk, 0);
    return 0;
}

int replay_sink_close(struct replay_sink *s, uint64_t flush_timeout_ms)
{
    int rc = 0;
    if (s->kind == REPLAY_SINK_FILE) {
        if (!s->out)
            return 0;
        if (fflush(s->out) != 0 || ferror(s->out)) {
            fprintf(stderr, "patron-replay: %s: %s\n", s->path, strerror(errno));
            rc = PATRON_EIO;
        }
        if (fclose(s->out) != 0 && rc == 0) {
            fprintf(stderr, "patron-replay: %s: %s\n", s->path, strerror(errno));
            rc = PATRON_EIO;
        }
        s->out = NULL;
        return rc;
    }
    if (!s->rk)
        return 0;
    int timeout = flush_timeout_ms > INT32_MAX ? INT32_MAX : (int)flush_timeout_ms;
    rd_kafka_resp_err_t err = rd_kafka_flush(s->rk, timeout);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "patron-replay: flush: %s, %d messages not delivered\n",
                rd_kafka_err2str(err), rd_kafka_outq_len(s->rk));
        rc = PATRON_EIO;
        /* Without this, destroy would wait for brokers that did not answer. */
        if (rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT) ==
            RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_poll(s->rk, 0);
    }
    if (s->failed > 0) {
        fprintf(stderr, "patron-replay: %" PRIu64 " messages failed, first: %s\n", s->failed,
                s->first_error);
        rc = PATRON_EIO;
    }
    rd_kafka_destroy(s->rk);
    s->rk = NULL;
    return rc;
}
