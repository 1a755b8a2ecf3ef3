/*
 * `patron-replay online-retail`: the UCI Online Retail CSV as contract events,
 * following data/README.md's mapping (kept rows, runs, one Purchase or Refund
 * per run, optional derived browsing). The file is read once, streaming: the
 * only state is the open run, the invoices seen (for split invoices) and the
 * customers seen (for the summary), so memory grows with invoices, not rows.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "derive_profile.h"
#include "patron/catalog.h"
#include "patron/event_check.h"
#include "parse.h"
#include "patron/event_check.h"
#include "patron/profile.h"
#include "patron/v1/event.pb-c.h"
#include "replay.h"

/* The header, as UCI's Online Retail names the columns, or as its Online
 * Retail II does (the same columns: data/README.md, "Other exports"). */
#define CSV_HEADER                                                                                 \
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country"
#define CSV_HEADER_II "Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country"
#define UTF8_BOM "\xEF\xBB\xBF"
#define CSV_FIELDS 8
/* A record (several lines when a quoted field holds newlines) is at most this
 * many bytes; the data set's longest is under 200. */
#define CSV_RECORD_MAX ((size_t)64 * 1024)
/* Leaves room in PATRON_ID_MAX for "dv-" + invoice + "-" + run + "-" + line. */
#define INVOICE_MAX 40
#define RUNS_PER_INVOICE_MAX 999999
/* Lines of one event; the data set's largest invoice has about 1,100. */
#define RUN_LINES_MAX 10000
#define WARNINGS_MAX 10
#define READ_CHUNK ((size_t)1 << 16)
/* Derived profile events come this long before the customer's first event:
 * before its derived browsing too, which starts at most 30 minutes earlier. */
#define PROFILE_LEAD_MS (31 * 60000)

enum { RNG_STREAM_DERIVE = 3 };

struct reader {
    gzFile f;
    const char *path;
    char *chunk; /* READ_CHUNK bytes */
    size_t pos, end;
    bool eof;
    uint64_t line_no; /* lines consumed */
};

struct line {
    char item[PATRON_ID_MAX + 1];
    char category[REPLAY_CATEGORY_LEN + 1];
    int32_t quantity; /* > 0; a refund's is -Quantity */
    int64_t cents;
};

/* The open run: consecutive kept rows of one invoice and customer. */
struct run {
    bool open;
    char invoice[INVOICE_MAX + 1];
    char customer[PATRON_ID_MAX + 1];
    char country[PATRON_PROFILE_COUNTRY_MAX + 1]; /* of the run's first row; "" if unusable */
    int64_t ms;
    bool refund;
    struct line *lines;
    size_t n_lines, cap;
};

/* How many runs an invoice has had: a later run is a split invoice. */
struct invoice_runs {
    uint64_t runs;
    char invoice[]; /* the map's key */
};

/* A derived event due later than the invoice that made it (an abandoned
 * session after a purchase), held until the stream's time reaches it. */
struct later {
    int64_t ms;
    uint64_t seq; /* tie-break: the order they were made in */
    bool cart;    /* a cart add, else a view */
    char event_id[PATRON_ID_MAX + 1];
    char customer[PATRON_ID_MAX + 1];
    char item[PATRON_ID_MAX + 1];
    char category[PATRON_ID_MAX + 1];
    int64_t cents;
};
#define LATER_MAX 1000000 /* pending abandoned-session events; more are not made */

struct counts {
    uint64_t rows, kept, no_customer, price_or_quantity, wrong_sign, malformed;
};

struct retail {
    const struct replay_options *o;
    struct replay_emitter *em;
    struct reader rd;
    char *rec; /* CSV_RECORD_MAX + 1 bytes */
    struct run run;
    struct patron_strmap runs_of;  /* invoice -> struct invoice_runs (owned, holds the key) */
    struct patron_strmap profiled; /* --derive-profile: customers done; key = value, owned */
    struct patron_strmap bought;   /* --derive-profile: customers past their first purchase */
    struct replay_rng derive_rng;
    struct patron_strmap catalogued; /* --catalog-topic: items sent; key = value, owned */
    bool catalog_pass;               /* the first of two passes: the catalog only */
    struct later *later;             /* a min-heap by (ms, seq) */
    size_t n_later, cap_later;
    uint64_t later_seq;
    uint64_t invoice_events; /* what --limit counts */
    int64_t last_ms;         /* the latest event time produced */
    bool until_reached;      /* --until: the open run was already closed */
    uint8_t *pack;
    size_t pack_cap;
    struct counts n;
};

