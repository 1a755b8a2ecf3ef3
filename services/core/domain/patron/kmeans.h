/*
 * K-Means segments of the customers with a purchase
 * (docs/contracts/profile.md, "Clusters"; GET /v1/segments/clusters).
 *
 * Features of a customer at now: log(1 + days since the last purchase),
 * log(1 + orders), log(1 + max(net spend, 0) in currency units), each
 * standardised by the mean and standard deviation of the customers fitted.
 * Lloyd's algorithm from k-means++ seeds (D. Arthur and S. Vassilvitskii,
 * 2007) drawn by a fixed-seed generator, so the same customers in the same
 * order give the same clusters. k is chosen by the mean silhouette (P. J.
 * Rousseeuw, 1987) over 3..8 (at most n - 1), ties to the smaller k,
 * unless fixed. The silhouette is computed on at most
 * PATRON_SILHOUETTE_SAMPLE customers (an even stride through the input).
 *
 * Clusters are numbered by decreasing centroid spend (id 0 spends most).
 * Each is labelled from its standardised centroid, one word per feature:
 * recency z < -0.5 "recent", > 0.5 "lapsed", else "cooling"; orders z > 0.5
 * "frequent", < -0.5 "rare", else "regular"; spend z > 0.5 "high spend",
 * < -0.5 "low spend", else "mid spend"; e.g. "recent, frequent, high spend".
 * A label two clusters share gets " (2)", " (3)"... on the later ones.
 *
 * Pure, safe from any thread; only patron_clusters_fit allocates
 * (documented there).
 */
#ifndef PATRON_KMEANS_H
#define PATRON_KMEANS_H

#include "patron/common.h"

struct patron_profile;

#define PATRON_CLUSTERS_MAX 16
#define PATRON_CLUSTERS_K_MIN 3 /* the range searched when k is not fixed */
#define PATRON_CLUSTERS_K_MAX 8
#define PATRON_CLUSTER_DIM 3
#define PATRON_CLUSTER_LABEL_MAX 47
#define PATRON_SILHOUETTE_SAMPLE 2000
#define PATRON_KMEANS_ITERATIONS_MAX 100
#define PATRON_KMEANS_SEED UINT64_C(0x5eed0f9a7205c1a5)
#define PATRON_CLUSTERS_VERSION 1 /* of the stored form (model_codec.h) */

/* A customer as clustered, in natural units. */
struct patron_cluster_features {
    double recency_days;    /* since the last purchase, >= 0 */
    double orders;          /* >= 1 */
    double net_spend_cents; /* may be negative: counted as 0 */
};

struct patron_cluster {
    char label[PATRON_CLUSTER_LABEL_MAX + 1];
    uint64_t size;
    double z[PATRON_CLUSTER_DIM];            /* the centroid, standardised */
    struct patron_cluster_features centroid; /* the same, back in natural units */
};

struct patron_clusters {
    int k; /* 0: no clustering yet */
    bool has_silhouette;
    double silhouette; /* -1..1, when has_silhouette (k >= 2 and n > k) */
    double mean[PATRON_CLUSTER_DIM], sd[PATRON_CLUSTER_DIM]; /* of the transformed features */
    struct patron_cluster c[PATRON_CLUSTERS_MAX];            /* [id] */
    /* Provenance, filled by the caller. */
    int64_t fitted_at_ms, as_of_ms;
    uint64_t customers, sample;
};

/* The features of a profile at now_ms; false without a purchase. */
bool patron_cluster_features_of(const struct patron_profile *p, int64_t now_ms,
                                struct patron_cluster_features *out);

/* The same from the history alone (orders, last purchase, net spend). */
bool patron_cluster_features_at(int64_t orders, int64_t last_purchase_ms, int64_t net_spend_cents,
                                int64_t now_ms, struct patron_cluster_features *out);

/* The transformed (not yet standardised) features. */
void patron_cluster_transform(const struct patron_cluster_features *f,
                              double out[PATRON_CLUSTER_DIM]);

/* The id of the cluster whose centroid is nearest (squared Euclidean
 * distance of the standardised features, ties to the lower id); -1 when
 * clusters->k is 0. */
int patron_cluster_of(const struct patron_cluster_features *f,
                      const struct patron_clusters *clusters);

/* Lloyd's algorithm on n points of PATRON_CLUSTER_DIM doubles from
 * k-means++ seeds (seed: the generator's), at most
 * PATRON_KMEANS_ITERATIONS_MAX rounds; writes k centroids and each point's
 * cluster. An empty cluster takes the point farthest from its centroid.
 * Returns the rounds run, or PATRON_EINVAL unless 1 <= k <= n and k <=
 * PATRON_CLUSTERS_MAX. Allocates n doubles of scratch with patron_malloc,
 * freed before returning. */
int patron_kmeans(const double *points, size_t n, int k, uint64_t seed, double *centroids,
                  int *assign);

/* The mean silhouette of an assignment into k clusters over at most
 * sample_max points (an even stride); a point alone in its cluster counts
 * 0. NAN when k < 2 or fewer than 2 points. */
double patron_silhouette(const double *points, size_t n, const int *assign, int k,
                         size_t sample_max);

/* Clusters n customers (k_fixed 0: the silhouette's choice in 3..8, else
 * that k; never more than n). Sizes are counted on the n customers and,
 * when population > n (n a uniform sample of them), scaled to add up to
 * population (largest remainders). Allocates about n * 40 bytes with
 * patron_malloc and frees it before returning. PATRON_EINVAL when n is 0 or
 * k_fixed is outside 0..PATRON_CLUSTERS_MAX. */
int patron_clusters_fit(const struct patron_cluster_features *f, size_t n, uint64_t population,
                        int k_fixed, struct patron_clusters *out) PATRON_MUST_USE;

#endif
