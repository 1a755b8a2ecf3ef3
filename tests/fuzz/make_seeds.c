/*
 * Writes the binary seed corpora of the fuzz targets from real encodings:
 * events of every kind, catalog updates, profiles built by applying events,
 * trigger states, neighbour lists, and Redis replies that carry them. The
 * text corpora (HTTP, configuration, campaigns, CSV) are written by
 * scripts/fuzz.sh --seeds, which runs this first. Deterministic: the same
 * build writes the same bytes.
 *
 *   make_seeds <corpus dir>     (tests/fuzz/corpus)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../unit/fixture_events.h"
#include "patron/campaign_state_codec.h"
#include "patron/clock.h"
#include "patron/graph_row.h"
#include "patron/keys.h"
#include "patron/profile_codec.h"
#include "patron/stats_field.h"
#include "patron/v1/catalog.pb-c.h"

static const char *root;

static void put(const char *target, const char *name, const void *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

/* A Redis reply seed: the chunk byte of fuzz_redis_reply, then RESP. */
static void put_reply(const char *name, unsigned char chunk, const void *resp, size_t len)
{
    unsigned char *b = malloc(len + 1);
    b[0] = chunk;
    memcpy(b + 1, resp, len);
    put("redis_reply", name, b, len + 1);
    free(b);
}

/* A bulk string reply holding buf. */
static void put_bulk_reply(const char *name, const void *buf, size_t len)
{
    char head[32];
    int h = snprintf(head, sizeof(head), "$%zu\r\n", len);
    unsigned char *b = malloc((size_t)h + len + 2);
    memcpy(b, head, (size_t)h);
    memcpy(b + h, buf, len);
    memcpy(b + h + len, "\r\n", 2);
    put_reply(name, 0, b, (size_t)h + len + 2);
    free(b);
}

static struct fx_event fx;
static const struct fx_line LINES[] = {
    {"85123A", "851", 6, 255},
    {"71053", "710", 2, 339},
    {"84406B", "844", 1, 275},
};

static void put_event(const char *name, const Patron__V1__Event *ev)
{
    size_t len = patron__v1__event__get_packed_size(ev);
    uint8_t *buf = malloc(len + 1);
    patron__v1__event__pack(ev, buf);
    put("event", name, buf, len);
    free(buf);
}

static void events(void)
{
    int64_t t = FX_T0;
    put_event("view", fx_view(&fx, "e-view", t, "85123A", "851"));
    put_event("cart_add", fx_cart_add(&fx, "e-add", t, "85123A", "851", 2, 255));
    put_event("cart_remove", fx_cart_remove(&fx, "e-remove", t, "85123A"));
    Patron__V1__Event *ev = fx_purchase(&fx, "e-purchase", t, 3, LINES);
    fx.purchase.order_id = "536365";
    fx.purchase.currency = "GBP";
    put_event("purchase", ev);
    put_event("refund", fx_refund(&fx, "e-refund", t, 0, 1, LINES));
    put_event("refund_amount", fx_refund(&fx, "e-refund2", t, 500, 0, NULL));
    put_event("review", fx_review(&fx, "e-review", t, "71053", 4));
    put_event("customer", fx_customer(&fx, "e-customer", t, "07-14", "Europe/London", "en-GB",
                                      "United Kingdom"));
    put_event("consent", fx_consent(&fx, "e-consent", t, PATRON__V1__CHANNEL__EMAIL, true));
    put_event("erasure", fx_erasure(&fx, "e-erasure", t));
    put_event("no_kind", fx_base(&fx, "e-none", t));
}

static void catalog(void)
{
    Patron__V1__ItemUpdate u = PATRON__V1__ITEM_UPDATE__INIT;
    u.item_id = "85123A";
    u.category = "851";
    u.price_cents = 255;
    u.in_stock = true;
    u.title = "WHITE HANGING HEART T-LIGHT HOLDER";
    uint8_t buf[256];
    size_t len = patron__v1__item_update__pack(&u, buf);
    put("catalog", "item", buf, len);
    u.category = "";
    u.in_stock = false;
    u.title = "";
    len = patron__v1__item_update__pack(&u, buf);
    put("catalog", "bare", buf, len);
}

