#include "patron/event_check.h"

#include <string.h>

#include "patron/profile.h"

/* Whether the 8 bytes of w are all printable ASCII (0x20 to 0x7f): a byte
 * below 0x20 sets its top bit in w - 0x20.., one of 0x80 and up in w (the
 * lowest such byte borrows from nothing below it, so none is missed). */
static bool ascii8(uint64_t w)
{
    return (((w - 0x2020202020202020ULL) | w) & 0x8080808080808080ULL) == 0;
}

static uint64_t load8(const uint8_t *s)
{
    uint64_t w;
    memcpy(&w, s, 8);
    return w;
}

static uint64_t load4(const uint8_t *s)
{
    uint32_t w;
    memcpy(&w, s, 4);
    return w;
}

/* Printable ASCII throughout (ids nearly always are), 8 bytes at a time;
 * the last (or only) word overlaps the one before. A false "no" only sends
 * the text to the byte-by-byte check. */
static bool ascii_only(const uint8_t *s, size_t n)
{
    bool ascii = true;
    if (n >= 8) {
        for (size_t i = 0; i + 8 < n && ascii; i += 8)
            ascii = ascii8(load8(s + i));
        return ascii && ascii8(load8(s + n - 8));
    }
    if (n >= 4)
        return ascii8(load4(s) | load4(s + n - 4) << 32);
    for (size_t i = 0; i < n; i++)
        ascii = ascii && (uint8_t)(s[i] - 0x20) < 0x60;
    return ascii;
}

bool patron_event_text_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    if (ascii_only(p, len))
        return true;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x20)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return false;
        }
        if (len - i - 1 < n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            unsigned b = p[i + k];
            if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF))
                return false;
        }
        i += n + 1;
    }
    return true;
}

enum field_rule { OPTIONAL, REQUIRED };

/* One string field: the reasons for its three failure modes. */
struct field_reasons {
    const char *missing, *too_long, *bad_bytes;
};

static const char *check_text(const char *s, size_t max, enum field_rule rule,
                              const struct field_reasons *r)
{
    size_t len = s ? strlen(s) : 0;
    if (len == 0)
        return rule == REQUIRED ? r->missing : NULL;
    if (len > max)
        return r->too_long;
    if (!patron_event_text_valid(s, len))
        return r->bad_bytes;
    return NULL;
}

static const struct field_reasons EVENT_ID = {"missing event_id", "event_id too long",
                                              "event_id has invalid bytes"};
static const struct field_reasons CUSTOMER_ID = {"missing customer_id", "customer_id too long",
                                                 "customer_id has invalid bytes"};
static const struct field_reasons ITEM_ID = {"missing item_id", "item_id too long",
                                             "item_id has invalid bytes"};
static const struct field_reasons CATEGORY = {NULL, "category too long",
                                              "category has invalid bytes"};
static const struct field_reasons ORDER_ID = {NULL, "order_id too long",
                                              "order_id has invalid bytes"};
static const struct field_reasons ANONYMOUS_ID = {NULL, "anonymous_id too long",
                                                  "anonymous_id has invalid bytes"};
static const struct field_reasons IDENTIFY_ANONYMOUS_ID = {
    "missing identify.anonymous_id", "identify.anonymous_id too long",
    "identify.anonymous_id has invalid bytes"};
static const struct field_reasons CURRENCY = {NULL, "currency too long",
                                              "currency has invalid bytes"};
static const struct field_reasons LOCALE = {NULL, "locale too long", "locale has invalid bytes"};
static const struct field_reasons COUNTRY = {NULL, "country too long", "country has invalid bytes"};

/* Saturating at PATRON_EVENT_VALUE_MAX_CENTS + 1 so that "too much" stays
 * detectable without overflow. Negative inputs count as 0 (checked apart). */
static int64_t lines_value(Patron__V1__LineItem *const *items, size_t n)
{
    const int64_t cap = PATRON_EVENT_VALUE_MAX_CENTS + 1;
    int64_t sum = 0;
    for (size_t i = 0; i < n; i++) {
        const Patron__V1__LineItem *li = items[i];
        if (!li || li->quantity <= 0 || li->unit_price_cents <= 0)
            continue;
        int64_t v;
        if (__builtin_mul_overflow((int64_t)li->quantity, li->unit_price_cents, &v) || v > cap)
            return cap;
        sum += v; /* both <= cap: no overflow */
        if (sum > cap)
            return cap;
    }
    return sum;
}

