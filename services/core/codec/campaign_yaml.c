/*
 * The campaigns file over libyaml's document API: the whole (size-checked)
 * file is loaded into a node tree whose marks give every error its line and
 * column, then walked with one field table per mapping. The tables make
 * "unknown field", "duplicate field" and "missing field" one piece of code
 * for every level of the file.
 */
#include "patron/campaign_yaml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "campaign_yaml_internal.h"
#include "patron/v1/profile.pb-c.h"

/* ---- field tables ---------------------------------------------------------- */

typedef int (*field_fn)(struct pctx *p, const yaml_node_t *value, void *obj);

struct field {
    const char *name;
    field_fn parse;
};

#define FIELDS_MAX 16

/* Walks mapping `map`, dispatching each key to its field; keys[i] receives
 * the key node of field i, or NULL when absent. */
static int parse_map(struct pctx *p, const yaml_node_t *map, const char *what,
                     const struct field *fields, size_t n_fields, void *obj,
                     const yaml_node_t **keys)
{
    if (map->type != YAML_MAPPING_NODE)
        return cy_fail(p, map, "%s must be a mapping, not %s", what, cy_node_type_name(map));
    for (size_t i = 0; i < n_fields; i++)
        keys[i] = NULL;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *key = yaml_document_get_node(p->doc, pair->key);
        const yaml_node_t *value = yaml_document_get_node(p->doc, pair->value);
        if (key->type != YAML_SCALAR_NODE)
            return cy_fail(p, key, "a key of %s must be a scalar, not %s", what,
                           cy_node_type_name(key));
        size_t i = 0;
        while (i < n_fields && !cy_scalar_is(key, fields[i].name))
            i++;
        if (i == n_fields)
            return cy_fail(p, key, "unknown field '%.*s' in %s", SHOW(key), what);
        if (keys[i] != NULL)
            return cy_fail(p, key, "duplicate field '%s' in %s", fields[i].name, what);
        keys[i] = key;
        int rc = fields[i].parse(p, value, obj);
        if (rc)
            return rc;
    }
    return 0;
}

static int require(struct pctx *p, const yaml_node_t *map, const yaml_node_t **keys,
                   const struct field *fields, size_t i, const char *what)
{
    if (keys[i] == NULL)
        return cy_fail(p, map, "%s is missing the required field '%s'", what, fields[i].name);
    return 0;
}

/* ---- quiet hours ------------------------------------------------------------- */

static int qh_start(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_clock(p, v, &((struct patron_quiet_hours *)obj)->start_min, "quiet_hours.start");
}

static int qh_end(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_clock(p, v, &((struct patron_quiet_hours *)obj)->end_min, "quiet_hours.end");
}

static const struct field qh_fields[] = {{"start", qh_start}, {"end", qh_end}};

static int parse_quiet_hours(struct pctx *p, const yaml_node_t *n, struct patron_quiet_hours *qh)
{
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    int rc = parse_map(p, n, "quiet_hours", qh_fields, PATRON_ARRAY_LEN(qh_fields), qh, keys);
    for (size_t i = 0; rc == 0 && i < PATRON_ARRAY_LEN(qh_fields); i++)
        rc = require(p, n, keys, qh_fields, i, "quiet_hours");
    if (rc)
        return rc;
    if (qh->start_min == qh->end_min)
        return cy_fail(p, n, "quiet_hours start and end are equal");
    qh->set = true;
    return 0;
}

/* ---- defaults ------------------------------------------------------------------ */

static int cap_channel(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_channel(p, v, true, &((struct patron_frequency_cap *)obj)->channel,
                          "frequency_caps.channel");
}

static int cap_max(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_uint(p, v, 0, 1000000, &((struct patron_frequency_cap *)obj)->max,
                       "frequency_caps.max");
}

static int cap_per(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_duration(p, v, &((struct patron_frequency_cap *)obj)->per_ms,
                           "frequency_caps.per");
}

static const struct field cap_fields[] = {
    {"channel", cap_channel}, {"max", cap_max}, {"per", cap_per}};

static int def_quiet_hours(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return parse_quiet_hours(p, v, &((struct patron_campaign_defaults *)obj)->quiet_hours);
}

