/*
 * The fitted models' stored and API forms (docs/redis.md, docs/contracts/api.md):
 *   {model}:clv       the churn and value model (clv.h) as JSON
 *   {model}:clusters  the K-Means clusters (kmeans.h) as JSON
 * and PATRON_CLV_MODEL's text form.
 *
 * Stored JSON carries "version" (PATRON_CLV_MODEL_VERSION,
 * PATRON_CLUSTERS_VERSION); a reader rejects any other version, and any
 * value that does not describe a usable model, rather than guess. Numbers
 * are written with 17 significant digits, so a model round-trips exactly.
 * Pure; the JSON functions allocate through jansson and abort on out of
 * memory (common.h).
 */
#ifndef PATRON_MODEL_CODEC_H
#define PATRON_MODEL_CODEC_H

#include <jansson.h>

#include "patron/clv.h"
#include "patron/kmeans.h"

#define PATRON_MODEL_STORED_MAX ((size_t)64 * 1024) /* bytes of a stored model */
#define PATRON_CLV_OVERRIDE_MAX 512                 /* bytes of PATRON_CLV_MODEL */

/* The stored value: a NUL-terminated string the caller free()s. */
char *patron_clv_model_encode(const struct patron_clv_model *m);
/* PATRON_EINVAL for anything but a valid version-1 model of at most
 * PATRON_MODEL_STORED_MAX bytes (out untouched); its source is FITTED. */
int patron_clv_model_decode(const char *s, size_t len,
                            struct patron_clv_model *out) PATRON_MUST_USE;

char *patron_clusters_encode(const struct patron_clusters *c);
int patron_clusters_decode(const char *s, size_t len, struct patron_clusters *out) PATRON_MUST_USE;

/* GET /v1/segments/clusters's body: {"k", "as_of_ms", "clusters": [{"id",
 * "label", "size", "centroid": {"recency_days", "orders",
 * "net_spend_cents"}}], "silhouette"}. A new reference. */
json_t *patron_clusters_to_json(const struct patron_clusters *c);

/* GET /v1/model's "clv" object: source ("default", "fitted", "override"),
 * provenance (null when not fitted), bands, gamma_gamma, and "override",
 * the model as PATRON_CLV_MODEL text. A new reference. */
json_t *patron_clv_model_to_json(const struct patron_clv_model *m);

/* PATRON_CLV_MODEL: "r,alpha,a,b,p,q,gamma" (one band), optionally followed
 * by ";B:r,alpha,a,b" for each further band, B the mean order value in
 * cents from which that band starts (increasing). Alpha in days, gamma in
 * cents. E.g. "0.62,46.7,0.049,1.62,1.9,3.7,53811;19691:0.84,69.8,0.001,2016".
 * On error PATRON_EINVAL and the reason in why. The source is OVERRIDE. */
int patron_clv_model_parse(const char *text, struct patron_clv_model *out, char *why,
                           size_t whylen) PATRON_MUST_USE;
/* The same text for a model (each number in the fewest digits that read
 * back exactly); the length written, or PATRON_ETOOBIG when cap is too
 * small (dst's content then unspecified), PATRON_EINVAL for an invalid model. */
int patron_clv_model_format(const struct patron_clv_model *m, char *dst,
                            size_t cap) PATRON_MUST_USE;

#endif