static const char *check_line(const Patron__V1__LineItem *li)
{
    const char *why;
    if (!li)
        return "missing line";
    if ((why = check_text(li->item_id, PATRON_ID_MAX, REQUIRED, &ITEM_ID)))
        return why;
    if ((why = check_text(li->category, PATRON_ID_MAX, OPTIONAL, &CATEGORY)))
        return why;
    if (li->quantity <= 0)
        return "quantity not positive";
    if (li->unit_price_cents < 0)
        return "negative unit price";
    return NULL;
}

static const char *check_lines(Patron__V1__LineItem *const *items, size_t n)
{
    if (n > PATRON_EVENT_LINES_MAX)
        return "too many lines";
    for (size_t i = 0; i < n; i++) {
        const char *why = check_line(items[i]);
        if (why)
            return why;
    }
    if (lines_value(items, n) > PATRON_EVENT_VALUE_MAX_CENTS)
        return "value out of range";
    return NULL;
}

static bool birthday_ok(const char *s)
{
    static const int days_in[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (strlen(s) != 5 || s[2] != '-')
        return false;
    for (int i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return false;
    int month = (s[0] - '0') * 10 + (s[1] - '0');
    int day = (s[3] - '0') * 10 + (s[4] - '0');
    return month >= 1 && month <= 12 && day >= 1 && day <= days_in[month - 1];
}

/* Shaped like an IANA zone name: "UTC", "Europe/London", "Etc/GMT+5",
 * "America/Argentina/Buenos_Aires": starts with a letter, then letters,
 * digits and _-+ in parts separated by single slashes. Whether the zone
 * exists is for the consumer of the name to decide. */
static bool time_zone_shape_ok(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || s[len - 1] == '/')
        return false;
    if (!((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z')))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '+' || (c == '/' && s[i + 1] != '/');
        if (!ok)
            return false;
    }
    return true;
}

static const char *check_kind(const Patron__V1__Event *ev)
{
    const char *why;
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        if (!ev->view)
            return "missing kind";
        if ((why = check_text(ev->view->item_id, PATRON_ID_MAX, REQUIRED, &ITEM_ID)))
            return why;
        return check_text(ev->view->category, PATRON_ID_MAX, OPTIONAL, &CATEGORY);
    case PATRON__V1__EVENT__KIND_CART_ADD:
        if (!ev->cart_add)
            return "missing kind";
        if (!ev->cart_add->item)
            return "missing line";
        return check_lines(&ev->cart_add->item, 1);
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        if (!ev->cart_remove)
            return "missing kind";
        return check_text(ev->cart_remove->item_id, PATRON_ID_MAX, REQUIRED, &ITEM_ID);
    case PATRON__V1__EVENT__KIND_PURCHASE: {
        const Patron__V1__Purchase *pu = ev->purchase;
        if (!pu)
            return "missing kind";
        if ((why = check_text(pu->order_id, PATRON_ID_MAX, OPTIONAL, &ORDER_ID)))
            return why;
        if ((why = check_text(pu->currency, PATRON_EVENT_CURRENCY_MAX, OPTIONAL, &CURRENCY)))
            return why;
        if (pu->n_items == 0)
            return "purchase without lines";
        return check_lines(pu->items, pu->n_items);
    }
    case PATRON__V1__EVENT__KIND_REFUND: {
        const Patron__V1__Refund *rf = ev->refund;
        if (!rf)
            return "missing kind";
        if ((why = check_text(rf->order_id, PATRON_ID_MAX, OPTIONAL, &ORDER_ID)))
            return why;
        if (rf->amount_cents < 0)
            return "negative refund amount";
        if (rf->amount_cents > PATRON_EVENT_VALUE_MAX_CENTS)
            return "value out of range";
        if (rf->amount_cents == 0 && rf->n_items == 0)
            return "refund without amount or lines";
        return check_lines(rf->items, rf->n_items);
    }
    case PATRON__V1__EVENT__KIND_REVIEW:
        if (!ev->review)
            return "missing kind";
        if ((why = check_text(ev->review->item_id, PATRON_ID_MAX, REQUIRED, &ITEM_ID)))
            return why;
        if (ev->review->rating < 1 || ev->review->rating > 5)
            return "rating out of range";
        return NULL;
    case PATRON__V1__EVENT__KIND_CUSTOMER: {
        const Patron__V1__CustomerUpdate *cu = ev->customer;
        if (!cu)
            return "missing kind";
        if (cu->birthday && cu->birthday[0] && !birthday_ok(cu->birthday))
            return "invalid birthday";
        if (cu->time_zone && cu->time_zone[0]) {
            if (strlen(cu->time_zone) > PATRON_PROFILE_TIME_ZONE_MAX)
                return "time_zone too long";
            if (!time_zone_shape_ok(cu->time_zone))
                return "invalid time_zone";
        }
        if ((why = check_text(cu->locale, PATRON_PROFILE_LOCALE_MAX, OPTIONAL, &LOCALE)))
            return why;
        return check_text(cu->country, PATRON_PROFILE_COUNTRY_MAX, OPTIONAL, &COUNTRY);
    }
    case PATRON__V1__EVENT__KIND_CONSENT:
        if (!ev->consent)
            return "missing kind";
        switch (ev->consent->channel) {
        case PATRON__V1__CHANNEL__SMS:
        case PATRON__V1__CHANNEL__PUSH:
        case PATRON__V1__CHANNEL__EMAIL:
            return NULL;
        case PATRON__V1__CHANNEL__CHANNEL_UNSPECIFIED:
            return "consent channel unspecified";
        default:
            return "consent channel unknown";
        }
    case PATRON__V1__EVENT__KIND_ERASURE:
        return ev->erasure ? NULL : "missing kind";
    case PATRON__V1__EVENT__KIND_IDENTIFY:
        if (!ev->identify)
            return "missing kind";
        /* the customer who logged in, and the visitor they were */
        if (!ev->customer_id || !ev->customer_id[0])
            return "missing customer_id";
        return check_text(ev->identify->anonymous_id, PATRON_ID_MAX, REQUIRED,
                          &IDENTIFY_ANONYMOUS_ID);
    default:
        /* Unknown oneof numbers stay unknown fields: kind_case is NOT_SET. */
        return "missing kind";
    }
}

int patron_event_check(const Patron__V1__Event *ev, const char **reason)
{
    const char *why;
    if (!ev) {
        why = "missing event";
        goto out_reject;
    }
    if ((why = check_text(ev->event_id, PATRON_ID_MAX, REQUIRED, &EVENT_ID)))
        goto out_reject;
    /* A visitor not known yet has no customer_id: its anonymous_id instead. */
    if ((why = check_text(ev->anonymous_id, PATRON_ID_MAX, OPTIONAL, &ANONYMOUS_ID)))
        goto out_reject;
    bool anonymous = ev->anonymous_id && ev->anonymous_id[0];
    if ((why = check_text(ev->customer_id, PATRON_ID_MAX, anonymous ? OPTIONAL : REQUIRED,
                          &CUSTOMER_ID)))
        goto out_reject;
    if (ev->occurred_at_ms <= 0) {
        why = "occurred_at_ms not positive";
        goto out_reject;
    }
    if (ev->occurred_at_ms > PATRON_EVENT_TIME_MAX_MS) {
        why = "occurred_at_ms out of range";
        goto out_reject;
    }
    if ((why = check_kind(ev)))
        goto out_reject;
    *reason = NULL;
    return 0;

out_reject:
    *reason = why;
    return PATRON_EINVAL;
}

int64_t patron_event_value_cents(const Patron__V1__Event *ev)
{
    if (!ev)
        return 0;
    if (ev->kind_case == PATRON__V1__EVENT__KIND_PURCHASE && ev->purchase) {
        int64_t v = lines_value(ev->purchase->items, ev->purchase->n_items);
        return v > PATRON_EVENT_VALUE_MAX_CENTS ? PATRON_EVENT_VALUE_MAX_CENTS : v;
    }
    if (ev->kind_case == PATRON__V1__EVENT__KIND_REFUND && ev->refund) {
        int64_t v = ev->refund->amount_cents > 0
                        ? ev->refund->amount_cents
                        : lines_value(ev->refund->items, ev->refund->n_items);
        return v > PATRON_EVENT_VALUE_MAX_CENTS ? PATRON_EVENT_VALUE_MAX_CENTS : v;
    }
    return 0;
}
