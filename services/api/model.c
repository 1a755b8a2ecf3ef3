/*
 * The fitted models (see model.h).
 *
 * @locality: the loop thread, except fit_work, which runs on libuv's thread
 * pool and touches only its own struct fit.
 */
#include "model.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "patron/clock.h"
#include "patron/config.h"
#include "patron/keys.h"
#include "patron/kv.h"
#include "patron/log.h"
#include "patron/metrics.h"
#include "patron/model_codec.h"
#include "patron/profile.h"
#include "patron/strmap.h"

#define RESERVOIR_SEED UINT64_C(0x7265736572766f69)

/* One customer as the fits see it. */
struct sample {
    struct patron_clv_customer clv;
    struct patron_cluster_features f;
};

/* What a snapshot saw: the models remember what they were fitted on. */
struct seen {
    int64_t as_of_ms;
    uint64_t customers, orders;
};

/* A fit on the thread pool: input moved in, result handed back. */
struct fit {
    uv_work_t req;
    struct api_model *m;
    struct sample *sample;
    size_t n;
    struct seen seen;
    bool do_clv, do_clusters;
    int clusters_k;
    int64_t started_ms;
    /* results */
    int clv_rc, clusters_rc;
    struct patron_clv_model clv;
    struct patron_clusters clusters;
};

struct api_model {
    uv_loop_t *loop;
    struct patron_kv *redis;
    const struct patron_config *cfg;
    const struct patron_log *log;
    uv_timer_t poll;
    bool closing;

    struct patron_clv_model clv;
    struct patron_clusters clusters;  /* k 0: none yet */
    uint64_t clv_hash, clusters_hash; /* of the stored values last decoded */

    /* the snapshot being taken */
    bool collecting;
    struct seen building;
    struct sample *sample;
    size_t n_sample, cap_sample;
    uint64_t rng;
    bool have_snapshot;
    struct seen last; /* the last complete snapshot */

    bool fitting; /* a fit is in flight (or waiting for the lease) */
    char lease_token[64];

    struct patron_counter *m_fits, *m_bad_stored;
    struct patron_gauge *m_fit_seconds;
};

/* ---- reading the stored models ------------------------------------------------------ */

static void on_stored(struct api_model *m, redisReply *reply, bool clv)
{
    if (m->closing || !reply || reply->type != REDIS_REPLY_STRING)
        return; /* nil: nothing fitted yet; an error or disconnect: the next poll */
    uint64_t h = patron_hash64(reply->str, (size_t)reply->len);
    uint64_t *last = clv ? &m->clv_hash : &m->clusters_hash;
    if (h == *last)
        return;
    int rc;
    if (clv) {
        struct patron_clv_model v;
        rc = patron_clv_model_decode(reply->str, (size_t)reply->len, &v);
        if (rc == 0)
            m->clv = v;
    } else {
        struct patron_clusters v;
        rc = patron_clusters_decode(reply->str, (size_t)reply->len, &v);
        if (rc == 0)
            m->clusters = v;
    }
    *last = h;
    if (rc) {
        patron_counter_inc(m->m_bad_stored);
        patron_log(m->log, PATRON_LOG_WARN, "stored model does not decode, keeping the current",
                   "\"key\":\"%s\"", clv ? PATRON_KEY_MODEL_CLV : PATRON_KEY_MODEL_CLUSTERS);
    }
}

static void on_stored_clv(void *ud, redisReply *reply)
{
    on_stored(ud, reply, true);
}

static void on_stored_clusters(void *ud, redisReply *reply)
{
    on_stored(ud, reply, false);
}

static void on_poll(uv_timer_t *t)
{
    struct api_model *m = t->data;
    if (m->closing || !patron_kv_connected(m->redis))
        return;
    if (!m->cfg->has_clv_override) {
        const char *argv[] = {"GET", PATRON_KEY_MODEL_CLV};
        if (patron_kv_commandv(m->redis, on_stored_clv, m, 2, argv, NULL))
            return;
    }
    if (m->cfg->has_clusters_override)
        return;
    const char *argv[] = {"GET", PATRON_KEY_MODEL_CLUSTERS};
    if (patron_kv_commandv(m->redis, on_stored_clusters, m, 2, argv, NULL))
        return; /* disconnected: the next tick asks again */
}

/* ---- the snapshot ---------------------------------------------------------------------- */