/* Profiles: a stage of a customer's story, stored as Redis holds it. */
static void put_profile(const char *name, const struct patron_profile *p, uint64_t version)
{
    static uint8_t buf[PATRON_PROFILE_VERSION_LEN + PATRON_PROFILE_ENCODED_MAX];
    size_t len = 0;
    patron_profile_version_put(buf, version);
    if (patron_profile_encode_into(p, buf + PATRON_PROFILE_VERSION_LEN, PATRON_PROFILE_ENCODED_MAX,
                                   &len) != 0) {
        fprintf(stderr, "profile %s does not encode\n", name);
        exit(1);
    }
    put("profile", name, buf, PATRON_PROFILE_VERSION_LEN + len);
    char reply[64];
    snprintf(reply, sizeof(reply), "profile_%s", name);
    put_bulk_reply(reply, buf, PATRON_PROFILE_VERSION_LEN + len);
}

static void apply(struct patron_profile *p, const Patron__V1__Event *ev, int64_t offset,
                  const struct patron_profile_config *cfg)
{
    struct patron_apply_outcome out;
    if (patron_profile_apply(p, ev, 0, offset, cfg, &out) != 0) {
        fprintf(stderr, "event %s refused\n", ev->event_id);
        exit(1);
    }
}

static void profiles(void)
{
    static struct patron_profile p;
    struct patron_profile_config cfg;
    patron_profile_config_default(&cfg);
    patron_profile_init(&p, FX_CUSTOMER);
    int64_t t = FX_T0, off = 0;
    apply(&p, fx_view(&fx, "p1", t, "85123A", "851"), off++, &cfg);
    put_profile("one_view", &p, 1);
    apply(&p, fx_cart_add(&fx, "p2", t + 1000, "71053", "710", 2, 339), off++, &cfg);
    apply(&p, fx_customer(&fx, "p3", t + 2000, "07-14", "Europe/London", "en-GB", "UK"), off++,
          &cfg);
    apply(&p, fx_consent(&fx, "p4", t + 3000, PATRON__V1__CHANNEL__SMS, true), off++, &cfg);
    for (int m = 0; m < 14; m++) {
        char id[16];
        snprintf(id, sizeof(id), "p-buy-%d", m);
        apply(&p, fx_purchase(&fx, id, t + m * 30 * FX_DAY, 3, LINES), off++, &cfg);
    }
    apply(&p, fx_refund(&fx, "p-refund", t + 430 * FX_DAY, 0, 1, LINES), off++, &cfg);
    apply(&p, fx_review(&fx, "p-review", t + 431 * FX_DAY, "71053", 5), off++, &cfg);
    put_profile("busy", &p, 42);
    apply(&p, fx_erasure(&fx, "p-erase", t + 432 * FX_DAY), off++, &cfg);
    put_profile("tombstone", &p, 43);
}

static void trigger_states(void)
{
    static struct patron_customer_state st;
    patron_customer_state_init(&st, FX_CUSTOMER);
    uint8_t *buf = NULL;
    size_t len = patron_customer_state_encode(&st, &buf);
    put("trigger_state", "fresh", buf, len);
    free(buf);

    st.last_offset = 1234;
    st.recent_events[st.n_recent++] = 0x1122334455667788u;
    st.ledger[st.n_ledger++] = 99;
    snprintf(st.segment, sizeof(st.segment), "champions");
    snprintf(st.tier, sizeof(st.tier), "gold");
    st.consent[PATRON_CAMPAIGN_CHANNEL_EMAIL] = true;
    snprintf(st.time_zone, sizeof(st.time_zone), "Europe/London");
    snprintf(st.locale, sizeof(st.locale), "en-GB");
    snprintf(st.birthday, sizeof(st.birthday), "07-14");
    st.points = 120;
    st.orders = 3;
    st.net_spend_cents = 12345;
    st.last_purchase_ms = FX_T0;
    st.timers = calloc(2, sizeof(*st.timers));
    st.cap_timers = 2;
    st.timers[0] = (struct patron_engine_timer){"cart-abandonment", PATRON_TIMER_WAIT,
                                                FX_T0 + FX_DAY, FX_T0 + FX_DAY, "e-1"};
    st.timers[1] = (struct patron_engine_timer){"birthday", PATRON_TIMER_BIRTHDAY,
                                                FX_T0 + 100 * FX_DAY, FX_T0 + 100 * FX_DAY, ""};
    st.n_timers = 2;
    st.sends[st.n_sends++] = (struct patron_send){FX_T0, PATRON_CAMPAIGN_CHANNEL_EMAIL};
    st.sends[st.n_sends++] = (struct patron_send){FX_T0 + 1, PATRON_CAMPAIGN_CHANNEL_SMS};
    st.last_sent = calloc(1, sizeof(*st.last_sent));
    st.cap_last_sent = 1;
    st.last_sent[st.n_last_sent++] = (struct patron_engine_last_sent){"cart-abandonment", FX_T0};
    st.touches[st.n_touches++] =
        (struct patron_engine_touch){"cart-abandonment", "A", FX_T0, false, true};
    len = patron_customer_state_encode(&st, &buf);
    put("trigger_state", "busy", buf, len);
    put_bulk_reply("trigger_state_busy", buf, len);
    free(buf);
    patron_customer_state_free(&st);
}