/* Appends one line, without its '\n', at rec[*len]. 1: a line; 0: end of
 * file before any byte; < 0: error. */
static int reader_line(struct reader *rd, char *rec, size_t *len)
{
    bool any = false;
    for (;;) {
        if (rd->pos == rd->end) {
            if (rd->eof)
                break;
            int got = gzread(rd->f, rd->chunk, (unsigned)READ_CHUNK);
            if (got < 0) {
                int zerr;
                fprintf(stderr, "patron-replay: %s: %s\n", rd->path, gzerror(rd->f, &zerr));
                return PATRON_EIO;
            }
            rd->pos = 0;
            rd->end = (size_t)got;
            rd->eof = got == 0;
            continue;
        }
        any = true;
        const char *start = rd->chunk + rd->pos;
        const char *nl = memchr(start, '\n', rd->end - rd->pos);
        size_t take = nl ? (size_t)(nl - start) : rd->end - rd->pos;
        if (take > CSV_RECORD_MAX - *len)
            return PATRON_ETOOBIG;
        memcpy(rec + *len, start, take);
        *len += take;
        rd->pos += take + (nl != NULL);
        if (nl)
            break;
    }
    if (!any)
        return 0;
    rd->line_no++;
    return 1;
}

/* One CSV record into r->rec: 1, 0 at end of file, < 0 on error. */
static int read_record(struct retail *r, size_t *len)
{
    *len = 0;
    int rc = reader_line(&r->rd, r->rec, len);
    if (rc <= 0)
        return rc;
    while (replay_csv_open_quote(r->rec, *len)) {
        if (*len == CSV_RECORD_MAX)
            return PATRON_ETOOBIG;
        r->rec[(*len)++] = '\n';
        rc = reader_line(&r->rd, r->rec, len);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            fprintf(stderr, "patron-replay: %s: unterminated quote at end of file\n", r->rd.path);
            return PATRON_EINVAL;
        }
    }
    if (*len > 0 && r->rec[*len - 1] == '\r')
        (*len)--;
    r->rec[*len] = '\0';
    return 1;
}

static void warn_row(struct retail *r, const char *why)
{
    if (r->n.malformed++ < WARNINGS_MAX && !r->catalog_pass)
        fprintf(stderr, "patron-replay: %s: line %" PRIu64 ": %s, row skipped\n", r->rd.path,
                r->rd.line_no, why);
}

/* Identifiers become protobuf strings and Kafka keys: no control bytes (a NUL
 * would cut them), not empty, bounded. */
/* Ids become protobuf strings and Kafka keys: not empty, bounded, UTF-8
 * (an export in Latin-1 may hold other bytes) without control bytes. */
static bool id_ok(const struct replay_field *f, size_t max)
{
    return f->len > 0 && f->len <= max && patron_event_text_valid(f->s, f->len) &&
           !memchr(f->s, 0x7f, f->len);
}

static uint8_t *pack_event(struct retail *r, const Patron__V1__Event *ev, size_t *len)
{
    size_t need = patron__v1__event__get_packed_size(ev);
    if (need > REPLAY_MESSAGE_MAX)
        return NULL;
    if (need > r->pack_cap) {
        r->pack_cap = need < 4096 ? 4096 : need;
        r->pack = patron_realloc(r->pack, r->pack_cap);
    }
    *len = patron__v1__event__pack(ev, r->pack);
    return r->pack;
}

static int emit_now(struct retail *r, const Patron__V1__Event *ev);
static int flush_later(struct retail *r, int64_t upto_ms);

/* Every event goes out through here, after the held ones due before it. */
static int emit_event(struct retail *r, const Patron__V1__Event *ev)
{
    int rc = flush_later(r, ev->occurred_at_ms);
    return rc ? rc : emit_now(r, ev);
}

static int emit_now(struct retail *r, const Patron__V1__Event *ev)
{
    if (r->o->has_from && ev->occurred_at_ms < r->o->from_ms) {
        /* generated all the same (ids, derived times and draws stay those
         * of a whole replay), not produced: --from re-publishes a period */
        if (ev->occurred_at_ms > r->last_ms)
            r->last_ms = ev->occurred_at_ms;
        return 0;
    }
    size_t len;
    uint8_t *buf = pack_event(r, ev, &len);
    if (!buf) {
        fprintf(stderr, "patron-replay: event %s is larger than %zu bytes\n", ev->event_id,
                REPLAY_MESSAGE_MAX);
        return PATRON_ETOOBIG;
    }
    /* keyed by the customer, or by the visitor's anonymous id */
    int rc = ev->customer_id[0]
                 ? replay_emit(r->em, ev->customer_id, strlen(ev->customer_id), buf, len)
                 : replay_emit_visitor(r->em, ev->anonymous_id, strlen(ev->anonymous_id), buf, len);
    if (rc == 0 && ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY)
        r->em->identifies++;
    if (rc == 0 && ev->occurred_at_ms > r->last_ms)
        r->last_ms = ev->occurred_at_ms;
    return rc;
}

