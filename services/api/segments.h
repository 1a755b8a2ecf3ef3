/*
 * Routes over the fitted models (docs/contracts/api.md):
 *   GET /v1/segments/clusters  the K-Means clusters (503 until the first fit)
 *   GET /v1/model              the churn and value model, the clusters'
 *                              provenance and the last snapshot: what a
 *                              profile's churn_risk and value are computed with
 * Answered from memory (model.h); loop thread only.
 */
#ifndef PATRON_API_SEGMENTS_H
#define PATRON_API_SEGMENTS_H

#include "patron/http.h"

struct api;
struct api_model;

/* Answers the request if its path is one of these (true), else leaves it
 * alone (false). */
bool api_segments_route(const struct api_model *m, struct api *api,
                        const struct patron_http_request *req, struct patron_http_response *res);

#endif
