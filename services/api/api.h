/*
 * patron-api's routes over Redis and Kafka (see api.c). Borrowed: cfg, log
 * and metrics outlive the api.
 */
#ifndef PATRON_API_H
#define PATRON_API_H

#include <uv.h>

#include "patron/service.h"

struct api;

int api_start(struct api **out, uv_loop_t *loop, const struct patron_config *cfg,
              const struct patron_log *log, struct patron_metrics *metrics) PATRON_MUST_USE;
bool api_ready(const struct api *api);
/* The service's routes (a patron_http_handler); ud is the api. */
void api_route(void *ud, const struct patron_http_request *req, struct patron_http_response *res);
/* Answers and counts them by status class; for the routes in recommend.c,
 * campaign_stats.c and dashboard.c. */
void api_respond_error(struct api *api, struct patron_http_response *res, int status,
                       const char *code, const char *msg);
void api_respond_json_text(struct api *api, struct patron_http_response *res, int status,
                           const char *json);
/* Any body (the dashboard's files); extra_headers as patron_http_respond_ex. */
void api_respond(struct api *api, struct patron_http_response *res, int status,
                 const char *content_type, const char *extra_headers, const char *body, size_t len);
/* Flushes the producer, closes Redis, then calls on_stopped. */
void api_stop(struct api *api, void (*on_stopped)(void *ud), void *ud);
void api_free(struct api *api);

#endif
