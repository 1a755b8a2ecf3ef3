/*
 * Test fixture: builds Patron__V1__Event values in caller-owned storage (no
 * heap), for the domain unit tests. A struct fx_event holds one event and
 * its sub-messages; each fx_* call resets it and returns &f->ev, valid while
 * f is and while the strings passed in are.
 */
#ifndef PATRON_TEST_FIXTURE_EVENTS_H
#define PATRON_TEST_FIXTURE_EVENTS_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "patron/v1/event.pb-c.h"

#define FX_CUSTOMER "c1"
#define FX_DAY INT64_C(86400000)
/* 2021-01-15T00:00:00Z */
#define FX_T0 INT64_C(1610668800000)
#define FX_LINES_MAX 1100

struct fx_line {
    const char *item, *category;
    int32_t quantity;
    int64_t unit_price_cents;
};

struct fx_event {
    Patron__V1__Event ev;
    Patron__V1__ProductView view;
    Patron__V1__CartAdd cart_add;
    Patron__V1__CartRemove cart_remove;
    Patron__V1__Purchase purchase;
    Patron__V1__Refund refund;
    Patron__V1__Review review;
    Patron__V1__CustomerUpdate customer;
    Patron__V1__ConsentChange consent;
    Patron__V1__ErasureRequest erasure;
    Patron__V1__Identify identify;
    Patron__V1__LineItem lines[FX_LINES_MAX];
    Patron__V1__LineItem *line_ptrs[FX_LINES_MAX];
};

static inline Patron__V1__Event *fx_base(struct fx_event *f, const char *event_id, int64_t t)
{
    memset(f, 0, sizeof(*f));
    patron__v1__event__init(&f->ev);
    f->ev.event_id = (char *)event_id;
    f->ev.customer_id = (char *)FX_CUSTOMER;
    f->ev.occurred_at_ms = t;
    return &f->ev;
}

static inline size_t fx_set_lines(struct fx_event *f, size_t n, const struct fx_line *lines)
{
    for (size_t i = 0; i < n && i < FX_LINES_MAX; i++) {
        patron__v1__line_item__init(&f->lines[i]);
        f->lines[i].item_id = (char *)(lines[i].item ? lines[i].item : "");
        f->lines[i].category = (char *)(lines[i].category ? lines[i].category : "");
        f->lines[i].quantity = lines[i].quantity;
        f->lines[i].unit_price_cents = lines[i].unit_price_cents;
        f->line_ptrs[i] = &f->lines[i];
    }
    return n;
}

static inline Patron__V1__Event *fx_view(struct fx_event *f, const char *id, int64_t t,
                                         const char *item, const char *category)
{
    fx_base(f, id, t);
    patron__v1__product_view__init(&f->view);
    f->view.item_id = (char *)item;
    f->view.category = (char *)category;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_VIEW;
    f->ev.view = &f->view;
    return &f->ev;
}

static inline Patron__V1__Event *fx_cart_add(struct fx_event *f, const char *id, int64_t t,
                                             const char *item, const char *category,
                                             int32_t quantity, int64_t price)
{
    fx_base(f, id, t);
    struct fx_line line = {item, category, quantity, price};
    fx_set_lines(f, 1, &line);
    patron__v1__cart_add__init(&f->cart_add);
    f->cart_add.item = &f->lines[0];
    f->ev.kind_case = PATRON__V1__EVENT__KIND_CART_ADD;
    f->ev.cart_add = &f->cart_add;
    return &f->ev;
}

static inline Patron__V1__Event *fx_cart_remove(struct fx_event *f, const char *id, int64_t t,
                                                const char *item)
{
    fx_base(f, id, t);
    patron__v1__cart_remove__init(&f->cart_remove);
    f->cart_remove.item_id = (char *)item;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_CART_REMOVE;
    f->ev.cart_remove = &f->cart_remove;
    return &f->ev;
}

static inline Patron__V1__Event *fx_purchase(struct fx_event *f, const char *id, int64_t t,
                                             size_t n, const struct fx_line *lines)
{
    fx_base(f, id, t);
    patron__v1__purchase__init(&f->purchase);
    f->purchase.n_items = fx_set_lines(f, n, lines);
    f->purchase.items = f->line_ptrs;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_PURCHASE;
    f->ev.purchase = &f->purchase;
    return &f->ev;
}

static inline Patron__V1__Event *fx_refund(struct fx_event *f, const char *id, int64_t t,
                                           int64_t amount, size_t n, const struct fx_line *lines)
{
    fx_base(f, id, t);
    patron__v1__refund__init(&f->refund);
    f->refund.amount_cents = amount;
    f->refund.n_items = fx_set_lines(f, n, lines);
    f->refund.items = f->line_ptrs;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_REFUND;
    f->ev.refund = &f->refund;
    return &f->ev;
}

static inline Patron__V1__Event *fx_review(struct fx_event *f, const char *id, int64_t t,
                                           const char *item, int32_t rating)
{
    fx_base(f, id, t);
    patron__v1__review__init(&f->review);
    f->review.item_id = (char *)item;
    f->review.rating = rating;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_REVIEW;
    f->ev.review = &f->review;
    return &f->ev;
}

static inline Patron__V1__Event *fx_customer(struct fx_event *f, const char *id, int64_t t,
                                             const char *birthday, const char *time_zone,
                                             const char *locale, const char *country)
{
    fx_base(f, id, t);
    patron__v1__customer_update__init(&f->customer);
    f->customer.birthday = (char *)birthday;
    f->customer.time_zone = (char *)time_zone;
    f->customer.locale = (char *)locale;
    f->customer.country = (char *)country;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_CUSTOMER;
    f->ev.customer = &f->customer;
    return &f->ev;
}

static inline Patron__V1__Event *fx_consent(struct fx_event *f, const char *id, int64_t t,
                                            Patron__V1__Channel channel, bool granted)
{
    fx_base(f, id, t);
    patron__v1__consent_change__init(&f->consent);
    f->consent.channel = channel;
    f->consent.granted = granted;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_CONSENT;
    f->ev.consent = &f->consent;
    return &f->ev;
}

static inline Patron__V1__Event *fx_erasure(struct fx_event *f, const char *id, int64_t t)
{
    fx_base(f, id, t);
    patron__v1__erasure_request__init(&f->erasure);
    f->ev.kind_case = PATRON__V1__EVENT__KIND_ERASURE;
    f->ev.erasure = &f->erasure;
    return &f->ev;
}

/* An Identify: customer FX_CUSTOMER was visitor anonymous_id. */
static inline Patron__V1__Event *fx_identify(struct fx_event *f, const char *id, int64_t t,
                                             const char *anonymous_id)
{
    fx_base(f, id, t);
    patron__v1__identify__init(&f->identify);
    f->identify.anonymous_id = (char *)anonymous_id;
    f->ev.kind_case = PATRON__V1__EVENT__KIND_IDENTIFY;
    f->ev.identify = &f->identify;
    return &f->ev;
}

/* Makes ev a visitor's: no customer_id, anonymous_id instead. */
static inline Patron__V1__Event *fx_anon(Patron__V1__Event *ev, const char *anonymous_id)
{
    ev->customer_id = (char *)"";
    ev->anonymous_id = (char *)anonymous_id;
    return ev;
}

#endif