void api_model_snapshot_begin(void *ud, int64_t as_of_ms)
{
    struct api_model *m = ud;
    m->collecting = true;
    m->building = (struct seen){.as_of_ms = as_of_ms};
    m->n_sample = 0;
    m->rng = RESERVOIR_SEED;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void api_model_snapshot_profile(void *ud, const struct patron_profile *p)
{
    struct api_model *m = ud;
    struct sample s;
    if (!m->collecting || !patron_clv_summary_of(p, m->building.as_of_ms, &s.clv) ||
        !patron_cluster_features_of(p, m->building.as_of_ms, &s.f))
        return;
    uint64_t seen = ++m->building.customers;
    m->building.orders += (uint64_t)p->orders;
    size_t slot = m->n_sample;
    if (m->n_sample == API_MODEL_SAMPLE_MAX) {
        /* algorithm R: the seen-th customer replaces a random one with
         * probability MAX / seen */
        uint64_t j = rng_next(&m->rng) % seen;
        if (j >= API_MODEL_SAMPLE_MAX)
            return;
        slot = (size_t)j;
    } else if (m->n_sample == m->cap_sample) {
        m->cap_sample = m->cap_sample ? 2 * m->cap_sample : 1024;
        if (m->cap_sample > API_MODEL_SAMPLE_MAX)
            m->cap_sample = API_MODEL_SAMPLE_MAX;
        m->sample = patron_realloc(m->sample, m->cap_sample * sizeof(*m->sample));
    }
    m->sample[slot] = s;
    if (slot == m->n_sample)
        m->n_sample++;
}

static bool differs(const struct seen *now, int64_t as_of_ms, uint64_t customers, uint64_t orders)
{
    return now->customers != customers || now->orders != orders ||
           now->as_of_ms - as_of_ms >= API_MODEL_STALE_MS;
}

static void fit_work(uv_work_t *req);
static void fit_done(uv_work_t *req, int status);

static void fit_drop(struct fit *f)
{
    f->m->fitting = false;
    free(f->sample);
    free(f);
}

/* The lease answered: fit on the thread pool if it is ours. */
static void on_lease(void *ud, redisReply *reply)
{
    struct fit *f = ud;
    struct api_model *m = f->m;
    bool got = reply && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "OK") == 0;
    if (m->closing || !got) {
        fit_drop(f);
        return;
    }
    f->started_ms = patron_monotonic_ms();
    f->req.data = f;
    if (uv_queue_work(m->loop, &f->req, fit_work, fit_done) != 0)
        fit_drop(f);
}

void api_model_snapshot_end(void *ud, bool complete)
{
    struct api_model *m = ud;
    m->collecting = false;
    if (!complete || m->closing)
        return;
    m->last = m->building;
    m->have_snapshot = true;
    if (m->building.customers == 0 || m->n_sample == 0 || m->fitting)
        return;
    bool do_clv = !m->cfg->has_clv_override &&
                  (m->clv.source != PATRON_CLV_FITTED ||
                   differs(&m->building, m->clv.as_of_ms, m->clv.customers, m->clv.orders));
    bool do_clusters = !m->cfg->has_clusters_override &&
                       (m->clusters.k == 0 || differs(&m->building, m->clusters.as_of_ms,
                                                      m->clusters.customers, m->building.orders));
    if (!do_clv && !do_clusters)
        return;
    /* the sample as it is now: the next snapshot reuses the buffer */
    struct fit *f = patron_calloc(1, sizeof(*f));
    f->m = m;
    f->do_clv = do_clv;
    f->do_clusters = do_clusters;
    f->clusters_k = m->cfg->clusters_k;
    f->seen = m->last;
    f->n = m->n_sample;
    f->sample = patron_malloc(f->n * sizeof(*f->sample));
    memcpy(f->sample, m->sample, f->n * sizeof(*f->sample));
    m->fitting = true;
    /* one process fits: the lease lasts one refresh interval */
    char px[24];
    snprintf(px, sizeof(px), "%d", m->cfg->dashboard_refresh_ms);
    const char *argv[] = {"SET", PATRON_KEY_MODEL_LEASE, m->lease_token, "NX", "PX", px};
    if (patron_kv_commandv(m->redis, on_lease, f, 6, argv, NULL))
        fit_drop(f);
}

/* ---- the fit -------------------------------------------------------------------------------- */

static void fit_work(uv_work_t *req)
{
    struct fit *f = req->data;
    struct patron_clv_customer *c = patron_malloc(f->n * sizeof(*c));
    struct patron_cluster_features *feat = patron_malloc(f->n * sizeof(*feat));
    for (size_t i = 0; i < f->n; i++) {
        c[i] = f->sample[i].clv;
        feat[i] = f->sample[i].f;
    }
    f->clv_rc = f->do_clv ? patron_clv_fit(c, f->n, PATRON_CLV_BANDS_DEFAULT, &f->clv) : -1;
    f->clusters_rc = f->do_clusters ? patron_clusters_fit(feat, f->n, f->seen.customers,
                                                          f->clusters_k, &f->clusters)
                                    : -1;
    free(c);
    free(feat);
}

static void on_written(void *ud, redisReply *reply)
{
    struct api_model *m = ud;
    if (!m->closing && (!reply || reply->type == REDIS_REPLY_ERROR))
        patron_log(m->log, PATRON_LOG_WARN, "fitted model not stored", NULL);
}

static void store(struct api_model *m, const char *key, char *value, uint64_t *hash)
{
    *hash = patron_hash64(value, strlen(value));
    const char *argv[] = {"SET", key, value};
    if (patron_kv_commandv(m->redis, on_written, m, 3, argv, NULL))
        patron_log(m->log, PATRON_LOG_WARN, "fitted model not stored", NULL);
    free(value);
}

