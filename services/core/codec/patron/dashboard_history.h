/*
 * One day of the dashboard's customer history (docs/redis.md,
 * docs/contracts/api.md "Dashboard"): how many customers each segment, tier
 * and K-Means cluster had in the last snapshot of that day. patron-api
 * stores it as JSON in the hash {dashboard}:history, field "YYYY-MM-DD", and
 * reads it back for GET /v1/dashboard/history; this is the one place that
 * writes and parses that value:
 *
 *   {"version":1,"as_of_ms":1323733710000,"customers":620,
 *    "segments":{"new":..,"champion":..,...all 8},
 *    "tiers":{"silver":..,"gold":..,"platinum":..},
 *    "clusters":[{"id":0,"label":"recent, frequent, high spend","size":93},...]}
 *
 * "clusters" lists the clusters in force at the snapshot (empty before the
 * first fit); their ids and labels belong to that fit. A reader rejects
 * any other version and any value that is not exactly this shape. Pure; the
 * JSON functions allocate through jansson and abort on out of memory.
 */
#ifndef PATRON_DASHBOARD_HISTORY_H
#define PATRON_DASHBOARD_HISTORY_H

#include <jansson.h>

#include "patron/kmeans.h"
#include "patron/rfm.h"

#define PATRON_HISTORY_VERSION 1
#define PATRON_HISTORY_STORED_MAX 4096 /* bytes of one stored day */

struct patron_history_cluster {
    int id;
    char label[PATRON_CLUSTER_LABEL_MAX + 1];
    uint64_t size;
};

struct patron_history_day {
    int64_t as_of_ms; /* the snapshot's now */
    uint64_t customers;
    uint64_t segments[PATRON_SEGMENT_COUNT]; /* by enum patron_segment */
    uint64_t tiers[PATRON_TIER_COUNT];       /* by enum patron_tier */
    struct patron_history_cluster clusters[PATRON_CLUSTERS_MAX];
    size_t n_clusters; /* 0..PATRON_CLUSTERS_MAX, by increasing id */
};

/* The stored value: a NUL-terminated string the caller free()s. */
char *patron_history_day_encode(const struct patron_history_day *d);
/* PATRON_EINVAL for anything but a version-1 value of the shape above, of
 * at most PATRON_HISTORY_STORED_MAX bytes (out untouched). */
int patron_history_day_decode(const char *s, size_t len,
                              struct patron_history_day *out) PATRON_MUST_USE;
/* The API's form: the stored object without "version", with "day" first.
 * A new reference. */
json_t *patron_history_day_to_json(const struct patron_history_day *d, const char *day);

#endif
