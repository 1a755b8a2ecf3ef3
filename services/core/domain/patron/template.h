/*
 * The CampaignMessage of a decision (docs/contracts/events.md): ids, the variant's (else
 * the campaign's) template, the campaign's params plus computed ones.
 * Messages carry the customer id and never contact details: the computed
 * params are only "points", "tier" and "segment" (names the campaigns
 * parser reserves), so no personal field can leak in.
 *
 * Ownership: patron_template_fill allocates every string and entry it sets
 * into *msg (aborting on out of memory, common.h); patron_template_clear
 * frees exactly those and resets *msg. The shell adds recommended `items`
 * itself and must free and detach them (n_items = 0, items = NULL) before
 * patron_template_clear. Pure; safe from any thread on distinct messages.
 */
#ifndef PATRON_TEMPLATE_H
#define PATRON_TEMPLATE_H

#include "patron/campaign_rules.h"
#include "patron/v1/campaign.pb-c.h"

struct patron_template_input {
    const struct patron_campaign *campaign;
    const struct patron_decision *decision; /* message id and variant */
    const char *customer_id;
    const char *trigger_event_id; /* "" for timer-only triggers */
    const char *locale;           /* "" when unknown */
    const char *tier;             /* "" when unknown: param left out */
    const char *segment;          /* "" when unknown: param left out */
    int64_t points;
    int64_t created_at_ms; /* the decision's time (event clock) */
};

/* Fills a zero-initialised (PATRON__V1__CAMPAIGN_MESSAGE__INIT) message.
 * PATRON_EINVAL on NULL arguments or a decision without a message id. */
int patron_template_fill(Patron__V1__CampaignMessage *msg,
                         const struct patron_template_input *in) PATRON_MUST_USE;

void patron_template_clear(Patron__V1__CampaignMessage *msg);

#endif
