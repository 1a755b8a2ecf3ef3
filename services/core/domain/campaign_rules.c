#include "patron/campaign_rules.h"

#include <string.h>

#include "patron/tz.h"

/* ---- SipHash-2-4 (Aumasson & Bernstein), 64-bit output ---------------------------- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(const void *data, size_t len, uint64_t k0, uint64_t k1)
{
    const unsigned char *in = data;
    uint64_t v0 = 0x736f6d6570736575ULL ^ k0, v1 = 0x646f72616e646f6dULL ^ k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ k0, v3 = 0x7465646279746573ULL ^ k1;
    size_t tail = len & 7;
    const unsigned char *end = in + len - tail;
    for (; in != end; in += 8) {
        uint64_t m = load64(in);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < tail; i++)
        b |= (uint64_t)in[i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* Fixed keys: ids must be stable across releases and pods, so these never
 * change (they are not secrets; they only separate the uses). */
#define KEY_ID_A0 0x7061747230316d69ULL
#define KEY_ID_A1 0x6473736167655f31ULL
#define KEY_ID_B0 0x7061747230326d69ULL
#define KEY_ID_B1 0x6473736167655f32ULL
#define KEY_CHOICE0 0x70617472306e6368ULL
#define KEY_CHOICE1 0x6f6963655f6b6579ULL

/* A length-prefixed concatenation, so that ("ab","c") and ("a","bc") differ.
 * Strings are cut at 255 bytes (ids are at most 64 by contract). */
struct hbuf {
    unsigned char b[1024];
    size_t n;
};

static void hput(struct hbuf *h, const char *s)
{
    size_t len = s ? strnlen(s, 255) : 0;
    h->b[h->n++] = (unsigned char)len;
    memcpy(h->b + h->n, s ? s : "", len);
    h->n += len;
}

static void hput64(struct hbuf *h, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++)
        h->b[h->n++] = (unsigned char)(u >> (8 * i));
}

void patron_campaign_message_id(const char *campaign_id, const char *customer_id,
                                const char *trigger_event_id, int64_t trigger_at_ms,
                                char out[PATRON_MESSAGE_ID_LEN + 1])
{
    struct hbuf h = {.n = 0};
    hput(&h, "message");
    hput(&h, campaign_id);
    hput(&h, customer_id);
    if (trigger_event_id != NULL && trigger_event_id[0] != 0) {
        hput(&h, "event");
        hput(&h, trigger_event_id);
    } else {
        hput(&h, "time");
        hput64(&h, trigger_at_ms);
    }
    uint64_t a = siphash(h.b, h.n, KEY_ID_A0, KEY_ID_A1);
    uint64_t b = siphash(h.b, h.n, KEY_ID_B0, KEY_ID_B1);
    static const char hex[] = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        out[i] = hex[(a >> (60 - 4 * i)) & 0xf];
        out[16 + i] = hex[(b >> (60 - 4 * i)) & 0xf];
    }
    out[PATRON_MESSAGE_ID_LEN] = 0;
}

bool patron_campaign_in_control(const char *customer_id, uint32_t control_bp)
{
    struct hbuf h = {.n = 0};
    hput(&h, "control:");
    hput(&h, customer_id);
    return siphash(h.b, h.n, KEY_CHOICE0, KEY_CHOICE1) % 10000 < control_bp;
}

const struct patron_campaign_variant *patron_campaign_variant_of(const struct patron_campaign *c,
                                                                 const char *customer_id)
{
    if (c->n_variants == 0)
        return NULL;
    uint64_t total = 0;
    for (size_t i = 0; i < c->n_variants; i++)
        total += c->variants[i].weight;
    struct hbuf h = {.n = 0};
    hput(&h, "variant:");
    hput(&h, c->id);
    hput(&h, customer_id);
    uint64_t r = siphash(h.b, h.n, KEY_CHOICE0, KEY_CHOICE1) % total;
    for (size_t i = 0; i < c->n_variants; i++) {
        if (r < c->variants[i].weight)
            return &c->variants[i];
        r -= c->variants[i].weight;
    }
    return &c->variants[c->n_variants - 1]; /* unreachable: r < total */
}

/* ---- triggers ------------------------------------------------------------------------ */

static int tier_rank(const char *s)
{
    enum patron_tier t;
    if (s == NULL || s[0] == 0 || patron_tier_parse(s, &t) != 0)
        return 0;
    return (int)t + 1;
}