static int def_caps(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign_defaults *d = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return cy_fail(p, v, "frequency_caps must be a list, not %s", cy_node_type_name(v));
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        if (d->n_caps == PATRON_CAMPAIGN_CAPS_MAX)
            return cy_fail(p, item, "more than %d frequency caps", PATRON_CAMPAIGN_CAPS_MAX);
        struct patron_frequency_cap *cap = &d->caps[d->n_caps];
        const yaml_node_t *keys[FIELDS_MAX] = {0};
        int rc = parse_map(p, item, "a frequency cap", cap_fields, PATRON_ARRAY_LEN(cap_fields),
                           cap, keys);
        for (size_t i = 0; rc == 0 && i < PATRON_ARRAY_LEN(cap_fields); i++)
            rc = require(p, item, keys, cap_fields, i, "a frequency cap");
        if (rc)
            return rc;
        d->n_caps++;
    }
    return 0;
}

static int def_control(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_percent(p, v, &((struct patron_campaign_defaults *)obj)->control_group_bp,
                          "control_group_percent");
}

static int def_attribution(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_duration(p, v, &((struct patron_campaign_defaults *)obj)->attribution_window_ms,
                           "attribution_window");
}

static const struct field defaults_fields[] = {
    {"quiet_hours", def_quiet_hours},
    {"frequency_caps", def_caps},
    {"control_group_percent", def_control},
    {"attribution_window", def_attribution},
};

/* ---- a campaign ---------------------------------------------------------------- */

static int when_event(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    c->when = PATRON_CAMPAIGN_WHEN_EVENT;
    return cy_get_set(p, v, cy_one_event_kind, &c->events, "when.event");
}

static int when_inactive(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    c->when = PATRON_CAMPAIGN_WHEN_INACTIVE_FOR;
    return cy_get_duration(p, v, &c->inactive_for_ms, "when.inactive_for");
}

static int when_segment(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    c->when = PATRON_CAMPAIGN_WHEN_SEGMENT_BECOMES;
    uint32_t mask = 0;
    if (cy_scalar_is(v, "any"))
        return cy_fail(p, v, "when.segment_becomes needs one segment, not 'any'");
    int rc = cy_one_segment(p, v, &mask, "when.segment_becomes");
    if (rc)
        return rc;
    c->segment = (enum patron_segment)__builtin_ctz(mask);
    return 0;
}

static int must_be_true(struct pctx *p, const yaml_node_t *v, const char *what)
{
    bool b = false;
    int rc = cy_get_bool(p, v, &b, what);
    if (rc == 0 && !b)
        return cy_fail(p, v, "%s must be true (omit the trigger instead)", what);
    return rc;
}

static int when_tier_up(struct pctx *p, const yaml_node_t *v, void *obj)
{
    ((struct patron_campaign *)obj)->when = PATRON_CAMPAIGN_WHEN_TIER_UP;
    return must_be_true(p, v, "when.tier_up");
}

static int when_birthday(struct pctx *p, const yaml_node_t *v, void *obj)
{
    ((struct patron_campaign *)obj)->when = PATRON_CAMPAIGN_WHEN_BIRTHDAY;
    return must_be_true(p, v, "when.birthday");
}

static int when_churn(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    c->when = PATRON_CAMPAIGN_WHEN_CHURN_RISK;
    return cy_get_probability(p, v, &c->churn_above, "when.churn_risk_above");
}

static const struct field when_fields[] = {
    {"event", when_event},     {"inactive_for", when_inactive}, {"segment_becomes", when_segment},
    {"tier_up", when_tier_up}, {"birthday", when_birthday},     {"churn_risk_above", when_churn},
};

static int c_id(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_id(p, v, ((struct patron_campaign *)obj)->id, false, "id");
}

static int c_when(struct pctx *p, const yaml_node_t *v, void *obj)
{
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    int rc = parse_map(p, v, "when", when_fields, PATRON_ARRAY_LEN(when_fields), obj, keys);
    if (rc)
        return rc;
    int n = 0;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(when_fields); i++)
        n += keys[i] != NULL;
    if (n != 1)
        return cy_fail(p, v,
                       "when needs exactly one of event, inactive_for, segment_becomes, tier_up, "
                       "birthday, churn_risk_above (found %d)",
                       n);
    return 0;
}

