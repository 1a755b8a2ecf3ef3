/*
 * Marketing's dashboard, served by patron-api (docs/contracts/api.md, "Dashboard"):
 *   GET /, /dashboard/, /dashboard/<file>   the page: static files embedded
 *                                           at build time (dashboard/)
 *   GET /v1/dashboard/customers             customers by segment and tier
 *   GET /v1/dashboard/recommended?limit=20  items campaign messages
 *                                           recommended most
 *   GET /v1/dashboard/history?days=400      customers by segment, tier and
 *                                           cluster, per day (history.h)
 * The page reads only the API's JSON; nothing is fetched from elsewhere.
 *
 * Customers come from a snapshot taken in the background every
 * PATRON_DASHBOARD_REFRESH_MS (30 s): SCAN MATCH {c:*} over the profile keys (on each
 * master in turn on a Redis Cluster), GET and
 * decode each, segment and tier at the api clock's now (the snapshot's
 * as_of_ms). The first snapshot runs flat out, as requests wait for it;
 * later ones are paced to API_DASHBOARD_DUTY_PCT of the process's time, so
 * that reading every profile does not show in the recommendations' tail
 * latency (100k profiles: ~0.5 s of work, spread over ~5 s). At most API_DASHBOARD_PROFILES_MAX
 * profiles per snapshot
 * ("truncated": true beyond); keys SCAN returns twice are counted once. A
 * snapshot that Redis fails mid-way is dropped and the previous one kept.
 * Requests are answered from the last complete snapshot; those that come
 * before the first one wait for it (at most API_DASHBOARD_WAITERS_MAX).
 * A snapshot also counts the customers of each K-Means cluster in force
 * when it started (model.h; none before the first fit), and every complete
 * one is recorded in the history under the day of its now (history.h).
 * Profiles that do not decode, and recommendation entries that do not
 * parse, are skipped and counted in patron_api_dashboard_skipped_total.
 *
 * Ownership: the dashboard borrows everything in its options (all outlive
 * it). api_dashboard_stop closes its timer and answers waiting requests
 * with 503; free it only after patron_kv_close ran every callback and
 * the loop closed the timer. Loop thread only.
 */
#ifndef PATRON_API_DASHBOARD_H
#define PATRON_API_DASHBOARD_H

#include <uv.h>

#include "patron/http.h"

struct api;
struct api_model;
struct patron_clock;
struct patron_log;
struct patron_metrics;
struct patron_profile;
struct patron_profile_config;
struct patron_kv;
struct api_dashboard;

#define API_DASHBOARD_PROFILES_MAX 1000000 /* profiles read per snapshot */
#define API_DASHBOARD_SCAN_COUNT "100"     /* SCAN's COUNT hint */
/* Share of the time a snapshot after the first may keep a process busy:
 * each page is followed by a pause of (100 / pct - 1) times its duration. */
#define API_DASHBOARD_DUTY_PCT 10
#define API_DASHBOARD_WAITERS_MAX 256        /* requests waiting for the first snapshot */
#define API_DASHBOARD_RECO_PER_PARTITION 200 /* top entries read from each {tp:<p>}:reco */
#define API_DASHBOARD_RECO_ITEMS_MAX 100000  /* distinct items merged per request */
#define API_DASHBOARD_LIMIT_DEFAULT 20
#define API_DASHBOARD_LIMIT_MAX 100

/* One embedded file. The table is generated at build time from
 * services/api/dashboard/ (CMakeLists.txt, dashboard/embed.cmake). */
struct api_dashboard_asset {
    const char *name; /* file name, e.g. "app.js" */
    const unsigned char *data;
    size_t len;
};
extern const struct api_dashboard_asset api_dashboard_assets[];
extern const size_t api_dashboard_assets_len;

/* The Content-Type for a file name, by its extension; NULL when it is not
 * one the dashboard serves. Pure. */
const char *api_dashboard_content_type(const char *name);

/* Sees every profile of every snapshot (model.h collects its sample this
 * way, so that profiles are read once): begin with the snapshot's now, each
 * decoded profile that is not erased, then end (complete false when the
 * snapshot failed and will be retried from the start). */
struct api_dashboard_observer {
    void (*begin)(void *ud, int64_t as_of_ms);
    void (*profile)(void *ud, const struct patron_profile *p);
    void (*end)(void *ud, bool complete);
    void *ud;
};

struct api_dashboard_options {
    uv_loop_t *loop;
    int refresh_ms; /* between two snapshots: PATRON_DASHBOARD_REFRESH_MS */
    const struct api_dashboard_observer *observer; /* NULL: none */
    const struct api_model *model;                 /* the clusters to count; NULL: none */
    struct patron_kv *redis;
    const struct patron_clock *clock; /* the api's: the snapshot's now */
    const struct patron_profile_config *profile;
    struct patron_metrics *metrics;
    const struct patron_log *log;
};

/* Starts the snapshot timer (the first snapshot as soon as Redis is up). */
struct api_dashboard *api_dashboard_start(const struct api_dashboard_options *opt);

/* Answers the request if its path is one of the dashboard's (true), else
 * leaves it alone (false). */
bool api_dashboard_route(struct api_dashboard *d, struct api *api,
                         const struct patron_http_request *req, struct patron_http_response *res);

void api_dashboard_stop(struct api_dashboard *d);
void api_dashboard_free(struct api_dashboard *d);

#endif