static bool parse_birthday(const char *s, int *month, int *day)
{
    if (s == NULL || strlen(s) != 5 || s[2] != '-')
        return false;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return false;
    *month = (s[0] - '0') * 10 + (s[1] - '0');
    *day = (s[3] - '0') * 10 + (s[4] - '0');
    /* 2000 is a leap year: 02-29 is a valid birthday */
    return *month >= 1 && *month <= 12 && *day >= 1 &&
           *day <= patron_tz_days_in_month(2000, *month);
}

int patron_campaign_birthday_next(const char *birthday, int at_min, const char *zone,
                                  int64_t after_ms, int64_t *out_ms)
{
    int month, day;
    if (!parse_birthday(birthday, &month, &day) || at_min < 0 || at_min >= 24 * 60)
        return PATRON_EINVAL;
    struct patron_local_time now;
    int rc = patron_tz_local(zone, after_ms, &now);
    if (rc)
        return rc;
    /* This year's may have passed; next year's always comes after. The
     * third year only guards a zone offset pushing past New Year. */
    for (int year = now.year - 1; year <= now.year + 1; year++) {
        int d = day;
        if (d > patron_tz_days_in_month(year, month))
            d = patron_tz_days_in_month(year, month); /* 02-29 -> 02-28 */
        int64_t t;
        if ((rc = patron_tz_utc(zone, year, month, d, at_min / 60, at_min % 60, &t, NULL)) != 0)
            return rc;
        if (t > after_ms) {
            *out_ms = t;
            return 0;
        }
    }
    return PATRON_EINVAL; /* unreachable for years inside 1..9998 */
}

