/*
 * patron-ingest: events from Kafka into Redis-resident profiles.
 *
 * The pipeline, one libuv loop, no threads of its own:
 *
 *   consume a batch ─► read the batch's profiles (an MGET per 256, skipped
 *   for customers in the profile cache: what this process wrote recently,
 *   in-flight batches included) ─► apply the events in order (pure domain
 *   code) ─► in batch order, read the item neighbour lists the batch
 *   changes (cache, else MGET, on a connection of their own), merge its
 *   co-occurrence counts (graph_row.h) and write them with a
 *   compare-and-set on each list's version ─► in batch order, write every
 *   changed profile with a compare-and-set on its version (128 per script),
 *   the item statistics and the event clock ─► publish a ProfileUpdate per
 *   applied event and the DLQ entries ─► when Redis acknowledged every
 *   write and Kafka every message, store the batch's offsets (batches
 *   complete in order).
 *
 * Guarantees:
 * - Offsets are stored only after Redis acknowledged the writes and the
 *   ProfileUpdates (and DLQ entries) were delivered, so a crash replays
 *   at most the unfinished batches.
 * - A replayed event changes nothing twice: each profile remembers the
 *   highest offset it applied from its partition and a ring of recent
 *   event-id hashes (see patron/profile.h). A replay re-publishes its
 *   ProfileUpdate (flagged `replayed`) in case the first one was lost.
 * - A write conflict (another writer changed a profile, e.g. a zombie pod
 *   during a rebalance), a Redis failure or a failed delivery cancels every
 *   in-flight batch, pauses consumption and, once Redis is back, seeks each
 *   partition to the last stored offset: nothing is lost, nothing doubled.
 * - A record that cannot be applied, and never will, goes to the DLQ with
 *   its reason and the partition moves on: one that does not decode or
 *   breaks the contract, one too big to dead-letter whole (cut, with its
 *   size), a customer whose stored profile does not decode or is of another
 *   Redis type (its events; the value is kept for an operator, never
 *   written over). ingest_fault.c is the one place that tells these poison
 *   pills from the retriable faults above.
 * - Memory is bounded: a record's decode by its size plus ~90 KiB
 *   (event_codec.h), a batch by PATRON_BATCH_MAX_BYTES, what is in flight
 *   by PATRON_INFLIGHT_MAX_BYTES, librdkafka's queues by their settings.
 * - An erasure's ProfileUpdate goes to every partition of the updates (in
 *   order on its event's, a flagged copy on the others): whichever holds
 *   the customer's campaign state sees it, whatever the site's partitioner.
 * - The neighbour lists are exactly once. A list another ingest wrote in
 *   between is read and merged again (no reset: lists are shared by every
 *   partition), in batch order. The lists go before the profiles, so a
 *   crash in between replays the batch; each list's marks (the last offset
 *   it counts per partition, graph_row.h) make the replay skip what it
 *   counts already. The item statistics (buyers, trend) go with the
 *   profiles: exact when nothing fails.
 * - A batch applies the profile its predecessors wrote: batches apply in
 *   order, and a batch whose read went out before a predecessor wrote the
 *   same customer takes that write from the cache, which keeps every write
 *   of the batches in flight. The reads of the next batches overlap the
 *   current one's apply, so that Redis and ingest work at the same time.
 */
#ifndef PATRON_INGEST_H
#define PATRON_INGEST_H

#include <uv.h>

#include "patron/common.h"
#include "patron/config.h"
#include "patron/log.h"
#include "patron/metrics.h"

struct ingest;

/* Starts consuming. Borrows cfg, log and metrics for its lifetime. */
int ingest_start(struct ingest **out, uv_loop_t *loop, const struct patron_config *cfg,
                 const struct patron_log *log, struct patron_metrics *metrics) PATRON_MUST_USE;

/* True while Redis is connected and the pipeline is not recovering. */
bool ingest_ready(const struct ingest *ing);

/* Stops taking new batches, lets the in-flight ones finish (bounded by the
 * configured shutdown timeout), commits offsets, flushes the producer and
 * closes Kafka and Redis; then calls on_stopped. */
void ingest_stop(struct ingest *ing, void (*on_stopped)(void *ud), void *ud);

/* Frees what is left after on_stopped ran. */
void ingest_free(struct ingest *ing);

#endif
