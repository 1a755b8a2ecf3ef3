/* The ProfileUpdate of one event (see patron/profile_update.h). */
#include "patron/profile_update.h"

#include <string.h>

#include "patron/pb_pack.h"
#include "patron/pb_unpack.h"
#include "patron/rfm.h"

Patron__V1__EventKind patron_event_kind(const Patron__V1__Event *ev)
{
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        return PATRON__V1__EVENT_KIND__VIEW;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        return PATRON__V1__EVENT_KIND__CART_ADD;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        return PATRON__V1__EVENT_KIND__CART_REMOVE;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        return PATRON__V1__EVENT_KIND__PURCHASE;
    case PATRON__V1__EVENT__KIND_REFUND:
        return PATRON__V1__EVENT_KIND__REFUND;
    case PATRON__V1__EVENT__KIND_REVIEW:
        return PATRON__V1__EVENT_KIND__REVIEW;
    case PATRON__V1__EVENT__KIND_CUSTOMER:
        return PATRON__V1__EVENT_KIND__CUSTOMER;
    case PATRON__V1__EVENT__KIND_CONSENT:
        return PATRON__V1__EVENT_KIND__CONSENT;
    case PATRON__V1__EVENT__KIND_ERASURE:
        return PATRON__V1__EVENT_KIND__ERASURE;
    case PATRON__V1__EVENT__KIND_IDENTIFY:
        return PATRON__V1__EVENT_KIND__IDENTIFY;
    default:
        return PATRON__V1__EVENT_KIND__EVENT_KIND_UNSPECIFIED;
    }
}

size_t patron_event_items(const Patron__V1__Event *ev, char **out, size_t max)
{
    size_t n = 0;
    if (max == 0)
        return 0;
    switch (ev->kind_case) {
    case PATRON__V1__EVENT__KIND_VIEW:
        out[n++] = ev->view->item_id;
        break;
    case PATRON__V1__EVENT__KIND_CART_ADD:
        out[n++] = ev->cart_add->item->item_id;
        break;
    case PATRON__V1__EVENT__KIND_CART_REMOVE:
        out[n++] = ev->cart_remove->item_id;
        break;
    case PATRON__V1__EVENT__KIND_PURCHASE:
        for (size_t i = 0; i < ev->purchase->n_items && n < max; i++)
            out[n++] = ev->purchase->items[i]->item_id;
        break;
    case PATRON__V1__EVENT__KIND_REFUND:
        for (size_t i = 0; i < ev->refund->n_items && n < max; i++)
            out[n++] = ev->refund->items[i]->item_id;
        break;
    case PATRON__V1__EVENT__KIND_REVIEW:
        out[n++] = ev->review->item_id;
        break;
    default:
        break;
    }
    return n;
}

int patron_profile_update_pack(const Patron__V1__Event *ev, const struct patron_profile *p,
                               const struct patron_apply_outcome *out, int32_t partition,
                               int64_t offset, uint8_t *buf, size_t cap, size_t *len)
{
    Patron__V1__ProfileUpdate u = PATRON__V1__PROFILE_UPDATE__INIT;
    char *items[PATRON_UPDATE_ITEMS_MAX];

    /* the profile's customer: a merged visitor's event is its customer's */
    u.customer_id = (char *)p->customer_id;
    u.event_id = ev->event_id;
    u.kind = patron_event_kind(ev);
    u.occurred_at_ms = ev->occurred_at_ms;
    u.replayed = out->result == PATRON_APPLY_REPLAYED;
    if (ev->kind_case == PATRON__V1__EVENT__KIND_IDENTIFY) {
        /* the merged cart, when the visitor brought lines to it */
        u.anonymous_id = ev->identify->anonymous_id;
        if (out->cart_lines > 0)
            for (size_t i = 0; i < p->n_cart && u.n_item_ids < PATRON_UPDATE_ITEMS_MAX; i++)
                items[u.n_item_ids++] = (char *)p->cart[i].item_id;
    } else {
        u.anonymous_id = ev->customer_id[0] ? (char *)"" : ev->anonymous_id;
        u.n_item_ids = patron_event_items(ev, items, PATRON_UPDATE_ITEMS_MAX);
    }
    u.item_ids = items;
    u.value_cents = out->value_cents;
    /* protobuf-c's struct is not const-correct; packing only reads */
    u.tier = (char *)patron_tier_name(out->tier_after);
    u.previous_tier = (char *)patron_tier_name(out->tier_before);
    u.segment = (char *)patron_segment_name(out->segment_after);
    u.previous_segment = (char *)patron_segment_name(out->segment_before);
    u.orders = p->orders;
    u.net_spend_cents = p->net_spend_cents;
    u.points = p->points;
    u.last_purchase_ms = p->last_purchase_ms;
    u.first_purchase_ms = p->first_purchase_ms;
    u.consent_sms = p->consent_sms;
    u.consent_push = p->consent_push;
    u.consent_email = p->consent_email;
    u.time_zone = (char *)p->time_zone;
    u.locale = (char *)p->locale;
    u.birthday = (char *)p->birthday;
    if (ev->kind_case == PATRON__V1__EVENT__KIND_CONSENT) {
        u.consent_channel = ev->consent->channel;
        u.consent_granted = ev->consent->granted;
    }
    u.partition = partition;
    u.offset = offset;
    if (patron_pb_pack_profile_update(&u, buf, cap, len) == 0)
        return 0;
    *len = patron__v1__profile_update__get_packed_size(&u);
    return PATRON_ETOOBIG;
}

size_t patron_profile_update_fanout(const uint8_t *update, size_t len, uint8_t *out)
{
    /* tag (26 << 3 | varint) = 208 as a varint, then 1 */
    static const uint8_t flag[PATRON_UPDATE_FANOUT_EXTRA] = {0xd0, 0x01, 0x01};
    const uint8_t *at = update, *end = update + len;
    while (at < end) {
        const uint8_t *field = at;
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f) || f.number > 26) {
            at = field; /* the flag goes before it (or before what does not scan) */
            break;
        }
    }
    size_t head = (size_t)(at - update);
    if (head)
        memcpy(out, update, head);
    memcpy(out + head, flag, sizeof(flag));
    if (len > head)
        memcpy(out + head + sizeof(flag), update + head, len - head);
    return len + sizeof(flag);
}
