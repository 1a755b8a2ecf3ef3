/*
 * Redis key names: the one place that knows them.
 *
 * Every key carries a hash tag — {c:<customer>} for a customer's keys,
 * {i:<item>} for an item's — so that every command or script touches one
 * slot and the same code runs on one Redis and on Redis Cluster.
 *
 *   {c:<id>}            string: 8-byte big-endian version + ProfileState protobuf
 *   {c:<id>}:<suffix>   the customer's other keys, if any: PATRON_CUSTOMER_KEY_SUFFIXES
 *                       lists them all, so that an erasure deletes every one
 *   {v:<anon id>}       string: 8-byte version + ProfileState of an anonymous
 *                       visitor (customer_id empty); once merged into a
 *                       customer, only the alias (merged_into) is left
 *   {i:<id>}            hash: catalog fields (title, category, price_cents,
 *                       in_stock)
 *   {i:<id>}:co         string: 8-byte version + ItemNeighbours protobuf, the
 *                       co-occurrence counts with other items, top K (graph_row.h)
 *   {items}:pop         hash: item -> distinct buyers (normalises similarities)
 *   {items}:trend       sorted set: item -> purchases weighted by
 *                       patron_trend_weight (popularity with time decay)
 *   {items}:cat         hash: item -> category
 *   {items}:oos         set: items out of stock
 *   {items}:np          set: items that are not products (postage, fees)
 *   {clock}             hash: partition -> "event_ms:idle" (the event clock)
 *   {model}:clv         string: the churn and value model, JSON (model_codec.h)
 *   {model}:clusters    string: the K-Means clusters, JSON (model_codec.h)
 *   {model}:lease       string: the patron-api process fitting the models now,
 *                       with an expiry (so that one process fits, not all)
 *   {dashboard}:history hash: "YYYY-MM-DD" -> that day's customer counts, JSON
 *                       (dashboard_history.h), the last PATRON_HISTORY_DAYS_MAX days
 *   {dashboard}:lease   string: the patron-api process writing the history,
 *                       renewed with each write (one writer at a time)
 *
 * patron-trigger's state is per partition p of patron.profile-updates, like a
 * Kafka Streams state store, so that one atomic script commits a whole batch
 * of a partition (states, timers, outbox, statistics) on one slot:
 *   {tp:<p>}:c:<id>     string: the customer's TriggerState (campaign_engine.h)
 *   {tp:<p>}:due        sorted set: customer -> next timer's fire time (event ms)
 *   {tp:<p>}:outbox     hash: message id -> "<wall ms>|" + CampaignMessage, until
 *                       Kafka acknowledged it
 *   {tp:<p>}:outbox-index sorted set, scores 0: "<customer>\0<message id>" per
 *                       outbox entry (an erasure's range of a customer's)
 *   {tp:<p>}:stats      hash: "<campaign>|<variant>|<counter>" -> integer
 *   {tp:<p>}:reco       sorted set: item -> times recommended in a message
 *   {tp:<p>}:daily      sorted set: "YYYY-MM-DD" -> its day number, the days that
 *                       have counters (the last PATRON_DAILY_DAYS_MAX)
 *   {tp:<p>}:daily:<YYYY-MM-DD> hash: the day's counters, fields as in :stats,
 *                       by the decision's or the conversion's event time (UTC)
 *   {tp:<p>}:epoch      integer: the owner's fencing token (INCR on assignment)
 *   {tp:<p>}:stream     integer: the latest event time committed (the partition's
 *                       stream time, so that timers fire after a restart too)
 *   {tp:<p>}:offset     integer: every profile update of the partition before
 *                       this offset is committed (a new owner knows it has
 *                       caught up before its consumer has a position)
 *   {trigger}:partitions set: the partitions that have state (for the API)
 * The number of partitions of patron.profile-updates is therefore fixed for
 * the life of that state, as with Kafka Streams.
 *
 * The {items}:* keys share one slot on purpose: one script updates them all
 * once per ingest batch, and one pipeline reads them for a recommendation.
 *
 * Functions write into a caller buffer of PATRON_KEY_MAX bytes; ids are at
 * most PATRON_ID_MAX bytes (checked before), so a key always fits.
 */