static int c_at(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_clock(p, v, &((struct patron_campaign *)obj)->at_min, "at");
}

static int c_wait(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_duration(p, v, &((struct patron_campaign *)obj)->wait_ms, "wait");
}

static int unless_event(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_set(p, v, cy_one_event_kind, &((struct patron_campaign *)obj)->unless,
                      "unless.event");
}

static const struct field unless_fields[] = {{"event", unless_event}};

static int c_unless(struct pctx *p, const yaml_node_t *v, void *obj)
{
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    int rc = parse_map(p, v, "unless", unless_fields, 1, obj, keys);
    return rc ? rc : require(p, v, keys, unless_fields, 0, "unless");
}

static int aud_segments(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_set(p, v, cy_one_segment, &((struct patron_campaign *)obj)->audience_segments,
                      "audience.segments");
}

static int aud_tiers(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_set(p, v, cy_one_tier, &((struct patron_campaign *)obj)->audience_tiers,
                      "audience.tiers");
}

static int aud_clusters(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_clusters(p, v, &((struct patron_campaign *)obj)->clusters, "audience.clusters");
}

static const struct field audience_fields[] = {
    {"segments", aud_segments}, {"tiers", aud_tiers}, {"clusters", aud_clusters}};

static int c_audience(struct pctx *p, const yaml_node_t *v, void *obj)
{
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    return parse_map(p, v, "audience", audience_fields, PATRON_ARRAY_LEN(audience_fields), obj,
                     keys);
}

static int c_channel(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_channel(p, v, false, &((struct patron_campaign *)obj)->channel, "channel");
}

static int c_template(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_string(p, v, ((struct patron_campaign *)obj)->template_name,
                         PATRON_CAMPAIGN_STRING_MAX, "template");
}

static int c_recommendations(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_uint(p, v, 0, PATRON_CAMPAIGN_RECOMMENDATIONS_MAX,
                       &((struct patron_campaign *)obj)->recommendations, "recommendations");
}

static int c_cooldown(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_duration(p, v, &((struct patron_campaign *)obj)->cooldown_ms, "cooldown");
}

static int c_ignore_caps(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_bool(p, v, &((struct patron_campaign *)obj)->ignore_caps, "ignore_caps");
}

static const char *const reserved_params[] = {"points", "tier", "segment"};

static int c_params(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    if (v->type != YAML_MAPPING_NODE)
        return cy_fail(p, v, "params must be a mapping of strings, not %s", cy_node_type_name(v));
    size_t n = (size_t)(v->data.mapping.pairs.top - v->data.mapping.pairs.start);
    if (n > PATRON_CAMPAIGN_PARAMS_MAX)
        return cy_fail(p, v, "params has more than %d entries", PATRON_CAMPAIGN_PARAMS_MAX);
    if (n == 0)
        return 0;
    c->params = patron_calloc(n, sizeof(*c->params));
    for (yaml_node_pair_t *pair = v->data.mapping.pairs.start; pair < v->data.mapping.pairs.top;
         pair++) {
        const yaml_node_t *key = yaml_document_get_node(p->doc, pair->key);
        const yaml_node_t *value = yaml_document_get_node(p->doc, pair->value);
        struct patron_campaign_param *prm = &c->params[c->n_params];
        int rc = cy_get_string(p, key, prm->key, PATRON_CAMPAIGN_STRING_MAX, "a params key");
        if (rc)
            return rc;
        for (size_t i = 0; i < PATRON_ARRAY_LEN(reserved_params); i++)
            if (strcmp(prm->key, reserved_params[i]) == 0)
                return cy_fail(p, key, "params key '%s' is reserved (computed for every message)",
                               prm->key);
        for (size_t i = 0; i < c->n_params; i++)
            if (strcmp(c->params[i].key, prm->key) == 0)
                return cy_fail(p, key, "duplicate params key '%s'", prm->key);
        if (value->type == YAML_SCALAR_NODE && value->data.scalar.length == 0)
            prm->value[0] = 0; /* an explicitly empty value is a value */
        else if ((rc = cy_get_string(p, value, prm->value, PATRON_CAMPAIGN_STRING_MAX,
                                     "a params value")) != 0)
            return rc;
        c->n_params++;
    }
    return 0;
}