static void put_row(const char *name, uint64_t version, const struct patron_graph_cell *cells,
                    size_t n, const struct patron_graph_marks *marks)
{
    size_t len = patron_graph_row_size(cells, n, marks);
    uint8_t *buf = malloc(len);
    patron_graph_row_encode(version, cells, n, marks, buf);
    put("graph_row", name, buf, len);
    char reply[64];
    snprintf(reply, sizeof(reply), "graph_row_%s", name);
    put_bulk_reply(reply, buf, len);
    free(buf);
}

static void graph_rows(void)
{
    const struct patron_graph_cell cells[] = {
        {"71053", 5, 9}, {"84406B", 6, 4}, {"22752", 5, 4}, {"21730", 5, 1}};
    put_row("empty", 0, NULL, 0, NULL);
    put_row("four", 7, cells, 4, NULL);
    struct patron_graph_mark v[] = {{0, 17}, {3, 120000}, {11, 5}};
    struct patron_graph_marks marks = {v, 3, 3};
    put_row("four_marked", 8, cells, 4, &marks);
}

static void replies(void)
{
    static const struct {
        const char *name, *resp;
        unsigned char chunk;
    } R[] = {
        {"integer", ":42\r\n", 0},
        {"negative", ":-9223372036854775808\r\n", 0},
        {"status", "+OK\r\n", 0},
        {"error", "-NOSCRIPT No matching script\r\n", 0},
        {"nil", "$-1\r\n", 0},
        {"nil_array", "*-1\r\n", 0},
        {"decimal_string", "$5\r\n12345\r\n", 0},
        {"clock_value", "$15\r\n1291192000000:1\r\n", 0},
        {"clock_values", "*2\r\n$15\r\n1291192000000:0\r\n$-1\r\n", 3},
        {"stats_field", "$23\r\ncart-abandonment|A|sent\r\n", 0},
        {"hgetall_stats",
         "*4\r\n$16\r\ncross-sell||sent\r\n$1\r\n7\r\n$19\r\nwinback-60d||exited\r\n$1\r\n2\r\n",
         5},
        {"command", "*3\r\n$3\r\nSET\r\n$5\r\n{c:1}\r\n$1\r\nv\r\n", 0},
        {"nested", "*2\r\n*2\r\n:1\r\n:2\r\n$3\r\nabc\r\n", 1},
        {"pipelined", "+OK\r\n:1\r\n$2\r\nhi\r\n", 2},
    };
    for (size_t i = 0; i < sizeof(R) / sizeof(R[0]); i++)
        put_reply(R[i].name, R[i].chunk, R[i].resp, strlen(R[i].resp));
    /* the clock value and statistics field as the code writes them */
    char v[PATRON_CLOCK_VALUE_MAX];
    struct patron_partition_time pt = {.ms = FX_T0, .idle = true};
    int n = patron_clock_value_encode(v, sizeof(v), &pt);
    if (n > 0)
        put_bulk_reply("clock_encoded", v, (size_t)n);
    char f[PATRON_STATS_FIELD_MAX];
    n = patron_stats_field_format(f, "winback-60d", "", PATRON_STAT_CONVERSIONS);
    if (n > 0)
        put_bulk_reply("stats_encoded", f, (size_t)n);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <corpus dir>\n", argv[0]);
        return 2;
    }
    root = argv[1];
    events();
    catalog();
    profiles();
    trigger_states();
    graph_rows();
    replies();
    return 0;
}