static bool add_ms(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

int patron_campaign_triggers(const struct patron_campaigns *cs, const Patron__V1__ProfileUpdate *u,
                             struct patron_trigger *out, size_t cap, size_t *n_out)
{
    if (cs == NULL || u == NULL || n_out == NULL || (out == NULL && cap > 0))
        return PATRON_EINVAL;
    *n_out = 0;
    int kind = (int)u->kind;
    if (kind <= 0 || kind >= 32 || kind == PATRON__V1__EVENT_KIND__ERASURE)
        return 0;
    for (size_t i = 0; i < cs->count && *n_out < cap; i++) {
        const struct patron_campaign *c = &cs->campaigns[i];
        struct patron_trigger t = {
            .campaign = c, .kind = PATRON_TIMER_NONE, .fire_at_ms = u->occurred_at_ms};
        bool hit = false;
        switch (c->when) {
        case PATRON_CAMPAIGN_WHEN_EVENT:
            hit = (c->events & (1u << kind)) != 0;
            if (hit && c->wait_ms > 0) {
                t.kind = PATRON_TIMER_WAIT;
                hit = add_ms(u->occurred_at_ms, c->wait_ms, &t.fire_at_ms);
            }
            break;
        case PATRON_CAMPAIGN_WHEN_INACTIVE_FOR:
            hit = kind == PATRON__V1__EVENT_KIND__PURCHASE && u->last_purchase_ms > 0;
            t.kind = PATRON_TIMER_INACTIVITY;
            if (hit)
                hit = add_ms(u->last_purchase_ms, c->inactive_for_ms, &t.fire_at_ms);
            break;
        case PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES: {
            enum patron_segment seg, prev;
            bool now_is = u->segment != NULL && patron_segment_parse(u->segment, &seg) == 0 &&
                          seg == c->segment;
            bool was = u->previous_segment != NULL &&
                       patron_segment_parse(u->previous_segment, &prev) == 0 && prev == c->segment;
            hit = now_is && !was;
            break;
        }
        case PATRON_CAMPAIGN_WHEN_TIER_UP: {
            int before = tier_rank(u->previous_tier);
            hit = before > 0 && tier_rank(u->tier) > before;
            break;
        }
        case PATRON_CAMPAIGN_WHEN_CHURN_RISK:
            break; /* the engine's: it needs the model (campaign_engine.h) */
        case PATRON_CAMPAIGN_WHEN_BIRTHDAY:
            hit = kind == PATRON__V1__EVENT_KIND__CUSTOMER &&
                  patron_campaign_birthday_next(u->birthday, c->at_min, u->time_zone,
                                                u->occurred_at_ms, &t.fire_at_ms) == 0;
            t.kind = PATRON_TIMER_BIRTHDAY;
            break;
        }
        if (!hit)
            continue;
        if (c->when != PATRON_CAMPAIGN_WHEN_BIRTHDAY)
            patron_copy_str(t.trigger_event_id, sizeof(t.trigger_event_id), u->event_id);
        out[(*n_out)++] = t;
    }
    return 0;
}

bool patron_campaign_wait_cancelled(const struct patron_campaign *c, int kind, int64_t event_ms,
                                    int64_t fire_at_ms)
{
    if (kind <= 0 || kind >= 32)
        return false;
    return (c->unless & (1u << kind)) != 0 && event_ms < fire_at_ms;
}

bool patron_campaign_consent_revoked(const struct patron_campaign *c,
                                     const Patron__V1__ProfileUpdate *u)
{
    return u->kind == PATRON__V1__EVENT_KIND__CONSENT && !u->consent_granted &&
           (int)u->consent_channel == (int)c->channel;
}

void patron_customer_view_of(const Patron__V1__ProfileUpdate *u, struct patron_customer_view *v)
{
    memset(v, 0, sizeof(*v));
    v->customer_id = u->customer_id;
    v->segment = u->segment;
    v->tier = u->tier;
    v->consent[PATRON_CAMPAIGN_CHANNEL_SMS] = u->consent_sms;
    v->consent[PATRON_CAMPAIGN_CHANNEL_PUSH] = u->consent_push;
    v->consent[PATRON_CAMPAIGN_CHANNEL_EMAIL] = u->consent_email;
    v->time_zone = u->time_zone;
    v->cluster = -1;
}

/* ---- the decision ---------------------------------------------------------------------- */

const char *patron_outcome_name(enum patron_outcome o)
{
    static const char *const names[PATRON_OUTCOMES] = {
        "sent",          "exited",   "consent",       "audience",
        "control_group", "cooldown", "frequency_cap", "delayed",
    };
    if ((unsigned)o >= PATRON_OUTCOMES)
        return "unknown";
    return names[o];
}

static void next_day(int *y, int *m, int *d)
{
    if (++*d > patron_tz_days_in_month(*y, *m)) {
        *d = 1;
        if (++*m > 12) {
            *m = 1;
            ++*y;
        }
    }
}

int patron_quiet_hours_next(const struct patron_quiet_hours *qh, const char *zone, int64_t now_ms,
                            int64_t *out_ms)
{
    *out_ms = now_ms;
    if (qh == NULL || !qh->set || qh->start_min == qh->end_min)
        return 0;
    struct patron_local_time lt;
    int rc = patron_tz_local(zone, now_ms, &lt);
    if (rc)
        return rc;
    int m = lt.hour * 60 + lt.minute;
    int y = lt.year, mo = lt.month, d = lt.day;
    if (qh->start_min < qh->end_min) {
        if (m < qh->start_min || m >= qh->end_min)
            return 0;
    } else if (m >= qh->start_min) {
        next_day(&y, &mo, &d); /* the window ends tomorrow morning */
    } else if (m >= qh->end_min) {
        return 0;
    }
    int64_t end;
    rc = patron_tz_utc(zone, y, mo, d, qh->end_min / 60, qh->end_min % 60, &end, NULL);
    if (rc)
        return rc;
    if (end > now_ms)
        *out_ms = end;
    return 0;
}

/* A customer is in a cluster audience by the id or the label of their
 * cluster; without one (no purchase, nothing fitted), in none. */
static bool in_clusters(const struct patron_cluster_audience *a,
                        const struct patron_customer_view *v)
{
    if (v->cluster < 0 || v->cluster >= PATRON_CLUSTERS_MAX)
        return false;
    if (a->ids & (1u << v->cluster))
        return true;
    for (size_t i = 0; v->cluster_label != NULL && i < a->n_labels; i++)
        if (strcmp(a->labels[i], v->cluster_label) == 0)
            return true;
    return false;
}

static bool in_audience(const struct patron_campaign *c, const struct patron_customer_view *v)
{
    if (c->audience_segments != PATRON_AUDIENCE_ANY_SEGMENT) {
        enum patron_segment s;
        if (v->segment == NULL || patron_segment_parse(v->segment, &s) != 0 ||
            (c->audience_segments & (1u << s)) == 0)
            return false;
    }
    if (c->audience_tiers != PATRON_AUDIENCE_ANY_TIER) {
        enum patron_tier t;
        if (v->tier == NULL || patron_tier_parse(v->tier, &t) != 0 ||
            (c->audience_tiers & (1u << t)) == 0)
            return false;
    }
    return c->clusters.n == 0 || in_clusters(&c->clusters, v);
}

static bool capped(const struct patron_campaign_defaults *d, const struct patron_campaign *c,
                   const struct patron_decision_input *in)
{
    size_t n = in->n_sends < PATRON_SEND_HISTORY_MAX ? in->n_sends : PATRON_SEND_HISTORY_MAX;
    for (size_t k = 0; k < d->n_caps; k++) {
        const struct patron_frequency_cap *cap = &d->caps[k];
        if (cap->channel != PATRON_CAMPAIGN_CHANNEL_ANY && cap->channel != c->channel)
            continue;
        uint64_t count = 0;
        for (size_t i = 0; i < n; i++) {
            const struct patron_send *s = &in->sends[i];
            if (cap->channel != PATRON_CAMPAIGN_CHANNEL_ANY && s->channel != cap->channel)
                continue;
            if (s->at_ms <= in->now_ms && s->at_ms > in->now_ms - cap->per_ms)
                count++;
        }
        if (count >= cap->max)
            return true;
    }
    return false;
}

int patron_campaign_decide(const struct patron_decision_input *in, struct patron_decision *out)
{
    if (in == NULL || out == NULL || in->cs == NULL || in->campaign == NULL ||
        in->customer == NULL || in->customer->customer_id == NULL ||
        (in->sends == NULL && in->n_sends > 0) || in->now_ms < 0)
        return PATRON_EINVAL;
    const struct patron_campaign *c = in->campaign;
    const struct patron_customer_view *v = in->customer;
    if ((unsigned)c->channel >= PATRON_CAMPAIGN_CHANNELS ||
        c->channel == PATRON_CAMPAIGN_CHANNEL_ANY)
        return PATRON_EINVAL;
    memset(out, 0, sizeof(*out));
    out->variant = patron_campaign_variant_of(c, v->customer_id);
    out->control = patron_campaign_in_control(v->customer_id, in->cs->defaults.control_group_bp);
    patron_campaign_message_id(c->id, v->customer_id, in->trigger_event_id, in->trigger_at_ms,
                               out->message_id);

    if (!v->consent[c->channel]) {
        out->outcome = PATRON_OUTCOME_SUPPRESSED_CONSENT;
        return 0;
    }
    if (!in_audience(c, v)) {
        out->outcome = PATRON_OUTCOME_SUPPRESSED_AUDIENCE;
        return 0;
    }
    if (c->cooldown_ms > 0 && in->last_sent_ms > 0 &&
        in->now_ms - in->last_sent_ms < c->cooldown_ms) {
        out->outcome = PATRON_OUTCOME_SUPPRESSED_COOLDOWN;
        return 0;
    }
    if (!c->ignore_caps) {
        if (capped(&in->cs->defaults, c, in)) {
            out->outcome = PATRON_OUTCOME_SUPPRESSED_FREQUENCY_CAP;
            return 0;
        }
        const struct patron_quiet_hours *qh =
            c->quiet_hours.set ? &c->quiet_hours : &in->cs->defaults.quiet_hours;
        int64_t at;
        int rc = patron_quiet_hours_next(qh, v->time_zone, in->now_ms, &at);
        if (rc)
            return rc;
        if (at > in->now_ms) {
            out->outcome = PATRON_OUTCOME_DELAYED;
            out->send_at_ms = at;
            return 0;
        }
    }
    /* Last, so that the holdout passes the same checks as the treated group
     * (with its would-have-been sends in its own history): a capped customer
     * is neither sent nor "would have been sent", in either group, and the
     * two conversion rates compare like with like. */
    out->outcome = out->control ? PATRON_OUTCOME_SUPPRESSED_CONTROL_GROUP : PATRON_OUTCOME_SENT;
    out->send_at_ms = in->now_ms;
    return 0;
}

/* ---- attribution ----------------------------------------------------------------------- */

static bool candidate(const struct patron_attribution_send *s, int64_t purchase_ms,
                      int64_t window_ms)
{
    return !s->converted && s->campaign_id != NULL && s->at_ms < purchase_ms &&
           purchase_ms - s->at_ms <= window_ms;
}

int patron_attribution_match(const struct patron_attribution_send *sends, size_t n,
                             int64_t purchase_ms, int64_t window_ms, size_t *out_idx, size_t cap,
                             size_t *n_out)
{
    if ((sends == NULL && n > 0) || n_out == NULL || (out_idx == NULL && cap > 0) || window_ms <= 0)
        return PATRON_EINVAL;
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (!candidate(&sends[i], purchase_ms, window_ms))
            continue;
        bool latest = true;
        for (size_t j = 0; j < n && latest; j++) {
            if (j == i || !candidate(&sends[j], purchase_ms, window_ms) ||
                strcmp(sends[j].campaign_id, sends[i].campaign_id) != 0)
                continue;
            if (sends[j].at_ms > sends[i].at_ms || (sends[j].at_ms == sends[i].at_ms && j > i))
                latest = false;
        }
        if (!latest)
            continue;
        if (*n_out == cap)
            return PATRON_ETOOBIG;
        out_idx[(*n_out)++] = i;
    }
    return 0;
}