static int var_id(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_id(p, v, ((struct patron_campaign_variant *)obj)->id, true, "variant id");
}

static int var_weight(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_uint(p, v, 1, PATRON_CAMPAIGN_VARIANT_WEIGHT_MAX,
                       &((struct patron_campaign_variant *)obj)->weight, "variant weight");
}

static int var_template(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return cy_get_string(p, v, ((struct patron_campaign_variant *)obj)->template_name,
                         PATRON_CAMPAIGN_STRING_MAX, "variant template");
}

static const struct field variant_fields[] = {
    {"id", var_id}, {"weight", var_weight}, {"template", var_template}};

static int c_variants(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaign *c = obj;
    if (v->type != YAML_SEQUENCE_NODE)
        return cy_fail(p, v, "variants must be a list, not %s", cy_node_type_name(v));
    if (v->data.sequence.items.start == v->data.sequence.items.top)
        return cy_fail(p, v, "variants must not be an empty list");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, *it);
        if (c->n_variants == PATRON_CAMPAIGN_VARIANTS_MAX)
            return cy_fail(p, item, "more than %d variants", PATRON_CAMPAIGN_VARIANTS_MAX);
        struct patron_campaign_variant *var = &c->variants[c->n_variants];
        const yaml_node_t *keys[FIELDS_MAX] = {0};
        int rc = parse_map(p, item, "a variant", variant_fields, PATRON_ARRAY_LEN(variant_fields),
                           var, keys);
        if (rc == 0)
            rc = require(p, item, keys, variant_fields, 0, "a variant");
        if (rc == 0)
            rc = require(p, item, keys, variant_fields, 1, "a variant");
        if (rc)
            return rc;
        for (size_t i = 0; i < c->n_variants; i++)
            if (strcmp(c->variants[i].id, var->id) == 0)
                return cy_fail(p, item, "duplicate variant id '%s'", var->id);
        c->n_variants++;
    }
    return 0;
}

static int c_quiet_hours(struct pctx *p, const yaml_node_t *v, void *obj)
{
    return parse_quiet_hours(p, v, &((struct patron_campaign *)obj)->quiet_hours);
}

enum {
    F_ID,
    F_WHEN,
    F_AT,
    F_WAIT,
    F_UNLESS,
    F_AUDIENCE,
    F_CHANNEL,
    F_TEMPLATE,
    F_RECOMMENDATIONS,
    F_COOLDOWN,
    F_IGNORE_CAPS,
    F_PARAMS,
    F_VARIANTS,
    F_QUIET_HOURS,
};

static const struct field campaign_fields[] = {
    [F_ID] = {"id", c_id},
    [F_WHEN] = {"when", c_when},
    [F_AT] = {"at", c_at},
    [F_WAIT] = {"wait", c_wait},
    [F_UNLESS] = {"unless", c_unless},
    [F_AUDIENCE] = {"audience", c_audience},
    [F_CHANNEL] = {"channel", c_channel},
    [F_TEMPLATE] = {"template", c_template},
    [F_RECOMMENDATIONS] = {"recommendations", c_recommendations},
    [F_COOLDOWN] = {"cooldown", c_cooldown},
    [F_IGNORE_CAPS] = {"ignore_caps", c_ignore_caps},
    [F_PARAMS] = {"params", c_params},
    [F_VARIANTS] = {"variants", c_variants},
    [F_QUIET_HOURS] = {"quiet_hours", c_quiet_hours},
};