#ifndef PATRON_KEYS_H
#define PATRON_KEYS_H

#include "patron/common.h"

#define PATRON_KEY_MAX (PATRON_ID_MAX + 32)

/* Suffixes of the customer's keys besides the profile itself, NULL-ended. */
extern const char *const PATRON_CUSTOMER_KEY_SUFFIXES[];

#define PATRON_KEY_CLOCK "{clock}"
/* per partition of patron.profile-updates: the offset after the last update
 * ingest had delivered when it last wrote {clock} (clock_redis.h) */
#define PATRON_KEY_CLOCK_OUT "{clock}:out"
#define PATRON_KEY_ITEMS_POP "{items}:pop"
#define PATRON_KEY_ITEMS_TREND "{items}:trend"
#define PATRON_KEY_ITEMS_SOLD "{items}:sold" /* hash: item -> all-time purchase lines */
#define PATRON_KEY_ITEMS_CAT "{items}:cat"
#define PATRON_KEY_ITEMS_OOS "{items}:oos"
#define PATRON_KEY_ITEMS_NP "{items}:np"
#define PATRON_KEY_MODEL_CLV "{model}:clv"
#define PATRON_KEY_MODEL_CLUSTERS "{model}:clusters"
#define PATRON_KEY_MODEL_LEASE "{model}:lease"
#define PATRON_KEY_DASHBOARD_HISTORY "{dashboard}:history"
#define PATRON_KEY_DASHBOARD_LEASE "{dashboard}:lease"
/* Days of campaign counters a partition keeps ({tp:<p>}:daily), and days of
 * customer counts the dashboard keeps ({dashboard}:history): the most recent
 * ones, the oldest dropped first. */
#define PATRON_DAILY_DAYS_MAX 400
#define PATRON_HISTORY_DAYS_MAX 400

/* Each returns the key length, or PATRON_ETOOBIG if it would not fit. */
int patron_key_customer(char *dst, size_t cap, const char *customer_id,
                        size_t id_len) PATRON_MUST_USE;
int patron_key_customer_sub(char *dst, size_t cap, const char *customer_id, size_t id_len,
                            const char *suffix) PATRON_MUST_USE;
int patron_key_visitor(char *dst, size_t cap, const char *anonymous_id,
                       size_t id_len) PATRON_MUST_USE;
int patron_key_item(char *dst, size_t cap, const char *item_id, size_t id_len) PATRON_MUST_USE;
int patron_key_item_cooc(char *dst, size_t cap, const char *item_id, size_t id_len) PATRON_MUST_USE;

#define PATRON_KEY_TRIGGER_PARTITIONS "{trigger}:partitions"
/* "{tp:<partition>}:<suffix>" and "{tp:<partition>}:c:<customer>". */
int patron_key_trigger(char *dst, size_t cap, int32_t partition,
                       const char *suffix) PATRON_MUST_USE;
int patron_key_trigger_customer(char *dst, size_t cap, int32_t partition, const char *customer_id,
                                size_t id_len) PATRON_MUST_USE;
/* "{tp:<partition>}:daily:<YYYY-MM-DD>" of a day number (clock.h); PATRON_EINVAL
 * for a day outside 0..PATRON_DAY_MAX. */
int patron_key_trigger_daily(char *dst, size_t cap, int32_t partition, int64_t day) PATRON_MUST_USE;

/* The stored profile value: version prefix, then the encoded ProfileState. */
#define PATRON_PROFILE_VERSION_LEN 8
uint64_t patron_profile_version_get(const void *value, size_t len);
void patron_profile_version_put(void *dst, uint64_t version);

/* Redis Cluster's hash slots, as its specification defines them. */
#define PATRON_KEY_SLOTS 16384
/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0). */
uint16_t patron_crc16(const void *data, size_t len);
/* The slot of a key: CRC16 of its hash tag (the bytes between the first '{'
 * and the next '}' when that is not empty, else the whole key) mod 16384. */
unsigned patron_key_slot(const void *key, size_t len);

#endif
