/*
 * patron-replay: a developer tool that produces patron.v1.Event messages —
 * the Online Retail data set, a synthetic benchmark load, or a file of
 * events made earlier — to Kafka (a plain librdkafka producer, polled from
 * the one thread) or to a file of length-prefixed events.
 *
 * Ownership: the sink owns its producer or FILE; the emitter borrows the sink
 * and owns its resend queue and customer set; encoded events passed to
 * replay_emit are copied before it returns. Single-threaded; librdkafka's
 * delivery callbacks run inside rd_kafka_poll/flush on this thread.
 *
 * Guarantees: an event is handed to the sink exactly once plus its resends;
 * replay_sink_close returns PATRON_EIO unless every message was delivered
 * (or written and flushed). Everything random is seeded (rng.h).
 */
#ifndef PATRON_REPLAY_H
#define PATRON_REPLAY_H

#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "patron/common.h"
#include "patron/strmap.h"
#include "rng.h"

/* A message may be at most this big: Kafka's default message.max.bytes. */
#define REPLAY_MESSAGE_MAX ((size_t)1000000)
/* librdkafka properties passed with -X key=value. */
#define REPLAY_PROPS_MAX 32
/* Resent copies wait 0..resend_delay_max further events; by default this
 * many (--resend-delay-max: up to a whole year of the shop, a backfill). */
#define REPLAY_RESEND_DELAY_DEFAULT 50
/* Garbage message i comes 1..2*REPLAY_GARBAGE_GAP events after message i-1. */
#define REPLAY_GARBAGE_GAP 50

struct replay_prop {
    const char *key; /* borrowed from argv */
    const char *value;
};

enum replay_mode { REPLAY_ONLINE_RETAIL = 1, REPLAY_SYNTHETIC = 2, REPLAY_FILE = 4 };

/* The command line, checked by main.c; strings are borrowed from argv. */
struct replay_options {
    enum replay_mode mode;
    const char *brokers;
    const char *topic;
    const char *out_path; /* --out: write a file instead of producing */
    struct replay_prop props[REPLAY_PROPS_MAX];
    size_t n_props;
    uint64_t seed;
    uint64_t resend_percent;   /* 0..100 */
    uint64_t resend_delay_max; /* a copy waits 0..this many further events (default 50) */
    uint64_t garbage;
    uint64_t limit; /* 0: no limit */
    uint64_t rate;  /* events per second, 0: as fast as possible */
    bool progress;
    uint64_t flush_timeout_ms;
    /* online-retail */
    const char *csv_path;
    bool derive_browse;
    bool derive_profile;       /* --derive-profile: time zone, birthday, consent, visitors */
    bool no_visitors;          /* --no-visitors: --derive-profile without anonymous visitors
                                  (a backtest deterministic to the message: guarantees.md) */
    const char *catalog_topic; /* --catalog-topic: an ItemUpdate per item, first seen */
    bool has_until;
    int64_t until_ms; /* --until: only invoices before this (UTC epoch ms) */
    bool has_from;
    int64_t from_ms; /* --from: only events from this time on (UTC epoch ms) */
    /* file */
    const char *in_path;
    /* synthetic */
    uint64_t events, customers, regulars, items, step_ms;
    uint64_t anonymous_percent, visitors; /* --anonymous-percent of events are visitors' */
    double zipf_s;
    bool partitions_hint;
};

enum replay_sink_kind { REPLAY_SINK_KAFKA, REPLAY_SINK_FILE };

struct replay_sink {
    enum replay_sink_kind kind;
    rd_kafka_t *rk;    /* owned (Kafka) */
    const char *topic; /* borrowed */
    FILE *out;         /* owned (file) */
    const char *path;  /* borrowed */
    uint64_t produced; /* handed to the producer or written */
    uint64_t delivered;
    uint64_t failed;
    char first_error[256]; /* the first delivery error, for the message */
};

/* `bulk` chooses big batches and a long linger (benchmarks) over low latency. */
int replay_sink_open_kafka(struct replay_sink *s, const struct replay_options *o,
                           bool bulk) PATRON_MUST_USE;
int replay_sink_open_file(struct replay_sink *s, const char *path) PATRON_MUST_USE;
/* Copies key and value. Waits (polling) while the producer's queue is full. */
int replay_sink_put(struct replay_sink *s, const char *key, size_t key_len, const void *value,
                    size_t len) PATRON_MUST_USE;
/* As replay_sink_put, to another topic of the same producer (Kafka only). */
int replay_sink_put_to(struct replay_sink *s, const char *topic, const char *key, size_t key_len,
                       const void *value, size_t len) PATRON_MUST_USE;
/* Flushes and frees; PATRON_EIO if anything was not delivered or written. */
int replay_sink_close(struct replay_sink *s, uint64_t flush_timeout_ms) PATRON_MUST_USE;

struct replay_resend {
    uint64_t due; /* send after the event with this number */
    uint64_t seq; /* ties: in the order they were queued */
    char *key;
    size_t key_len;
    uint8_t *buf;
    size_t len;
};

/* Copies waiting at once: resend_percent of resend_delay_max events, so at
 * most resend_delay_max + 1; beyond this many the earliest go at once. */
#define REPLAY_RESEND_QUEUE_MAX (1u << 20)

struct replay_emitter {
    struct replay_sink *sink; /* borrowed */
    const struct replay_options *opt;
    struct replay_rng resend_rng, garbage_rng;
    struct replay_resend *queue; /* a min-heap by (due, seq) */
    size_t queued, cap;
    uint64_t queued_seq;
    uint64_t next_garbage_at; /* event number after which garbage comes next */
    uint64_t events, resent, garbage;
    bool count_customers;                /* else the caller sets `customers` */
    struct patron_strmap customers_seen; /* keys owned (strdup) */
    uint64_t customers;
    /* Set by the caller when it makes visitors' events (the summary says
     * so then): distinct visitors, and Identify events. */
    uint64_t visitors, identifies;
    uint8_t *last; /* the last event's bytes, truncated into garbage */
    size_t last_len;
    int64_t start_ms; /* monotonic, for --rate and --progress */
    int64_t next_progress_ms;
};

void replay_emitter_init(struct replay_emitter *e, struct replay_sink *sink,
                         const struct replay_options *opt, bool count_customers);
/* One contract event (copied), followed by whatever resends and garbage are
 * due after it. */
int replay_emit(struct replay_emitter *e, const char *key, size_t key_len, const uint8_t *buf,
                size_t len) PATRON_MUST_USE;
/* The same for a visitor's event (keyed by its anonymous id): counted among
 * the visitors, not the customers. */
int replay_emit_visitor(struct replay_emitter *e, const char *key, size_t key_len,
                        const uint8_t *buf, size_t len) PATRON_MUST_USE;
/* Sends the resends still waiting and the garbage not placed yet. */
int replay_emitter_finish(struct replay_emitter *e) PATRON_MUST_USE;
void replay_emitter_free(struct replay_emitter *e);
/* The final line: {"events":E,"resent":R,"garbage":G,"customers":C}, with
 * "visitors":V,"identifies":I when visitors were made. */
void replay_emitter_summary(const struct replay_emitter *e, FILE *out);

/* The modes; each returns a process exit code after printing its summary. */
int replay_online_retail(const struct replay_options *o);
int replay_synthetic(const struct replay_options *o);
int replay_file(const struct replay_options *o);

/* Opens the sink the options ask for: --out FILE or Kafka. */
int replay_sink_open(struct replay_sink *s, const struct replay_options *o,
                     bool bulk) PATRON_MUST_USE;

#endif
