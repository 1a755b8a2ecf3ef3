#include "patron/template.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_empty(const char *s)
{
    return patron_strdup(s ? s : "");
}

static void add_param(Patron__V1__CampaignMessage *msg, const char *key, const char *value)
{
    Patron__V1__CampaignMessage__ParamsEntry *e = patron_malloc(sizeof(*e));
    patron__v1__campaign_message__params_entry__init(e);
    e->key = patron_strdup(key);
    e->value = patron_strdup(value);
    msg->params[msg->n_params++] = e;
}

int patron_template_fill(Patron__V1__CampaignMessage *msg, const struct patron_template_input *in)
{
    if (msg == NULL || in == NULL || in->campaign == NULL || in->decision == NULL ||
        in->customer_id == NULL || in->decision->message_id[0] == 0)
        return PATRON_EINVAL;
    const struct patron_campaign *c = in->campaign;
    const struct patron_campaign_variant *v = in->decision->variant;
    patron__v1__campaign_message__init(msg);
    msg->message_id = patron_strdup(in->decision->message_id);
    msg->customer_id = patron_strdup(in->customer_id);
    msg->campaign_id = patron_strdup(c->id);
    msg->variant = dup_or_empty(v ? v->id : NULL);
    msg->channel = (Patron__V1__Channel)c->channel;
    msg->template_ = patron_strdup(v && v->template_name[0] ? v->template_name : c->template_name);
    msg->created_at_ms = in->created_at_ms;
    msg->trigger_event_id = dup_or_empty(in->trigger_event_id);
    msg->locale = dup_or_empty(in->locale);

    msg->params = patron_calloc(c->n_params + 3, sizeof(*msg->params));
    for (size_t i = 0; i < c->n_params; i++)
        add_param(msg, c->params[i].key, c->params[i].value);
    char points[24];
    (void)snprintf(points, sizeof(points), "%" PRId64, in->points);
    add_param(msg, "points", points);
    if (in->tier != NULL && in->tier[0] != 0)
        add_param(msg, "tier", in->tier);
    if (in->segment != NULL && in->segment[0] != 0)
        add_param(msg, "segment", in->segment);
    return 0;
}

/* init points unset strings at protobuf-c's static empty string. */
static void free_str(char *s)
{
    if (s != protobuf_c_empty_string)
        free(s);
}

void patron_template_clear(Patron__V1__CampaignMessage *msg)
{
    if (msg == NULL)
        return;
    free_str(msg->message_id);
    free_str(msg->customer_id);
    free_str(msg->campaign_id);
    free_str(msg->variant);
    free_str(msg->template_);
    free_str(msg->trigger_event_id);
    free_str(msg->locale);
    for (size_t i = 0; i < msg->n_params; i++) {
        free(msg->params[i]->key);
        free(msg->params[i]->value);
        free(msg->params[i]);
    }
    free(msg->params);
    patron__v1__campaign_message__init(msg);
}
