#include "patron/kmeans.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "patron/profile.h"

#define D PATRON_CLUSTER_DIM
#define DAY_MS 86400000.0

bool patron_cluster_features_at(int64_t orders, int64_t last_purchase_ms, int64_t net_spend_cents,
                                int64_t now_ms, struct patron_cluster_features *out)
{
    if (last_purchase_ms <= 0 || orders < 1)
        return false;
    double since = ((double)now_ms - (double)last_purchase_ms) / DAY_MS;
    *out = (struct patron_cluster_features){
        .recency_days = since > 0 ? since : 0,
        .orders = (double)orders,
        .net_spend_cents = (double)net_spend_cents,
    };
    return true;
}

bool patron_cluster_features_of(const struct patron_profile *p, int64_t now_ms,
                                struct patron_cluster_features *out)
{
    return patron_cluster_features_at(p->orders, p->last_purchase_ms, p->net_spend_cents, now_ms,
                                      out);
}

void patron_cluster_transform(const struct patron_cluster_features *f, double out[D])
{
    out[0] = log1p(f->recency_days > 0 ? f->recency_days : 0);
    out[1] = log1p(f->orders > 0 ? f->orders : 0);
    out[2] = log1p(f->net_spend_cents > 0 ? f->net_spend_cents / 100.0 : 0);
    for (int j = 0; j < D; j++)
        if (!isfinite(out[j]))
            out[j] = 0;
}

static double dist2(const double *a, const double *b)
{
    double s = 0;
    for (int j = 0; j < D; j++)
        s += (a[j] - b[j]) * (a[j] - b[j]);
    return s;
}

static int nearest(const double *pt, const double *centroids, int k)
{
    int best = 0;
    double bd = INFINITY;
    for (int c = 0; c < k; c++) {
        double d = dist2(pt, centroids + c * D);
        if (d < bd) {
            bd = d;
            best = c;
        }
    }
    return best;
}

int patron_cluster_of(const struct patron_cluster_features *f,
                      const struct patron_clusters *clusters)
{
    int k = clusters->k;
    if (k < 1 || k > PATRON_CLUSTERS_MAX)
        return -1;
    double t[D], z[D], cz[PATRON_CLUSTERS_MAX * D];
    patron_cluster_transform(f, t);
    for (int j = 0; j < D; j++)
        z[j] = (t[j] - clusters->mean[j]) / (clusters->sd[j] > 0 ? clusters->sd[j] : 1);
    for (int c = 0; c < k; c++)
        memcpy(cz + c * D, clusters->c[c].z, sizeof(double) * D);
    return nearest(z, cz, k);
}

/* splitmix64: small, fast, and the same everywhere. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) / 9007199254740992.0; /* [0, 1) */
}

/* k-means++: the first seed uniformly, each next with probability
 * proportional to the squared distance to the nearest seed so far. `d2`
 * (n doubles) is scratch: the assign array's memory is not enough. */
