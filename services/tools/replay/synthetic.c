/*
 * `patron-replay synthetic`: the benchmark's load, generated from a seed.
 *
 * The mix (per event): the customer is one of `regulars` with probability
 * 1/2, else uniform over `customers` (the regulars are customers
 * u0..u<regulars-1>, so they are part of the population); the kind is a view
 * (70%), cart add (13%), cart remove (4%), purchase of 1-5 lines (8%),
 * review (3%) or consent change (2%); items are Zipf(s) over `items` ranks
 * ("i<rank>", category "c<rank % 200>", a fixed price per item); event time
 * is start + seq * step_ms. Generation is allocation-free per event, so the
 * generator is not what a benchmark measures.
 *
 * Visitors (--anonymous-percent A): A% of events are anonymous, from
 * visitor "v<k>" (half from the `regulars` first visitors, else uniform
 * over `visitors`), keyed by that anonymous id, with no customer_id and
 * the same mix of kinds (a purchase is a guest purchase). One visitor in
 * three (k % 3 == 0) is a customer's device: a third of its events are an
 * Identify of it by customer u<mix(k) % customers> (keyed by the customer)
 * instead, so it is merged at its first and its later events are the
 * customer's; the other visitors stay anonymous.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "patron/v1/event.pb-c.h"
#include "replay.h"

enum { RNG_STREAM_SYNTHETIC = 4 };

/* 2024-01-01T00:00:00Z: a fixed start, so the same seed gives the same bytes. */
#define SYNTH_START_MS INT64_C(1704067200000)
#define SYNTH_CATEGORIES 200
#define SYNTH_LINES_MAX 5
#define SYNTH_EVENT_MAX 1024 /* bytes; a 5-line purchase is about 200 */
/* What the embedded Kafka keeps per partition (docs/architecture.md), and the per-record
 * overhead of Kafka's record format beyond key and value (an estimate). */
#define MOCK_PARTITION_BYTES ((uint64_t)5 * 1024 * 1024)
#define KAFKA_RECORD_OVERHEAD 16

struct item_ref {
    char id[24];
    char category[16];
    int64_t cents;
};

struct synth {
    const struct replay_options *o;
    struct replay_rng rng;
    struct replay_zipf zipf;
    uint8_t buf[SYNTH_EVENT_MAX];
};

/* Decimal digits of v after `prefix`, NUL-terminated; returns the length.
 * Faster than snprintf, which shows at >500k events/s. */
static size_t put_u64(char *dst, const char *prefix, uint64_t v)
{
    size_t n = strlen(prefix);
    memcpy(dst, prefix, n);
    char tmp[20];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (k)
        dst[n++] = tmp[--k];
    dst[n] = '\0';
    return n;
}

static void pick_item(struct synth *s, struct item_ref *it)
{
    uint64_t rank = replay_zipf_sample(&s->zipf, &s->rng);
    put_u64(it->id, "i", rank);
    put_u64(it->category, "c", rank % SYNTH_CATEGORIES);
    /* The catalogue does not depend on the seed: 0.99 .. 200.98. */
    it->cents = 99 + (int64_t)(replay_mix64(rank) % 20000);
}

/* What an event's key is. */
enum who { WHO_CUSTOMER, WHO_VISITOR, WHO_IDENTIFY };

/* Event number `seq`: its bytes in s->buf, its key in `key`; *who says whose
 * (a customer's, a visitor's, or an Identify keyed by the customer), *id
 * the customer's or visitor's number. */
static size_t synth_event(struct synth *s, uint64_t seq, char *key, size_t *key_len, uint64_t *id,
                          enum who *who)
{
    const struct replay_options *o = s->o;
    struct replay_rng *rng = &s->rng;
    char event_id[48], order_id[48];
    struct item_ref items[SYNTH_LINES_MAX];
    Patron__V1__LineItem lines[SYNTH_LINES_MAX];
    Patron__V1__LineItem *line_ptrs[SYNTH_LINES_MAX];
    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__ProductView view = PATRON__V1__PRODUCT_VIEW__INIT;
    Patron__V1__CartAdd add = PATRON__V1__CART_ADD__INIT;
    Patron__V1__CartRemove remove = PATRON__V1__CART_REMOVE__INIT;
    Patron__V1__Purchase purchase = PATRON__V1__PURCHASE__INIT;
    Patron__V1__Review review = PATRON__V1__REVIEW__INIT;
    Patron__V1__ConsentChange consent = PATRON__V1__CONSENT_CHANGE__INIT;
    Patron__V1__Identify identify = PATRON__V1__IDENTIFY__INIT;
    char anonymous_id[32];