static void fit_done(uv_work_t *req, int status)
{
    struct fit *f = req->data;
    struct api_model *m = f->m;
    if (status == 0 && !m->closing) {
        int64_t now = patron_wall_ms();
        if (f->clv_rc == 0) {
            f->clv.fitted_at_ms = now;
            f->clv.as_of_ms = f->seen.as_of_ms;
            f->clv.customers = f->seen.customers;
            f->clv.orders = f->seen.orders;
            f->clv.sample = f->n;
            m->clv = f->clv;
            store(m, PATRON_KEY_MODEL_CLV, patron_clv_model_encode(&m->clv), &m->clv_hash);
        }
        if (f->clusters_rc == 0) {
            f->clusters.fitted_at_ms = now;
            f->clusters.as_of_ms = f->seen.as_of_ms;
            f->clusters.customers = f->seen.customers;
            f->clusters.sample = f->n;
            m->clusters = f->clusters;
            store(m, PATRON_KEY_MODEL_CLUSTERS, patron_clusters_encode(&m->clusters),
                  &m->clusters_hash);
        }
        patron_counter_inc(m->m_fits);
        double secs = (double)(patron_monotonic_ms() - f->started_ms) / 1000.0;
        patron_gauge_set(m->m_fit_seconds, secs);
        patron_log(m->log, PATRON_LOG_INFO, "models fitted",
                   "\"customers\":%" PRIu64 ",\"sample\":%zu,\"clv\":%s,\"bands\":%zu,\"k\":%d,"
                   "\"seconds\":%.2f",
                   f->seen.customers, f->n, f->clv_rc == 0 ? "true" : "false", m->clv.n_bands,
                   m->clusters.k, secs);
    }
    fit_drop(f);
}

/* ---- accessors and lifecycle -------------------------------------------------------------- */

const struct patron_clv_model *api_model_clv(const struct api_model *m)
{
    return &m->clv;
}

const struct patron_clusters *api_model_clusters(const struct api_model *m)
{
    return m->clusters.k > 0 ? &m->clusters : NULL;
}

json_t *api_model_to_json(const struct api_model *m)
{
    json_t *o = json_object(), *clusters = json_null(), *snap = json_null();
    if (m->clusters.k > 0) {
        clusters = json_object();
        json_object_set_new(clusters, "source",
                            json_string(m->cfg->has_clusters_override ? "override" : "fitted"));
        json_object_set_new(clusters, "fitted_at_ms", json_integer(m->clusters.fitted_at_ms));
        json_object_set_new(clusters, "as_of_ms", json_integer(m->clusters.as_of_ms));
        json_object_set_new(clusters, "customers", json_integer((json_int_t)m->clusters.customers));
        json_object_set_new(clusters, "sample", json_integer((json_int_t)m->clusters.sample));
        json_object_set_new(clusters, "k", json_integer(m->clusters.k));
    }
    if (m->have_snapshot) {
        snap = json_object();
        json_object_set_new(snap, "as_of_ms", json_integer(m->last.as_of_ms));
        json_object_set_new(snap, "customers", json_integer((json_int_t)m->last.customers));
        json_object_set_new(snap, "orders", json_integer((json_int_t)m->last.orders));
    }
    json_object_set_new(o, "churn_horizon_days", json_integer(m->cfg->profile.churn_horizon_days));
    json_object_set_new(o, "value_horizon_days",
                        json_integer((json_int_t)PATRON_CLV_VALUE_HORIZON_DAYS));
    json_object_set_new(o, "clv", patron_clv_model_to_json(&m->clv));
    json_object_set_new(o, "clusters", clusters);
    json_object_set_new(o, "snapshot", snap);
    return o;
}

struct api_model *api_model_start(const struct api_model_options *opt)
{
    struct api_model *m = patron_calloc(1, sizeof(*m));
    m->loop = opt->loop;
    m->redis = opt->redis;
    m->cfg = opt->cfg;
    m->log = opt->log;
    if (m->cfg->has_clv_override)
        m->clv = m->cfg->clv_override;
    else
        patron_clv_model_default(&m->clv);
    if (m->cfg->has_clusters_override)
        m->clusters = m->cfg->clusters_override;
    snprintf(m->lease_token, sizeof(m->lease_token), "%ld-%" PRId64, (long)getpid(),
             patron_wall_ms());
    m->m_fits = patron_metrics_counter(opt->metrics, "patron_api_model_fits_total",
                                       "Model fits this process ran", NULL);
    m->m_bad_stored =
        patron_metrics_counter(opt->metrics, "patron_api_model_stored_invalid_total",
                               "Stored models that did not decode and were ignored", NULL);
    m->m_fit_seconds = patron_metrics_gauge(opt->metrics, "patron_api_model_fit_seconds",
                                            "How long the last fit took", NULL);
    uv_timer_init(m->loop, &m->poll);
    m->poll.data = m;
    uv_timer_start(&m->poll, on_poll, 0, API_MODEL_POLL_MS);
    return m;
}

void api_model_stop(struct api_model *m)
{
    m->closing = true;
    uv_close((uv_handle_t *)&m->poll, NULL);
}

void api_model_free(struct api_model *m)
{
    free(m->sample);
    free(m);
}
