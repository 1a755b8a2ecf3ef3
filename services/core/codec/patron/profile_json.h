/*
 * The profile as the API's JSON (docs/contracts/api.md). Pure.
 */
#ifndef PATRON_PROFILE_JSON_H
#define PATRON_PROFILE_JSON_H

#include <jansson.h>

#include "patron/profile.h"

/* The profile as GET /v1/customers/{id}/profile returns it (docs/contracts/profile.md), plus
 * reviews, refunds and country; scores are evaluated at now_ms. Returns a new
 * reference (the caller json_decref's it). Absent values are null:
 * last_purchase_ms and rfm.recency_days without a purchase, time_zone,
 * locale, birthday and country when unknown. */
json_t *patron_profile_to_json(const struct patron_profile *p, int64_t now_ms,
                               const struct patron_profile_config *cfg);

#endif
