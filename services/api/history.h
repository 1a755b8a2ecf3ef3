/*
 * The dashboard's customers over time (docs/contracts/api.md, "Dashboard"):
 * every complete customer snapshot (dashboard.h) records its counts — by
 * segment, tier and K-Means cluster — under the day of its now (the api's
 * clock: event time in a backtest) in {dashboard}:history
 * (dashboard_history.h); a later snapshot of the same day replaces the
 * day's entry. Bounded: the PATRON_HISTORY_DAYS_MAX most recent days are
 * kept, the oldest dropped by the same script that writes.
 *
 * One writer at a time: the script writes only for the holder of
 * {dashboard}:lease (or takes it when free), and renews it for
 * API_HISTORY_LEASE_REFRESHES refresh intervals; another process takes over
 * once the holder has stopped writing that long. A write that fails, or
 * that the lease refuses, is dropped: the next snapshot writes again.
 *
 *   GET /v1/dashboard/history?days=400   the recorded days of the last
 *       `days` (1..PATRON_HISTORY_DAYS_MAX) up to the clock's day, oldest
 *       first; days without a snapshot are absent. Entries that do not
 *       parse are skipped and counted in
 *       patron_api_dashboard_skipped_total{reason="history"}.
 *
 * Ownership: borrows the Redis client, metrics and log (they outlive it);
 * free it only after patron_kv_close ran every callback. Loop thread only.
 */
#ifndef PATRON_API_HISTORY_H
#define PATRON_API_HISTORY_H

#include "patron/dashboard_history.h"
#include "patron/http.h"

struct api;
struct patron_kv;
struct patron_log;
struct patron_metrics;
struct api_history;

#define API_HISTORY_LEASE_REFRESHES 3
#define API_HISTORY_DAYS_DEFAULT PATRON_HISTORY_DAYS_MAX

/* refresh_ms: the snapshots' interval (the lease lasts a few of them). */
struct api_history *api_history_new(struct patron_kv *redis, struct patron_metrics *metrics,
                                    const struct patron_log *log, int refresh_ms);
void api_history_free(struct api_history *h);

/* Records a complete snapshot (see above). */
void api_history_record(struct api_history *h, const struct patron_history_day *day);

/* GET /v1/dashboard/history; now_ms is the api's clock. */
void api_history_get(struct api_history *h, struct api *api, int64_t now_ms,
                     const struct patron_http_request *req, struct patron_http_response *res);

#endif
