/*
 * The profile as the API's JSON (docs/contracts/api.md). Pure.
 */
#ifndef PATRON_PROFILE_JSON_H
#define PATRON_PROFILE_JSON_H

#include <jansson.h>

#include "patron/clv.h"
#include "patron/kmeans.h"
#include "patron/profile.h"

/* The profile as GET /v1/customers/{id}/profile returns it (docs/contracts/profile.md), plus
 * reviews, refunds, country and merged_visitors (the anonymous ids merged,
 * with what each brought); a visitor's has customer_id null and its
 * anonymous_id. Scores are evaluated at now_ms. Returns a new
 * reference (the caller json_decref's it). Absent values are null:
 * last_purchase_ms and rfm.recency_days without a purchase, time_zone,
 * locale, birthday and country when unknown. */
json_t *patron_profile_to_json(const struct patron_profile *p, int64_t now_ms,
                               const struct patron_profile_config *cfg);

/* The fitted models a profile is scored with (borrowed for the call). */
struct patron_profile_models {
    const struct patron_clv_model *clv;     /* NULL: patron_clv_model_default */
    const struct patron_clusters *clusters; /* NULL or k 0: "cluster" is null */
};

/* The same with churn_risk, p_alive, the 12-month figures and the cluster
 * from these models (patron_profile_to_json is this with NULL: the default
 * churn model, no cluster). churn_risk is P(no purchase within
 * cfg->churn_horizon_days), stated in "churn_horizon_days". */
json_t *patron_profile_to_json_models(const struct patron_profile *p, int64_t now_ms,
                                      const struct patron_profile_config *cfg,
                                      const struct patron_profile_models *models);

#endif
