/*
 * GET /v1/campaigns/stats: what each campaign and variant did, summed over
 * the partitions of patron.profile-updates, with conversion rates, uplift
 * against the control group and its 95% interval (docs/contracts/campaigns.md,
 * "Statistics").
 *
 * The counters are patron-trigger's (its Redis layout is the contract):
 *   {trigger}:partitions   set of partition numbers with state
 *   {tp:<p>}:stats         hash "<campaign>|<variant>|<counter>" -> integer
 * Read with SMEMBERS, then one HGETALL per partition, pipelined. Whatever
 * does not parse (a partition that is not a number, a field that is not
 * campaign|variant|counter (stats_field.h), a value that is not a non-negative integer, a
 * sum that would overflow) is skipped and counted in
 * patron_api_stats_skipped_total{reason}, never answered as an error.
 *
 * Ownership: the context borrows the Redis client and the metrics, which
 * outlive it; free it only after patron_kv_close ran every callback. The
 * pure helpers below take and return plain values. Loop thread only.
 */
#ifndef PATRON_API_CAMPAIGN_STATS_H
#define PATRON_API_CAMPAIGN_STATS_H

#include "patron/http.h"

struct api;
struct patron_metrics;
struct patron_kv;
struct api_campaign_stats;

/* Partition numbers taken from {trigger}:partitions: 0..API_PARTITION_MAX. */
#define API_PARTITION_MAX 65535
/* Partitions read per request; beyond, skipped (reason "partition"). */
#define API_PARTITIONS_MAX 4096
/* Campaign-variant rows per answer; beyond, skipped (reason "rows"). */
#define API_STATS_ROWS_MAX 16384

/* A partition number from {trigger}:partitions: canonical decimal (no sign,
 * no leading zero) in 0..API_PARTITION_MAX. Returns it, or -1. Pure. */
int api_partition_parse(const char *s, size_t len);

/* Rates of converted sends: a rate is conversions / group size, absent
 * (has_* false) when the group is empty. The uplift is the difference of
 * the two rates; its 95% interval is the normal approximation
 * (Wald, z = 1.96) for a difference of two independent proportions, absent
 * when either rate is absent or outside [0, 1]. Pure. */
struct api_uplift {
    bool has_rate, has_control_rate, has_uplift, has_ci;
    double rate, control_rate, uplift, ci_lo, ci_hi;
};
void api_uplift_compute(int64_t sent, int64_t conversions, int64_t control, int64_t control_conv,
                        struct api_uplift *out);

struct api_campaign_stats *api_campaign_stats_new(struct patron_kv *redis,
                                                  struct patron_metrics *metrics);
void api_campaign_stats_free(struct api_campaign_stats *s);

/* Answers the request, now or later from the Redis callbacks (deferred):
 * 200 with the JSON, or 503 when Redis fails. now_ms is the api's clock,
 * given back as "as_of_ms". */
void api_campaign_stats_get(struct api_campaign_stats *s, struct api *api, int64_t now_ms,
                            struct patron_http_response *res);

/* GET /v1/campaigns/daily?days=30&campaign=<id> (campaign_daily.c): each
 * campaign's counters per day of event time (UTC), summed over partitions
 * and variants, for the `days` (1..PATRON_DAILY_DAYS_MAX, default
 * API_DAILY_DAYS_DEFAULT) days up to the day of now_ms (the api's clock),
 * every day listed (zeros included); only the campaigns with a counter in
 * them, or the one `campaign` names. Read from the trigger's
 *   {tp:<p>}:daily            sorted set: days with counters, by day number
 *   {tp:<p>}:daily:<YYYY-MM-DD> hash: fields as in :stats
 * with SMEMBERS, a ZRANGEBYSCORE per partition, then an HGETALL per day
 * found, pipelined. At most API_DAILY_CAMPAIGNS_MAX campaigns per answer
 * (beyond: skipped, reason "rows"); what does not parse is skipped and
 * counted as for the statistics. 400 for bad parameters, 503 when Redis
 * fails. */
#define API_DAILY_DAYS_DEFAULT 30
#define API_DAILY_CAMPAIGNS_MAX 200
void api_campaign_daily_get(struct api_campaign_stats *s, struct api *api, int64_t now_ms,
                            const struct patron_http_request *req,
                            struct patron_http_response *res);

/* For campaign_daily.c: the client and the skip counters of the statistics. */
struct api_stats_skips {
    struct patron_counter *partition, *field, *value, *rows;
};
struct patron_kv *api_campaign_stats_redis(const struct api_campaign_stats *s);
const struct api_stats_skips *api_campaign_stats_skips(const struct api_campaign_stats *s);

#endif