struct derived {
    int64_t ms;
    size_t order; /* 2 * line + (0 view, 1 cart add): the tie-break */
};

static int derived_cmp(const void *a, const void *b)
{
    const struct derived *x = a, *y = b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* data/README.md "Derived browsing": a view and a cart add per line, 1-30
 * minutes before the purchase, never earlier than what was produced last;
 * a visitor's (anonymous_id, no customer_id) when anon is not NULL. */
static int emit_derived(struct retail *r, const char *suffix, Patron__V1__LineItem *const *items,
                        const char *anon)
{
    struct run *run = &r->run;
    struct derived *d = patron_malloc(2 * run->n_lines * sizeof(*d));
    for (size_t j = 0; j < run->n_lines; j++) {
        int64_t minutes = replay_rng_range(&r->derive_rng, 1, 30);
        d[2 * j] = (struct derived){run->ms - minutes * 60000, 2 * j};
        d[2 * j + 1] = (struct derived){run->ms - minutes * 60000 + 30000, 2 * j + 1};
    }
    qsort(d, 2 * run->n_lines, sizeof(*d), derived_cmp);
    int rc = 0;
    for (size_t k = 0; k < 2 * run->n_lines && rc == 0; k++) {
        size_t j = d[k].order / 2;
        bool cart = d[k].order % 2;
        char id[PATRON_ID_MAX + 1];
        int n = snprintf(id, sizeof(id), "%s-%s-%zu", cart ? "dc" : "dv", suffix, j);
        if (n < 0 || (size_t)n >= sizeof(id)) {
            rc = PATRON_ETOOBIG;
            break;
        }
        Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
        Patron__V1__ProductView view = PATRON__V1__PRODUCT_VIEW__INIT;
        Patron__V1__CartAdd add = PATRON__V1__CART_ADD__INIT;
        ev.event_id = id;
        ev.customer_id = anon ? "" : run->customer;
        ev.anonymous_id = anon ? (char *)anon : "";
        ev.occurred_at_ms = d[k].ms > r->last_ms ? d[k].ms : r->last_ms;
        if (cart) {
            add.item = items[j];
            ev.kind_case = PATRON__V1__EVENT__KIND_CART_ADD;
            ev.cart_add = &add;
        } else {
            view.item_id = items[j]->item_id;
            view.category = items[j]->category;
            ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
            ev.view = &view;
        }
        rc = emit_event(r, &ev);
    }
    free(d);
    return rc;
}

/* ---- abandoned sessions: the held events' heap ------------------------------- */

static bool later_before(const struct later *a, const struct later *b)
{
    return a->ms != b->ms ? a->ms < b->ms : a->seq < b->seq;
}

static void later_push(struct retail *r, const struct later *l)
{
    if (r->n_later == r->cap_later) {
        r->cap_later = r->cap_later ? 2 * r->cap_later : 256;
        r->later = patron_realloc(r->later, r->cap_later * sizeof(*r->later));
    }
    size_t i = r->n_later++;
    r->later[i] = *l;
    while (i > 0 && later_before(&r->later[i], &r->later[(i - 1) / 2])) {
        struct later t = r->later[i];
        r->later[i] = r->later[(i - 1) / 2];
        r->later[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static void later_pop(struct retail *r)
{
    r->later[0] = r->later[--r->n_later];
    for (size_t i = 0;;) {
        size_t m = i, a = 2 * i + 1, b = 2 * i + 2;
        if (a < r->n_later && later_before(&r->later[a], &r->later[m]))
            m = a;
        if (b < r->n_later && later_before(&r->later[b], &r->later[m]))
            m = b;
        if (m == i)
            break;
        struct later t = r->later[i];
        r->later[i] = r->later[m];
        r->later[m] = t;
        i = m;
    }
}

/* Emits the held events due at or before upto_ms, in time order. */
static int flush_later(struct retail *r, int64_t upto_ms)
{
    while (r->n_later > 0 && r->later[0].ms <= upto_ms) {
        const struct later *l = &r->later[0];
        Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
        Patron__V1__ProductView view = PATRON__V1__PRODUCT_VIEW__INIT;
        Patron__V1__CartAdd add = PATRON__V1__CART_ADD__INIT;
        Patron__V1__LineItem li = PATRON__V1__LINE_ITEM__INIT;
        ev.event_id = (char *)l->event_id;
        ev.customer_id = (char *)l->customer;
        ev.occurred_at_ms = l->ms > r->last_ms ? l->ms : r->last_ms;
        if (l->cart) {
            li.item_id = (char *)l->item;
            li.category = (char *)l->category;
            li.quantity = 1;
            li.unit_price_cents = l->cents;
            add.item = &li;
            ev.kind_case = PATRON__V1__EVENT__KIND_CART_ADD;
            ev.cart_add = &add;
        } else {
            view.item_id = (char *)l->item;
            view.category = (char *)l->category;
            ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
            ev.view = &view;
        }
        int rc = emit_now(r, &ev);
        later_pop(r);
        if (rc)
            return rc;
    }
    return 0;
}

/* data/README.md "Derived browsing": after one purchase in three, the
 * customer comes back 2 to 96 hours later and looks at one of its items
 * again without buying: half the time a view only (browse abandonment),
 * half the time a view and a cart add 30 s later (cart abandonment). */
static void schedule_abandoned(struct retail *r, const char *suffix,
                               Patron__V1__LineItem *const *items)
{
    struct run *run = &r->run;
    if (run->n_lines == 0 || replay_rng_below(&r->derive_rng, 3) != 0 || r->n_later + 2 > LATER_MAX)
        return;
    size_t j = (size_t)replay_rng_below(&r->derive_rng, run->n_lines);
    bool cart = replay_rng_below(&r->derive_rng, 2) == 0;
    int64_t at = run->ms + replay_rng_range(&r->derive_rng, 2 * 60, 96 * 60) * 60000;
    for (int k = 0; k < (cart ? 2 : 1); k++) {
        struct later l = {.ms = at + k * 30000,
                          .seq = r->later_seq++,
                          .cart = k == 1,
                          .cents = items[j]->unit_price_cents};
        int n = snprintf(l.event_id, sizeof(l.event_id), "%s-%s-%zu", k ? "dca" : "dva", suffix, j);
        if (n < 0 || (size_t)n >= sizeof(l.event_id))
            return;
        snprintf(l.customer, sizeof(l.customer), "%s", run->customer);
        snprintf(l.item, sizeof(l.item), "%s", items[j]->item_id);
        snprintf(l.category, sizeof(l.category), "%s", items[j]->category);
        later_push(r, &l);
    }
}

/* "derived-<kind>-<customer>", or with the id's FNV-1a 64 in hex when a
 * long customer id would not fit in PATRON_ID_MAX. */
static void derived_profile_id(char out[PATRON_ID_MAX + 1], const char *kind, const char *customer)
{
    int n = snprintf(out, PATRON_ID_MAX + 1, "derived-%s-%s", kind, customer);
    if (n < 0 || n > PATRON_ID_MAX)
        snprintf(out, PATRON_ID_MAX + 1, "derived-%s-h%016" PRIx64, kind,
                 patron_hash64(customer, strlen(customer)));
}

/* data/README.md "Derived profiles": before a customer's first event, a
 * CustomerUpdate (time zone, locale and country from the CSV's Country, a
 * birthday) and a ConsentChange per channel, granted or not. */
static int emit_profile(struct retail *r)
{
    struct run *run = &r->run;
    size_t clen = strlen(run->customer);
    if (patron_strmap_get(&r->profiled, run->customer, clen))
        return 0;
    char *key = patron_strndup(run->customer, clen);
    (void)patron_strmap_put(&r->profiled, key, clen, key);

    int64_t ms = run->ms - PROFILE_LEAD_MS > r->last_ms ? run->ms - PROFILE_LEAD_MS : r->last_ms;
    const struct replay_country *c = replay_country_find(run->country, strlen(run->country));
    char birthday[6], id[PATRON_ID_MAX + 1];
    replay_birthday(run->customer, clen, birthday);

    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__CustomerUpdate cu = PATRON__V1__CUSTOMER_UPDATE__INIT;
    cu.birthday = birthday;
    cu.time_zone = c ? (char *)c->time_zone : "UTC";
    cu.locale = c ? (char *)c->locale : "";
    cu.country = run->country;
    derived_profile_id(id, "profile", run->customer);
    ev.event_id = id;
    ev.customer_id = run->customer;
    ev.occurred_at_ms = ms;
    ev.kind_case = PATRON__V1__EVENT__KIND_CUSTOMER;
    ev.customer = &cu;
    int rc = emit_event(r, &ev);

    static const struct {
        Patron__V1__Channel channel;
        const char *name;
    } channels[] = {
        {PATRON__V1__CHANNEL__SMS, "sms"},
        {PATRON__V1__CHANNEL__PUSH, "push"},
        {PATRON__V1__CHANNEL__EMAIL, "email"},
    };
    for (size_t i = 0; i < PATRON_ARRAY_LEN(channels) && rc == 0; i++) {
        Patron__V1__ConsentChange cc = PATRON__V1__CONSENT_CHANGE__INIT;
        cc.channel = channels[i].channel;
        cc.granted = replay_consent(run->customer, clen, (int)channels[i].channel);
        derived_profile_id(id, channels[i].name, run->customer);
        ev = (Patron__V1__Event)PATRON__V1__EVENT__INIT;
        ev.event_id = id;
        ev.customer_id = run->customer;
        ev.occurred_at_ms = ms;
        ev.kind_case = PATRON__V1__EVENT__KIND_CONSENT;
        ev.consent = &cc;
        rc = emit_event(r, &ev);
    }
    return rc;
}

/* data/README.md "Derived identity": the visitor the customer was before
 * its first purchase (NOT_A_VISITOR for any other run), its anonymous id
 * in anon. */
static enum replay_visitor first_visit(struct retail *r, char anon[22])
{
    struct run *run = &r->run;
    size_t clen = strlen(run->customer);
    if (!r->o->derive_profile || r->o->no_visitors || run->refund ||
        patron_strmap_get(&r->bought, run->customer, clen))
        return REPLAY_NOT_A_VISITOR;
    char *key = patron_strndup(run->customer, clen);
    (void)patron_strmap_put(&r->bought, key, clen, key);
    replay_anonymous_id(run->customer, clen, anon);
    return replay_visitor_of(run->customer, clen);
}

/* The login: customer and visitor are the same person. */
static int emit_identify(struct retail *r, const char *anon)
{
    struct run *run = &r->run;
    char id[PATRON_ID_MAX + 1];
    derived_profile_id(id, "identify", run->customer);
    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__Identify identify = PATRON__V1__IDENTIFY__INIT;
    identify.anonymous_id = (char *)anon;
    ev.event_id = id;
    ev.customer_id = run->customer;
    ev.occurred_at_ms = run->ms > r->last_ms ? run->ms : r->last_ms;
    ev.kind_case = PATRON__V1__EVENT__KIND_IDENTIFY;
    ev.identify = &identify;
    return emit_event(r, &ev);
}

/* The open run becomes its event (and, with --derive-browse, what led to it). */
static int close_run(struct retail *r)
{
    struct run *run = &r->run;
    if (!run->open)
        return 0;
    run->open = false;

    size_t inv_len = strlen(run->invoice);
    struct invoice_runs *seen = patron_strmap_get(&r->runs_of, run->invoice, inv_len);
    if (!seen) {
        seen = patron_malloc(sizeof(*seen) + inv_len + 1);
        seen->runs = 0;
        memcpy(seen->invoice, run->invoice, inv_len + 1);
        (void)patron_strmap_put(&r->runs_of, seen->invoice, inv_len, seen);
    }
    if (seen->runs == RUNS_PER_INVOICE_MAX) {
        fprintf(stderr, "patron-replay: invoice %s is split into too many runs\n", run->invoice);
        return PATRON_ETOOBIG;
    }
    uint64_t k = ++seen->runs;

    char suffix[INVOICE_MAX + 16]; /* the event id without "oi-" */
    int n = k > 1 ? snprintf(suffix, sizeof(suffix), "%s-%" PRIu64, run->invoice, k)
                  : snprintf(suffix, sizeof(suffix), "%s", run->invoice);
    char event_id[PATRON_ID_MAX + 1];
    if (n < 0 || (size_t)n >= sizeof(suffix) ||
        snprintf(event_id, sizeof(event_id), "oi-%s", suffix) >= (int)sizeof(event_id))
        return PATRON_ETOOBIG;

    Patron__V1__LineItem *line_items = patron_malloc(run->n_lines * sizeof(*line_items));
    Patron__V1__LineItem **items = patron_malloc(run->n_lines * sizeof(*items));
    int64_t amount = 0;
    for (size_t i = 0; i < run->n_lines; i++) {
        Patron__V1__LineItem li = PATRON__V1__LINE_ITEM__INIT;
        li.item_id = run->lines[i].item;
        li.category = run->lines[i].category;
        li.quantity = run->lines[i].quantity;
        li.unit_price_cents = run->lines[i].cents;
        line_items[i] = li;
        items[i] = &line_items[i];
        amount += (int64_t)li.quantity * li.unit_price_cents;
    }

    Patron__V1__Event ev = PATRON__V1__EVENT__INIT;
    Patron__V1__Purchase purchase = PATRON__V1__PURCHASE__INIT;
    Patron__V1__Refund refund = PATRON__V1__REFUND__INIT;
    ev.event_id = event_id;
    ev.customer_id = run->customer;
    ev.occurred_at_ms = run->ms;
    if (run->refund) {
        refund.order_id = run->invoice;
        refund.amount_cents = amount;
        refund.n_items = run->n_lines;
        refund.items = items;
        ev.kind_case = PATRON__V1__EVENT__KIND_REFUND;
        ev.refund = &refund;
    } else {
        purchase.order_id = run->invoice;
        purchase.currency = "GBP";
        purchase.n_items = run->n_lines;
        purchase.items = items;
        ev.kind_case = PATRON__V1__EVENT__KIND_PURCHASE;
        ev.purchase = &purchase;
    }

    int rc = 0;
    char anon[22];
    enum replay_visitor visitor = first_visit(r, anon);
    if (r->o->derive_profile)
        rc = emit_profile(r);
    if (rc == 0 && !run->refund && r->o->derive_browse)
        rc = emit_derived(r, suffix, items, visitor ? anon : NULL);
    if (rc == 0 && visitor == REPLAY_VISITOR_LOGIN)
        rc = emit_identify(r, anon);
    if (visitor == REPLAY_VISITOR_GUEST) {
        ev.customer_id = "";
        ev.anonymous_id = anon;
    }
    if (rc == 0)
        rc = emit_event(r, &ev);
    if (rc == 0 && visitor == REPLAY_VISITOR_GUEST)
        rc = emit_identify(r, anon);
    if (rc == 0 && !run->refund && r->o->derive_browse)
        schedule_abandoned(r, suffix, items);
    if (rc == 0)
        r->invoice_events++;
    free(items);
    free(line_items);
    run->n_lines = 0;
    return rc;
}

static int add_line(struct retail *r, const struct replay_field *stock, int32_t quantity,
                    int64_t cents)
{
    struct run *run = &r->run;
    if (run->n_lines == RUN_LINES_MAX) {
        fprintf(stderr, "patron-replay: invoice %s has more than %d lines\n", run->invoice,
                RUN_LINES_MAX);
        return PATRON_ETOOBIG;
    }
    if (run->n_lines == run->cap) {
        run->cap = run->cap ? 2 * run->cap : 64;
        run->lines = patron_realloc(run->lines, run->cap * sizeof(*run->lines));
    }
    struct line *l = &run->lines[run->n_lines++];
    memcpy(l->item, stock->s, stock->len);
    l->item[stock->len] = '\0';
    size_t cl = replay_category_len(stock->len);
    memcpy(l->category, stock->s, cl);
    l->category[cl] = '\0';
    l->quantity = quantity;
    l->cents = cents;
    return 0;
}

/* Stock codes that are not products: postage (POST, DOT, C2), discounts (D),
 * fees and adjustments (M, BANK CHARGES, AMAZONFEE, B), samples (S), gift
 * vouchers (gift_...), DCGS...: every product code starts with a digit. */
static bool is_product(const struct replay_field *stock)
{
    return stock->len > 0 && stock->s[0] >= '0' && stock->s[0] <= '9';
}

/* --catalog-topic: the item's ItemUpdate the first time it is seen — its
 * Description as title, its price, and not_a_product for postage, fees and
 * the like, so that they are never recommended nor taken as a taste. */
static int emit_catalog(struct retail *r, const struct replay_field *stock,
                        const struct replay_field *description, int64_t cents)
{
    if (!r->o->catalog_topic || patron_strmap_get(&r->catalogued, stock->s, stock->len))
        return 0;
    char *key = patron_malloc(stock->len + 1);
    memcpy(key, stock->s, stock->len);
    key[stock->len] = 0;
    (void)patron_strmap_put(&r->catalogued, key, stock->len, key);

    char title[PATRON_TITLE_MAX + 1];
    size_t tl = description->len < PATRON_TITLE_MAX ? description->len : PATRON_TITLE_MAX;
    memcpy(title, description->s, tl);
    title[tl] = 0;
    if (!patron_event_text_valid(title, tl))
        title[0] = 0;
    char category[PATRON_ID_MAX + 1];
    size_t cl = replay_category_len(stock->len);
    memcpy(category, stock->s, cl);
    category[cl] = 0;
    Patron__V1__ItemUpdate u = PATRON__V1__ITEM_UPDATE__INIT;
    u.item_id = key;
    u.category = category;
    u.price_cents = cents;
    u.in_stock = 1;
    u.not_a_product = !is_product(stock);
    u.title = title;
    size_t len = patron__v1__item_update__get_packed_size(&u);
    uint8_t buf[PATRON_TITLE_MAX + 4 * PATRON_ID_MAX + 64];
    if (len > sizeof(buf))
        return PATRON_ETOOBIG;
    patron__v1__item_update__pack(&u, buf);
    return replay_sink_put_to(r->em->sink, r->o->catalog_topic, key, stock->len, buf, len);
}

/* One data row: skipped (counted), added to the open run, or the start of a
 * new run after the open one became an event. */
static int take_row(struct retail *r, size_t len)
{
    struct replay_field f[CSV_FIELDS + 1];
    r->n.rows++;
    int n = replay_csv_split(r->rec, len, f, PATRON_ARRAY_LEN(f));
    if (n != CSV_FIELDS) {
        warn_row(r, n < 0 ? "bad quoting or too many fields" : "not 8 fields");
        return 0;
    }
    const struct replay_field *invoice = &f[0], *stock = &f[1], *customer = &f[6];
    f[6].len = replay_customer_id_len(f[6].s, f[6].len);
    if (customer->len == 0) {
        r->n.no_customer++;
        return 0;
    }
    int32_t quantity;
    int64_t cents, ms;
    bool positive;
    if (!id_ok(invoice, INVOICE_MAX) || !id_ok(stock, PATRON_ID_MAX) ||
        !id_ok(customer, PATRON_ID_MAX)) {
        warn_row(r, "empty, long or unprintable InvoiceNo, StockCode or CustomerID");
        return 0;
    }
    /* INT32_MIN is refused too: a refund line's quantity is -Quantity. */
    if (replay_parse_int32(f[3].s, f[3].len, &quantity) < 0 || quantity == INT32_MIN) {
        warn_row(r, "bad Quantity");
        return 0;
    }
    if (replay_price_cents(f[5].s, f[5].len, &cents, &positive) < 0) {
        warn_row(r, "bad UnitPrice");
        return 0;
    }
    if (replay_invoice_date_ms(f[4].s, f[4].len, &ms) < 0) {
        warn_row(r, "bad InvoiceDate");
        return 0;
    }
    if (!positive || quantity == 0) {
        r->n.price_or_quantity++;
        return 0;
    }
    bool cancel = invoice->s[0] == 'C';
    if ((quantity < 0) != cancel) {
        r->n.wrong_sign++;
        return 0;
    }
    r->n.kept++;
    if (r->catalog_pass)
        return emit_catalog(r, stock, &f[2], cents);

    struct run *run = &r->run;
    bool same = run->open && strlen(run->invoice) == invoice->len &&
                memcmp(run->invoice, invoice->s, invoice->len) == 0 &&
                strlen(run->customer) == customer->len &&
                memcmp(run->customer, customer->s, customer->len) == 0;
    if (!same) {
        int rc = close_run(r);
        if (rc < 0)
            return rc;
        if (r->o->limit && r->invoice_events >= r->o->limit)
            return 1;
        if (r->o->has_until && ms >= r->o->until_ms) {
            r->until_reached = true; /* the file is in time order: the rest is later */
            return 1;
        }
        run->open = true;
        memcpy(run->invoice, invoice->s, invoice->len);
        run->invoice[invoice->len] = '\0';
        memcpy(run->customer, customer->s, customer->len);
        run->customer[customer->len] = '\0';
        const struct replay_field *country = &f[7];
        bool country_ok = country->len <= PATRON_PROFILE_COUNTRY_MAX &&
                          patron_event_text_valid(country->s, country->len);
        size_t country_len = country_ok ? country->len : 0;
        memcpy(run->country, country->s, country_len);
        run->country[country_len] = '\0';
        run->ms = ms;
        run->refund = cancel;
    }
    int crc = emit_catalog(r, stock, &f[2], cents);
    if (crc < 0)
        return crc;
    return add_line(r, stock, quantity < 0 ? -quantity : quantity, cents);
}

static int run_file(struct retail *r)
{
    size_t len;
    int rc = read_record(r, &len);
    if (rc <= 0) {
        fprintf(stderr, "patron-replay: %s: %s\n", r->rd.path,
                rc == 0 ? "empty file" : patron_strerror(rc));
        return rc == 0 ? PATRON_EINVAL : rc;
    }
    const char *header = r->rec;
    if (strncmp(header, UTF8_BOM, 3) == 0)
        header += 3;
    if (strcmp(header, CSV_HEADER) != 0 && strcmp(header, CSV_HEADER_II) != 0) {
        fprintf(stderr, "patron-replay: %s: the header is neither %s nor %s\n", r->rd.path,
                CSV_HEADER, CSV_HEADER_II);
        return PATRON_EINVAL;
    }
    for (;;) {
        rc = read_record(r, &len);
        if (rc == PATRON_ETOOBIG)
            fprintf(stderr, "patron-replay: %s: line %" PRIu64 ": record longer than %zu bytes\n",
                    r->rd.path, r->rd.line_no + 1, CSV_RECORD_MAX);
        if (rc <= 0)
            break;
        rc = take_row(r, len);
        if (rc != 0)
            break; /* an error, or --limit reached */
    }
    if (rc < 0)
        return rc;
    if ((r->o->limit && r->invoice_events >= r->o->limit) || r->until_reached)
        return 0;
    return close_run(r);
}

int replay_online_retail(const struct replay_options *o)
{
    struct replay_sink sink;
    struct replay_emitter em;
    struct retail r = {.o = o, .em = &em, .last_ms = INT64_MIN};
    int exit_code = 1;

    r.rd.path = o->csv_path;
    r.rd.f = gzopen(o->csv_path, "rb"); /* reads plain files as they are */
    if (!r.rd.f) {
        fprintf(stderr, "patron-replay: %s: %s\n", o->csv_path,
                errno ? strerror(errno) : "cannot open");
        return 1;
    }
    if (replay_sink_open(&sink, o, false) < 0)
        goto out_close_file;
    replay_emitter_init(&em, &sink, o, true);
    replay_rng_init(&r.derive_rng, o->seed, RNG_STREAM_DERIVE);
    patron_strmap_init(&r.runs_of);
    patron_strmap_init(&r.profiled);
    patron_strmap_init(&r.bought);
    patron_strmap_init(&r.catalogued);
    r.rd.chunk = patron_malloc(READ_CHUNK);
    r.rec = patron_malloc(CSV_RECORD_MAX + 1);

    int rc = 0;
    if (o->catalog_topic) {
        /* The whole catalog first, so that ingest knows every item (and
         * that postage is not for sale) before the first purchase. */
        r.catalog_pass = true;
        rc = run_file(&r);
        r.catalog_pass = false;
        r.n = (struct counts){0};
        r.rd.pos = r.rd.end = 0;
        r.rd.eof = false;
        r.rd.line_no = 0;
        if (rc == 0 && gzrewind(r.rd.f) != 0)
            rc = PATRON_EIO;
    }
    if (rc == 0)
        rc = run_file(&r);
    if (rc == 0) /* the sessions held past the last invoice, up to --until */
        rc = flush_later(&r, o->has_until ? o->until_ms - 1 : INT64_MAX);
    if (rc == 0)
        rc = replay_emitter_finish(&em);
    int close_rc = replay_sink_close(&sink, o->flush_timeout_ms);
    fprintf(stderr,
            "{\"rows\":%" PRIu64 ",\"kept\":%" PRIu64 ",\"skipped\":{\"no_customer\":%" PRIu64
            ",\"price_or_quantity\":%" PRIu64 ",\"wrong_sign\":%" PRIu64 ",\"malformed\":%" PRIu64
            "},\"invoice_events\":%" PRIu64 "}\n",
            r.n.rows, r.n.kept, r.n.no_customer, r.n.price_or_quantity, r.n.wrong_sign,
            r.n.malformed, r.invoice_events);
    if (rc == 0 && close_rc == 0) {
        replay_emitter_summary(&em, stdout);
        exit_code = 0;
    }

    for (size_t i = 0; i < r.runs_of.cap; i++)
        free(r.runs_of.slots[i].value);
    patron_strmap_free(&r.runs_of);
    for (size_t i = 0; i < r.profiled.cap; i++)
        free(r.profiled.slots[i].value);
    patron_strmap_free(&r.profiled);
    for (size_t i = 0; i < r.bought.cap; i++)
        free(r.bought.slots[i].value);
    patron_strmap_free(&r.bought);
    for (size_t i = 0; i < r.catalogued.cap; i++)
        free(r.catalogued.slots[i].value);
    patron_strmap_free(&r.catalogued);
    free(r.later);
    free(r.run.lines);
    free(r.pack);
    free(r.rec);
    free(r.rd.chunk);
    replay_emitter_free(&em);
out_close_file:
    gzclose(r.rd.f);
    return exit_code;
}