static int parse_campaign(struct pctx *p, const yaml_node_t *n, struct patron_campaign *c)
{
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    c->audience_segments = PATRON_AUDIENCE_ANY_SEGMENT;
    c->audience_tiers = PATRON_AUDIENCE_ANY_TIER;
    c->line = (int)n->start_mark.line + 1;
    int rc =
        parse_map(p, n, "a campaign", campaign_fields, PATRON_ARRAY_LEN(campaign_fields), c, keys);
    if (rc)
        return rc;
    static const int required[] = {F_ID, F_WHEN, F_CHANNEL};
    for (size_t i = 0; i < PATRON_ARRAY_LEN(required); i++)
        if ((rc = require(p, n, keys, campaign_fields, (size_t)required[i], "a campaign")) != 0)
            return rc;
    if (c->when == PATRON_CAMPAIGN_WHEN_BIRTHDAY && keys[F_AT] == NULL)
        return cy_fail(p, n, "campaign '%s': a birthday campaign needs 'at' (\"HH:MM\" local)",
                       c->id);
    if (c->when != PATRON_CAMPAIGN_WHEN_BIRTHDAY && keys[F_AT] != NULL)
        return cy_fail(p, keys[F_AT], "campaign '%s': 'at' is only for birthday campaigns", c->id);
    if (c->when != PATRON_CAMPAIGN_WHEN_EVENT && keys[F_WAIT] != NULL)
        return cy_fail(p, keys[F_WAIT], "campaign '%s': 'wait' is only for event campaigns", c->id);
    if (keys[F_UNLESS] != NULL && keys[F_WAIT] == NULL)
        return cy_fail(p, keys[F_UNLESS], "campaign '%s': 'unless' needs a 'wait'", c->id);
    if (keys[F_TEMPLATE] == NULL) {
        if (c->n_variants == 0)
            return cy_fail(p, n, "campaign '%s' is missing the required field 'template'", c->id);
        for (size_t i = 0; i < c->n_variants; i++)
            if (c->variants[i].template_name[0] == 0)
                return cy_fail(p, keys[F_VARIANTS],
                               "campaign '%s': variant '%s' has no template and the campaign none",
                               c->id, c->variants[i].id);
    }
    return 0;
}

/* ---- the file ---------------------------------------------------------------------- */

struct root {
    struct patron_campaigns *cs;
};

static int root_defaults(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct root *r = obj;
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    return parse_map(p, v, "defaults", defaults_fields, PATRON_ARRAY_LEN(defaults_fields),
                     &r->cs->defaults, keys);
}

static int root_campaigns(struct pctx *p, const yaml_node_t *v, void *obj)
{
    struct patron_campaigns *cs = ((struct root *)obj)->cs;
    if (v->type != YAML_SEQUENCE_NODE)
        return cy_fail(p, v, "campaigns must be a list, not %s", cy_node_type_name(v));
    size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
    if (n > PATRON_CAMPAIGNS_MAX) {
        const yaml_node_t *extra =
            yaml_document_get_node(p->doc, v->data.sequence.items.start[PATRON_CAMPAIGNS_MAX]);
        return cy_fail(p, extra, "more than %d campaigns", PATRON_CAMPAIGNS_MAX);
    }
    if (n == 0)
        return 0;
    cs->campaigns = patron_calloc(n, sizeof(*cs->campaigns));
    for (size_t k = 0; k < n; k++) {
        const yaml_node_t *item = yaml_document_get_node(p->doc, v->data.sequence.items.start[k]);
        struct patron_campaign *c = &cs->campaigns[k];
        cs->count = k + 1; /* so that free releases a half-parsed one's params */
        int rc = parse_campaign(p, item, c);
        if (rc)
            return rc;
        for (size_t i = 0; i < k; i++)
            if (strcmp(cs->campaigns[i].id, c->id) == 0)
                return cy_fail(p, item, "duplicate campaign id '%s' (first on line %d)", c->id,
                               cs->campaigns[i].line);
    }
    return 0;
}

static const struct field root_fields[] = {
    {"defaults", root_defaults},
    {"campaigns", root_campaigns},
};

static void yaml_error(struct pctx *p, const yaml_parser_t *parser)
{
    const char *problem = parser->problem ? parser->problem : "malformed YAML";
    if (parser->error == YAML_MEMORY_ERROR)
        abort(); /* common.h: out of memory aborts */
    if (p->errlen == 0)
        return;
    if (parser->context != NULL)
        (void)snprintf(p->err, p->errlen, "line %zu, column %zu: %s %s",
                       parser->problem_mark.line + 1, parser->problem_mark.column + 1, problem,
                       parser->context);
    else
        (void)snprintf(p->err, p->errlen, "line %zu, column %zu: %s", parser->problem_mark.line + 1,
                       parser->problem_mark.column + 1, problem);
}