static void seed_plus_plus(const double *pts, size_t n, int k, uint64_t *rng, double *cent,
                           double *d2)
{
    size_t first = (size_t)(rng_uniform(rng) * (double)n);
    memcpy(cent, pts + first * D, sizeof(double) * D);
    for (size_t i = 0; i < n; i++)
        d2[i] = dist2(pts + i * D, cent);
    for (int c = 1; c < k; c++) {
        double total = 0;
        for (size_t i = 0; i < n; i++)
            total += d2[i];
        size_t pick = n - 1;
        if (total > 0) {
            double u = rng_uniform(rng) * total, acc = 0;
            for (size_t i = 0; i < n; i++) {
                acc += d2[i];
                if (acc > u) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = (size_t)(rng_uniform(rng) * (double)n);
        }
        memcpy(cent + c * D, pts + pick * D, sizeof(double) * D);
        for (size_t i = 0; i < n; i++) {
            double d = dist2(pts + i * D, cent + c * D);
            if (d < d2[i])
                d2[i] = d;
        }
    }
}

int patron_kmeans(const double *points, size_t n, int k, uint64_t seed, double *centroids,
                  int *assign)
{
    if (k < 1 || k > PATRON_CLUSTERS_MAX || n < (size_t)k)
        return PATRON_EINVAL;
    double *d2 = patron_malloc(n * sizeof(*d2));
    uint64_t rng = seed;
    seed_plus_plus(points, n, k, &rng, centroids, d2);
    for (size_t i = 0; i < n; i++)
        assign[i] = -1;
    int it = 0;
    while (it < PATRON_KMEANS_ITERATIONS_MAX) {
        it++;
        bool changed = false;
        for (size_t i = 0; i < n; i++) {
            int c = nearest(points + i * D, centroids, k);
            changed |= c != assign[i];
            assign[i] = c;
        }
        if (!changed)
            break;
        double sum[PATRON_CLUSTERS_MAX * D] = {0};
        size_t count[PATRON_CLUSTERS_MAX] = {0};
        for (size_t i = 0; i < n; i++) {
            count[assign[i]]++;
            for (int j = 0; j < D; j++)
                sum[assign[i] * D + j] += points[i * D + j];
        }
        for (int c = 0; c < k; c++) {
            if (count[c] == 0) {
                /* the point farthest from its own centroid starts it over */
                size_t far = 0;
                double fd = -1;
                for (size_t i = 0; i < n; i++) {
                    double d = dist2(points + i * D, centroids + assign[i] * D);
                    if (d > fd) {
                        fd = d;
                        far = i;
                    }
                }
                memcpy(centroids + c * D, points + far * D, sizeof(double) * D);
                assign[far] = c;
                continue;
            }
            for (int j = 0; j < D; j++)
                centroids[c * D + j] = sum[c * D + j] / (double)count[c];
        }
    }
    free(d2);
    return it;
}

double patron_silhouette(const double *points, size_t n, const int *assign, int k,
                         size_t sample_max)
{
    if (k < 2 || n < 2 || sample_max < 2)
        return NAN;
    size_t m = n < sample_max ? n : sample_max;
    double total = 0;
    for (size_t a = 0; a < m; a++) {
        size_t i = (size_t)((double)a * (double)n / (double)m);
        double sum[PATRON_CLUSTERS_MAX] = {0};
        size_t count[PATRON_CLUSTERS_MAX] = {0};
        for (size_t b = 0; b < m; b++) {
            size_t j = (size_t)((double)b * (double)n / (double)m);
            if (j == i)
                continue;
            sum[assign[j]] += sqrt(dist2(points + i * D, points + j * D));
            count[assign[j]]++;
        }
        int own = assign[i];
        if (count[own] == 0)
            continue; /* alone in its cluster: 0 */
        double in = sum[own] / (double)count[own], out = INFINITY;
        for (int c = 0; c < k; c++)
            if (c != own && count[c] > 0 && sum[c] / (double)count[c] < out)
                out = sum[c] / (double)count[c];
        if (!isfinite(out))
            continue;
        double s = fmax(in, out) > 0 ? (out - in) / fmax(in, out) : 0;
        total += s;
    }
    return total / (double)m;
}

static const char *word(double z, const char *low, const char *mid, const char *high)
{
    return z < -0.5 ? low : z > 0.5 ? high : mid;
}

static void label(struct patron_clusters *cl)
{
    for (int c = 0; c < cl->k; c++) {
        const double *z = cl->c[c].z;
        char base[32]; /* the longest is 29 bytes */
        snprintf(base, sizeof(base), "%s, %s, %s", word(z[0], "recent", "cooling", "lapsed"),
                 word(z[1], "rare", "regular", "frequent"),
                 word(z[2], "low spend", "mid spend", "high spend"));
        int same = 0;
        for (int e = 0; e < c; e++)
            same += strncmp(cl->c[e].label, base, strlen(base)) == 0;
        if (same)
            snprintf(cl->c[c].label, sizeof(cl->c[c].label), "%s (%d)", base, same + 1);
        else
            snprintf(cl->c[c].label, sizeof(cl->c[c].label), "%s", base);
    }
}

/* Sizes scaled from n to population, adding up exactly (largest remainder,
 * ties to the lower id). */
static void scale_sizes(struct patron_clusters *cl, const uint64_t *count, size_t n,
                        uint64_t population)
{
    if (population <= n) {
        for (int c = 0; c < cl->k; c++)
            cl->c[c].size = count[c];
        return;
    }
    double rem[PATRON_CLUSTERS_MAX];
    uint64_t given = 0;
    for (int c = 0; c < cl->k; c++) {
        double exact = (double)count[c] * (double)population / (double)n;
        cl->c[c].size = (uint64_t)floor(exact);
        rem[c] = exact - floor(exact);
        given += cl->c[c].size;
    }
    while (given < population) {
        int best = 0;
        for (int c = 1; c < cl->k; c++)
            if (rem[c] > rem[best])
                best = c;
        cl->c[best].size++;
        rem[best] = -1;
        given++;
    }
}

/* Fills cl from a clustering: centroids back to natural units, ids by
 * decreasing spend, sizes, labels. */
static void finish(struct patron_clusters *cl, const double *cent, const int *assign, size_t n,
                   uint64_t population)
{
    int order[PATRON_CLUSTERS_MAX];
    for (int c = 0; c < cl->k; c++)
        order[c] = c;
    for (int a = 1; a < cl->k; a++) /* insertion sort by decreasing spend z */
        for (int b = a; b > 0 && cent[order[b] * D + 2] > cent[order[b - 1] * D + 2]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    uint64_t raw[PATRON_CLUSTERS_MAX] = {0}, count[PATRON_CLUSTERS_MAX] = {0};
    for (size_t i = 0; i < n; i++)
        raw[assign[i]]++;
    for (int id = 0; id < cl->k; id++) {
        struct patron_cluster *c = &cl->c[id];
        const double *z = cent + order[id] * D;
        memcpy(c->z, z, sizeof(c->z));
        double t[D];
        for (int j = 0; j < D; j++)
            t[j] = z[j] * cl->sd[j] + cl->mean[j];
        c->centroid = (struct patron_cluster_features){.recency_days = expm1(t[0]),
                                                       .orders = expm1(t[1]),
                                                       .net_spend_cents = expm1(t[2]) * 100};
        count[id] = raw[order[id]];
    }
    scale_sizes(cl, count, n, population);
    label(cl);
}

int patron_clusters_fit(const struct patron_cluster_features *f, size_t n, uint64_t population,
                        int k_fixed, struct patron_clusters *out)
{
    if (n == 0 || k_fixed < 0 || k_fixed > PATRON_CLUSTERS_MAX)
        return PATRON_EINVAL;
    struct patron_clusters cl = {0};
    double *pts = patron_malloc(n * D * sizeof(*pts));
    int *assign = patron_malloc(n * sizeof(*assign)), *best_assign = patron_malloc(n * sizeof(int));
    for (size_t i = 0; i < n; i++)
        patron_cluster_transform(&f[i], pts + i * D);
    for (int j = 0; j < D; j++) {
        double s = 0, ss = 0;
        for (size_t i = 0; i < n; i++)
            s += pts[i * D + j];
        cl.mean[j] = s / (double)n;
        for (size_t i = 0; i < n; i++)
            ss += (pts[i * D + j] - cl.mean[j]) * (pts[i * D + j] - cl.mean[j]);
        cl.sd[j] = sqrt(ss / (double)n);
        double sd = cl.sd[j] > 0 ? cl.sd[j] : 1;
        for (size_t i = 0; i < n; i++)
            pts[i * D + j] = (pts[i * D + j] - cl.mean[j]) / sd;
        cl.sd[j] = sd;
    }
    int lo = k_fixed ? k_fixed : PATRON_CLUSTERS_K_MIN,
        hi = k_fixed ? k_fixed : PATRON_CLUSTERS_K_MAX;
    if ((size_t)hi > n - (n > 1)) /* the silhouette needs n > k */
        hi = (int)(n > 1 ? n - 1 : 1);
    if (lo > hi)
        lo = hi;
    double best_cent[PATRON_CLUSTERS_MAX * D], best_s = -INFINITY;
    int best_k = 0;
    for (int k = lo; k <= hi; k++) {
        double cent[PATRON_CLUSTERS_MAX * D];
        if (patron_kmeans(pts, n, k, PATRON_KMEANS_SEED, cent, assign) < 0)
            continue;
        double s = patron_silhouette(pts, n, assign, k, PATRON_SILHOUETTE_SAMPLE);
        double score = isfinite(s) ? s : -2;
        if (best_k == 0 || score > best_s) {
            best_s = score;
            best_k = k;
            memcpy(best_cent, cent, sizeof(double) * (size_t)k * D);
            memcpy(best_assign, assign, n * sizeof(int));
        }
    }
    cl.k = best_k;
    cl.has_silhouette = best_s >= -1;
    cl.silhouette = cl.has_silhouette ? best_s : 0;
    finish(&cl, best_cent, best_assign, n, population);
    free(pts);
    free(assign);
    free(best_assign);
    *out = cl;
    return 0;
}