    *who = WHO_CUSTOMER;
    if (o->anonymous_percent && replay_rng_below(rng, 100) < o->anonymous_percent)
        *who = WHO_VISITOR;
    uint64_t population = *who == WHO_VISITOR ? o->visitors : o->customers;
    if (o->regulars && replay_rng_below(rng, 2) == 0)
        *id = replay_rng_below(rng, o->regulars);
    else
        *id = replay_rng_below(rng, population);
    size_t n = put_u64(event_id, "sy", o->seed);
    put_u64(event_id + n, "-", seq);
    ev.event_id = event_id;
    ev.occurred_at_ms = SYNTH_START_MS + (int64_t)(seq * o->step_ms);
    if (*who == WHO_VISITOR && *id % 3 == 0 && replay_rng_below(rng, 3) == 0) {
        /* the visitor logs in: its customer says so */
        *who = WHO_IDENTIFY;
        put_u64(anonymous_id, "v", *id);
        *key_len = put_u64(key, "u", replay_mix64(*id) % o->customers);
        ev.customer_id = key;
        identify.anonymous_id = anonymous_id;
        ev.kind_case = PATRON__V1__EVENT__KIND_IDENTIFY;
        ev.identify = &identify;
        if (patron__v1__event__get_packed_size(&ev) > sizeof(s->buf))
            return 0;
        return patron__v1__event__pack(&ev, s->buf);
    }
    if (*who == WHO_VISITOR) {
        *key_len = put_u64(key, "v", *id);
        ev.customer_id = "";
        ev.anonymous_id = key;
    } else {
        *key_len = put_u64(key, "u", *id);
        ev.customer_id = key;
    }

    uint64_t dice = replay_rng_below(rng, 100);
    if (dice < 70) {
        pick_item(s, &items[0]);
        view.item_id = items[0].id;
        view.category = items[0].category;
        ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
        ev.view = &view;
    } else if (dice < 83) {
        pick_item(s, &items[0]);
        Patron__V1__LineItem li = PATRON__V1__LINE_ITEM__INIT;
        li.item_id = items[0].id;
        li.category = items[0].category;
        li.quantity = (int32_t)replay_rng_range(rng, 1, 2);
        li.unit_price_cents = items[0].cents;
        lines[0] = li;
        add.item = &lines[0];
        ev.kind_case = PATRON__V1__EVENT__KIND_CART_ADD;
        ev.cart_add = &add;
    } else if (dice < 87) {
        pick_item(s, &items[0]);
        remove.item_id = items[0].id;
        ev.kind_case = PATRON__V1__EVENT__KIND_CART_REMOVE;
        ev.cart_remove = &remove;
    } else if (dice < 95) {
        size_t k = (size_t)replay_rng_range(rng, 1, SYNTH_LINES_MAX);
        for (size_t i = 0; i < k; i++) {
            pick_item(s, &items[i]);
            Patron__V1__LineItem li = PATRON__V1__LINE_ITEM__INIT;
            li.item_id = items[i].id;
            li.category = items[i].category;
            li.quantity = (int32_t)replay_rng_range(rng, 1, 3);
            li.unit_price_cents = items[i].cents;
            lines[i] = li;
            line_ptrs[i] = &lines[i];
        }
        n = put_u64(order_id, "so", o->seed);
        put_u64(order_id + n, "-", seq);
        purchase.order_id = order_id;
        purchase.currency = "GBP";
        purchase.n_items = k;
        purchase.items = line_ptrs;
        ev.kind_case = PATRON__V1__EVENT__KIND_PURCHASE;
        ev.purchase = &purchase;
    } else if (dice < 98) {
        pick_item(s, &items[0]);
        review.item_id = items[0].id;
        review.rating = (int32_t)replay_rng_range(rng, 1, 5);
        ev.kind_case = PATRON__V1__EVENT__KIND_REVIEW;
        ev.review = &review;
    } else {
        consent.channel = (Patron__V1__Channel)replay_rng_range(rng, 1, 3);
        consent.granted = replay_rng_below(rng, 10) < 8;
        ev.kind_case = PATRON__V1__EVENT__KIND_CONSENT;
        ev.consent = &consent;
    }
    /* Bounded by construction (ids and lines are bounded), checked anyway. */
    if (patron__v1__event__get_packed_size(&ev) > sizeof(s->buf))
        return 0;
    return patron__v1__event__pack(&ev, s->buf);
}

