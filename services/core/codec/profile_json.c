/* The API form of a profile (docs/contracts/api.md, GET /v1/customers/{id}/profile). */
#include "patron/profile.h"
#include "patron/profile_json.h"

#include <math.h>
#include <stdlib.h>

/* jansson returns NULL only when out of memory (strings are checked UTF-8
 * before they enter a profile); common.h says out of memory aborts. */
static json_t *must(json_t *j)
{
    if (!j)
        abort();
    return j;
}

static void set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, must(value)) < 0)
        abort();
}

static void push(json_t *arr, json_t *value)
{
    if (json_array_append_new(arr, must(value)) < 0)
        abort();
}

/* A profile string; null if empty, or (never for a checked profile) if it is
 * not UTF-8, rather than failing the whole answer. */
static json_t *text_or_null(const char *s)
{
    if (!s[0])
        return json_null();
    json_t *j = json_string(s);
    return j ? j : json_null();
}

/* Four decimals: enough for a score, and stable output for clients and tests. */
static json_t *rounded(double x)
{
    double r = round(x * 10000.0) / 10000.0;
    return isfinite(r) ? json_real(r) : json_null();
}

json_t *patron_profile_to_json(const struct patron_profile *p, int64_t now_ms,
                               const struct patron_profile_config *cfg)
{
    return patron_profile_to_json_models(p, now_ms, cfg, NULL);
}

static json_t *cluster_of(const struct patron_profile *p, int64_t now_ms,
                          const struct patron_clusters *clusters)
{
    struct patron_cluster_features f;
    if (!clusters || !patron_cluster_features_of(p, now_ms, &f))
        return json_null();
    int id = patron_cluster_of(&f, clusters);
    if (id < 0)
        return json_null();
    json_t *c = must(json_object());
    set(c, "id", json_integer(id));
    set(c, "label", json_string(clusters->c[id].label));
    return c;
}

json_t *patron_profile_to_json_models(const struct patron_profile *p, int64_t now_ms,
                                      const struct patron_profile_config *cfg,
                                      const struct patron_profile_models *models)
{
    struct patron_clv_model defaults;
    const struct patron_clv_model *clv = models ? models->clv : NULL;
    if (!clv) {
        patron_clv_model_default(&defaults);
        clv = &defaults;
    }
    struct patron_clv_view view;
    patron_clv_view_of(p, now_ms, clv, cfg->churn_horizon_days, &view);
    json_t *o = must(json_object());
    struct patron_rfm rfm = patron_rfm_score(p, now_ms, cfg);
    bool purchased = p->last_purchase_ms > 0;

    set(o, "customer_id", text_or_null(p->customer_id));
    set(o, "orders", json_integer(p->orders));
    set(o, "net_spend_cents", json_integer(p->net_spend_cents));
    set(o, "points", json_integer(p->points));
    set(o, "tier", json_string(patron_tier_name(patron_tier_of(p, cfg))));
    set(o, "first_seen_ms", json_integer(p->first_seen_ms));
    set(o, "last_seen_ms", json_integer(p->last_seen_ms));
    set(o, "last_purchase_ms", purchased ? json_integer(p->last_purchase_ms) : json_null());

    json_t *r = must(json_object());
    set(r, "recency_days", purchased ? json_integer(rfm.recency_days) : json_null());
    set(r, "r", json_integer(rfm.r));
    set(r, "f", json_integer(rfm.f));
    set(r, "m", json_integer(rfm.m));
    set(o, "rfm", r);
    set(o, "segment", json_string(patron_segment_name(patron_segment_of(&rfm, p->orders))));
    set(o, "churn_risk", rounded(view.churn_risk));
    set(o, "churn_horizon_days", json_integer(cfg->churn_horizon_days));
    set(o, "p_alive", view.purchased ? rounded(view.p_alive) : json_null());
    set(o, "predicted_value_12m_cents", json_integer(view.predicted_value_12m_cents));
    set(o, "expected_orders_12m", rounded(view.expected_orders_12m));
    set(o, "cluster", cluster_of(p, now_ms, models ? models->clusters : NULL));

    struct patron_category_rank top[PATRON_PROFILE_CATEGORIES_MAX];
    size_t n_top = patron_profile_top_categories(p, now_ms, cfg, top, PATRON_ARRAY_LEN(top));
    json_t *cats = must(json_array());
    for (size_t i = 0; i < n_top; i++) {
        json_t *c = must(json_object());
        set(c, "category", text_or_null(top[i].category));
        set(c, "score", rounded(top[i].score));
        push(cats, c);
    }
    set(o, "top_categories", cats);

    json_t *recent = must(json_object());
    json_t *viewed = must(json_array());
    for (size_t i = 0; i < p->n_viewed && i < PATRON_PROFILE_VIEWED_MAX; i++)
        push(viewed, text_or_null(p->viewed[i]));
    json_t *bought = must(json_array());
    for (size_t i = 0; i < p->n_bought && i < PATRON_PROFILE_BOUGHT_MAX; i++)
        push(bought, text_or_null(p->bought[i]));
    set(recent, "viewed", viewed);
    set(recent, "bought", bought);
    set(o, "recent_items", recent);

    json_t *cart = must(json_array());
    for (size_t i = 0; i < p->n_cart && i < PATRON_PROFILE_CART_MAX; i++) {
        json_t *line = must(json_object());
        set(line, "item_id", text_or_null(p->cart[i].item_id));
        set(line, "quantity", json_integer(p->cart[i].quantity));
        push(cart, line);
    }
    set(o, "cart", cart);

    json_t *consent = must(json_object());
    set(consent, "sms", json_boolean(p->consent_sms));
    set(consent, "push", json_boolean(p->consent_push));
    set(consent, "email", json_boolean(p->consent_email));
    set(o, "consent", consent);

    set(o, "time_zone", text_or_null(p->time_zone));
    set(o, "locale", text_or_null(p->locale));
    set(o, "birthday", text_or_null(p->birthday));
    set(o, "country", text_or_null(p->country));
    set(o, "reviews", json_integer(p->reviews));
    set(o, "refunds", json_integer(p->refunds));

    /* identity: a visitor says which; a customer lists the visitors merged */
    if (patron_profile_is_visitor(p))
        set(o, "anonymous_id", text_or_null(p->anonymous_id));
    json_t *merged = must(json_array());
    for (size_t i = 0; i < p->n_aliases && i < PATRON_PROFILE_ALIASES_MAX; i++) {
        const struct patron_profile_alias *a = &p->aliases[i];
        json_t *m = must(json_object());
        set(m, "anonymous_id", text_or_null(a->anonymous_id));
        set(m, "merged_at_ms", json_integer(a->merged_at_ms));
        set(m, "viewed", json_integer(a->viewed));
        set(m, "cart_lines", json_integer(a->cart_lines));
        set(m, "orders", json_integer(a->orders));
        push(merged, m);
    }
    set(o, "merged_visitors", merged);
    return o;
}