/* libyaml's scanner is quadratic in the flow nesting depth ("[[[[..."
 * takes minutes at 1 MiB), so deep flow nesting is refused before it runs.
 * The scan skips quoted strings and comments and counts only brackets in
 * the positions that open a collection; the file's schema needs depth 4. */
#define FLOW_DEPTH_MAX 64

static int check_flow_depth(const char *s, size_t len, char *err, size_t errlen)
{
    size_t line = 1, col = 1, depth = 0;
    char prev = '\n'; /* last non-blank character */
    for (size_t i = 0; i < len; i++, col++) {
        char ch = s[i];
        if (ch == '\n') {
            line++;
            col = 0;
            prev = '\n';
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\r')
            continue;
        if (ch == '#' && (i == 0 || s[i - 1] == ' ' || s[i - 1] == '\t' || s[i - 1] == '\n')) {
            while (i + 1 < len && s[i + 1] != '\n')
                i++;
            continue;
        }
        if ((ch == '"' || ch == '\'') && strchr("\n:-,[{", prev) != NULL) {
            for (i++; i < len && s[i] != ch; i++) {
                if (s[i] == '\\' && ch == '"' && i + 1 < len)
                    i++;
                if (s[i] == '\n') {
                    line++;
                    col = 0;
                }
            }
        } else if ((ch == '[' || ch == '{') && strchr("\n:-,[{", prev) != NULL) {
            if (++depth > FLOW_DEPTH_MAX) {
                if (errlen > 0)
                    (void)snprintf(err, errlen, "line %zu, column %zu: nesting deeper than %d",
                                   line, col, FLOW_DEPTH_MAX);
                return PATRON_EINVAL;
            }
        } else if (ch == '[' || ch == '{') {
            ch = 'x'; /* inside a plain scalar: so is what follows */
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
        prev = ch;
    }
    return 0;
}

int patron_campaigns_parse(const char *yaml, size_t len, struct patron_campaigns **out, char *err,
                           size_t errlen)
{
    struct pctx p = {.err = err, .errlen = errlen};
    if (errlen > 0)
        err[0] = 0;
    if (len > PATRON_CAMPAIGNS_FILE_MAX) {
        if (errlen > 0)
            (void)snprintf(err, errlen, "line 1, column 1: the file is larger than %d bytes",
                           PATRON_CAMPAIGNS_FILE_MAX);
        return PATRON_ETOOBIG;
    }
    int rc = check_flow_depth(yaml, len, err, errlen);
    if (rc)
        return rc;
    rc = PATRON_EINVAL;
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    if (!yaml_parser_initialize(&parser))
        abort();
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(&p, &parser);
        goto out_free_parser;
    }
    p.doc = &doc;
    const yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root == NULL) {
        if (errlen > 0)
            (void)snprintf(err, errlen, "line 1, column 1: the campaigns file is empty");
        goto out_free_doc;
    }
    if (!yaml_parser_load(&parser, &extra)) {
        yaml_error(&p, &parser);
        goto out_free_doc;
    }
    const yaml_node_t *second = yaml_document_get_root_node(&extra);
    if (second != NULL) {
        (void)cy_fail(&p, second, "more than one YAML document");
        yaml_document_delete(&extra);
        goto out_free_doc;
    }
    yaml_document_delete(&extra);

    struct patron_campaigns *cs = patron_calloc(1, sizeof(*cs));
    cs->defaults.attribution_window_ms = DEFAULT_ATTRIBUTION_MS;
    struct root r = {.cs = cs};
    const yaml_node_t *keys[FIELDS_MAX] = {0};
    rc = parse_map(&p, root, "the campaigns file", root_fields, PATRON_ARRAY_LEN(root_fields), &r,
                   keys);
    if (rc == 0)
        rc = require(&p, root, keys, root_fields, 1, "the campaigns file");
    if (rc) {
        patron_campaigns_free(cs);
        goto out_free_doc;
    }
    *out = cs;
out_free_doc:
    yaml_document_delete(&doc);
out_free_parser:
    yaml_parser_delete(&parser);
    return rc;
}
