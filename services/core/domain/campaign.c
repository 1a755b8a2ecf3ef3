/*
 * The campaigns as data: lookups and the names the campaigns file, the
 * messages and the statistics share (one table each). Parsing the file is
 * codec/campaign_yaml.c's.
 */
#include "patron/campaign.h"

#include <stdlib.h>
#include <string.h>

#include "patron/v1/profile.pb-c.h"

static const struct {
    const char *name;
    int kind;
} event_kinds[] = {
    {"view", PATRON__V1__EVENT_KIND__VIEW},
    {"cart_add", PATRON__V1__EVENT_KIND__CART_ADD},
    {"cart_remove", PATRON__V1__EVENT_KIND__CART_REMOVE},
    {"purchase", PATRON__V1__EVENT_KIND__PURCHASE},
    {"refund", PATRON__V1__EVENT_KIND__REFUND},
    {"review", PATRON__V1__EVENT_KIND__REVIEW},
    {"customer", PATRON__V1__EVENT_KIND__CUSTOMER},
    {"consent", PATRON__V1__EVENT_KIND__CONSENT},
};

int patron_campaign_event_kind_parse(const char *s)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(event_kinds); i++)
        if (strcmp(s, event_kinds[i].name) == 0)
            return event_kinds[i].kind;
    return 0;
}

const char *const patron_campaign_channel_names[PATRON_CAMPAIGN_CHANNELS] = {"any", "sms", "push",
                                                                             "email"};

const char *patron_campaign_channel_name(enum patron_campaign_channel ch)
{
    if ((unsigned)ch >= PATRON_CAMPAIGN_CHANNELS)
        return "unknown";
    return patron_campaign_channel_names[ch];
}

void patron_campaigns_free(struct patron_campaigns *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < cs->count; i++)
        free(cs->campaigns[i].params);
    free(cs->campaigns);
    free(cs);
}

const struct patron_campaign *patron_campaigns_find(const struct patron_campaigns *cs,
                                                    const char *id)
{
    for (size_t i = 0; i < cs->count; i++)
        if (strcmp(cs->campaigns[i].id, id) == 0)
            return &cs->campaigns[i];
    return NULL;
}
