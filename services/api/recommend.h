/*
 * patron-api's recommendation routes (docs/contracts/api.md):
 *   GET /v1/customers/{id}/recommendations?limit=10&category=C
 *   GET /v1/visitors/{anonymous_id}/recommendations?limit=10&category=C
 *   GET /v1/items/{id}/similar?limit=10
 * Parameters are checked here (400 with the reason), the answer comes from
 * the shared fetch plan (patron/recommend_fetch.h) and is rendered here.
 * Borrowed: the api and the fetcher outlive every request; the request's
 * strings are read before the handler returns. Loop thread only.
 */
#ifndef PATRON_API_RECOMMEND_H
#define PATRON_API_RECOMMEND_H

#include "patron/http.h"
#include "patron/recommend_fetch.h"

struct api;

/* The checked query: limit in 1..PATRON_RECO_LIMIT_MAX (default
 * PATRON_RECO_LIMIT_DEFAULT), category 1..PATRON_ID_MAX printable bytes or
 * absent. Pure. Returns NULL, or why the query is refused (a static string). */
struct api_reco_query {
    size_t limit;
    bool has_category;
    char category[PATRON_ID_MAX + 1];
};
const char *api_reco_query_parse(const char *query, bool category_allowed,
                                 struct api_reco_query *q);

/* The handlers; ids were checked by the router (api.c). */
void api_recommendations(struct api *api, struct patron_reco_fetcher *f, int64_t now_ms,
                         const char *customer_id, size_t id_len,
                         const struct patron_http_request *req, struct patron_http_response *res);
/* For a visitor: its own profile's, or its customer's once identified. */
void api_visitor_recommendations(struct api *api, struct patron_reco_fetcher *f, int64_t now_ms,
                                 const char *anonymous_id, size_t id_len,
                                 const struct patron_http_request *req,
                                 struct patron_http_response *res);
void api_similar(struct api *api, struct patron_reco_fetcher *f, const char *item_id, size_t id_len,
                 const struct patron_http_request *req, struct patron_http_response *res);

#endif
