/*
 * The fitted models patron-api scores profiles with: the churn and value
 * model (clv.h) and the K-Means clusters (kmeans.h). docs/operations.md,
 * "Models".
 *
 * Fitted in the background, from the dashboard's customer snapshot (the
 * one SCAN of every profile, paced to its duty cycle; dashboard.h): while
 * the snapshot runs, every customer with a purchase is counted and kept in
 * a uniform reservoir sample of at most API_MODEL_SAMPLE_MAX summaries
 * (Vitter's algorithm R, fixed seed). When a complete snapshot differs from
 * what the current models were fitted on (customers or orders changed, or
 * its now moved a day or more), the process takes the lease
 * {model}:lease (SET NX, for one refresh interval) and, if it got it, fits
 * both models on a libuv worker thread and SETs {model}:clv and
 * {model}:clusters. Every process reads both keys every
 * API_MODEL_POLL_MS, so all of them score with the same parameters; until
 * a fit exists, the defaults (patron_clv_model_default, no clusters).
 * PATRON_CLV_MODEL fixes the churn and value parameters: that process
 * neither fits nor reads them (it still fits and reads the clusters);
 * PATRON_CLUSTERS_MODEL fixes the clusters the same way; PATRON_CLUSTERS_K
 * fixes k.
 *
 * Ownership: borrows everything in its options. api_model_stop closes its
 * timer; free it only after the loop ran (a fit in flight completes, and
 * Redis calls back every command, first). Loop thread only, except the fit,
 * which runs on a copy of the sample and hands its result back to the loop.
 */
#ifndef PATRON_API_MODEL_H
#define PATRON_API_MODEL_H

#include <jansson.h>
#include <uv.h>

#include "patron/clv.h"
#include "patron/kmeans.h"

struct patron_config;
struct patron_kv;
struct patron_log;
struct patron_metrics;
struct patron_profile;
struct api_model;

#define API_MODEL_SAMPLE_MAX 20000 /* summaries a fit sees: ~1.1 MB, ~2 s of one core */
#define API_MODEL_POLL_MS 1000     /* between two reads of {model}:clv and {model}:clusters */
/* A snapshot whose now is this far past the models' is refitted even if
 * nobody bought: ages (T) and recencies have moved. */
#define API_MODEL_STALE_MS (24 * 3600 * 1000)

struct api_model_options {
    uv_loop_t *loop;
    struct patron_kv *redis;
    const struct patron_config *cfg; /* clv_override, clusters_k, dashboard_refresh_ms */
    const struct patron_log *log;
    struct patron_metrics *metrics;
};

struct api_model *api_model_start(const struct api_model_options *opt);
void api_model_stop(struct api_model *m);
void api_model_free(struct api_model *m);

/* The models to score with now; valid until the next loop iteration. */
const struct patron_clv_model *api_model_clv(const struct api_model *m);
const struct patron_clusters *api_model_clusters(const struct api_model *m); /* NULL: none yet */

/* GET /v1/model's body (docs/contracts/api.md). A new reference. */
json_t *api_model_to_json(const struct api_model *m);

/* The dashboard's snapshot, as it runs (dashboard.h's observer). */
void api_model_snapshot_begin(void *ud, int64_t as_of_ms);
void api_model_snapshot_profile(void *ud, const struct patron_profile *p);
void api_model_snapshot_end(void *ud, bool complete);

#endif