static void bit_set(uint64_t *bits, uint64_t i, uint64_t *count)
{
    uint64_t mask = UINT64_C(1) << (i % 64);
    if (!(bits[i / 64] & mask)) {
        bits[i / 64] |= mask;
        (*count)++;
    }
}

/* --partitions-hint: how many partitions the embedded Kafka needs to keep
 * the whole load (it drops the oldest past 5 MiB per partition). */
static int partitions_hint(struct synth *s)
{
    const struct replay_options *o = s->o;
    uint64_t bytes = 0;
    char key[32];
    size_t key_len;
    uint64_t id;
    enum who who;
    for (uint64_t seq = 0; seq < o->events; seq++) {
        size_t len = synth_event(s, seq, key, &key_len, &id, &who);
        if (len == 0)
            return 1;
        bytes += len + key_len + KAFKA_RECORD_OVERHEAD;
    }
    /* A quarter of headroom: partitions fill unevenly. */
    uint64_t need = (bytes + bytes / 4 + MOCK_PARTITION_BYTES - 1) / MOCK_PARTITION_BYTES;
    printf("{\"partitions\":%" PRIu64 ",\"events\":%" PRIu64 ",\"bytes\":%" PRIu64
           ",\"partition_bytes\":%" PRIu64 "}\n",
           need ? need : 1, o->events, bytes, MOCK_PARTITION_BYTES);
    return 0;
}

int replay_synthetic(const struct replay_options *o)
{
    struct synth *s = patron_calloc(1, sizeof(*s));
    s->o = o;
    int exit_code = 1;
    replay_rng_init(&s->rng, o->seed, RNG_STREAM_SYNTHETIC);
    if (replay_zipf_init(&s->zipf, (size_t)o->items, o->zipf_s) < 0) {
        fprintf(stderr, "patron-replay: --items %" PRIu64 " or --zipf %g out of range\n", o->items,
                o->zipf_s);
        goto out_free_synth;
    }
    if (o->partitions_hint) {
        exit_code = partitions_hint(s);
        goto out_free_zipf;
    }

    struct replay_sink sink;
    struct replay_emitter em;
    if (replay_sink_open(&sink, o, true) < 0)
        goto out_free_zipf;
    replay_emitter_init(&em, &sink, o, false);
    uint64_t *seen = patron_calloc((size_t)(o->customers / 64 + 1), sizeof(*seen));
    uint64_t *seen_visitors =
        o->anonymous_percent ? patron_calloc((size_t)(o->visitors / 64 + 1), sizeof(*seen)) : NULL;

    int rc = 0;
    char key[32];
    size_t key_len;
    uint64_t id;
    enum who who;
    for (uint64_t seq = 0; seq < o->events && rc == 0; seq++) {
        size_t len = synth_event(s, seq, key, &key_len, &id, &who);
        if (len == 0) {
            rc = PATRON_ETOOBIG;
            break;
        }
        if (who == WHO_CUSTOMER)
            bit_set(seen, id, &em.customers);
        else if (who == WHO_VISITOR)
            bit_set(seen_visitors, id, &em.visitors);
        else {
            bit_set(seen, replay_mix64(id) % o->customers, &em.customers);
            bit_set(seen_visitors, id, &em.visitors);
            em.identifies++;
        }
        rc = replay_emit(&em, key, key_len, s->buf, len);
    }
    if (rc == 0)
        rc = replay_emitter_finish(&em);
    if (rc < 0)
        fprintf(stderr, "patron-replay: synthetic: %s\n", patron_strerror(rc));
    int close_rc = replay_sink_close(&sink, o->flush_timeout_ms);
    if (rc == 0 && close_rc == 0) {
        replay_emitter_summary(&em, stdout);
        exit_code = 0;
    }
    free(seen_visitors);
    free(seen);
    replay_emitter_free(&em);
out_free_zipf:
    replay_zipf_free(&s->zipf);
out_free_synth:
    free(s);
    return exit_code;
}
