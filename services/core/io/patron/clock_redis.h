/*
 * The event clock as services read it from Redis: HGETALL {clock} answers
 * partition -> "ms:idle" (clock.h); this turns the reply into the low
 * watermark and advances the service's clock; HGETALL {clock}:out answers
 * the delivered offsets the trigger's gates wait for (clock.h). Pure over
 * the reply (no I/O);
 * the caller issues the command on its own timer.
 */
#ifndef PATRON_CLOCK_REDIS_H
#define PATRON_CLOCK_REDIS_H

#include <hiredis/hiredis.h>

#include "patron/clock.h"

#define PATRON_CLOCK_PARTITIONS_MAX 4096 /* partitions of patron.events looked at */

/* Advances `c` to the watermark of an HGETALL {clock} reply; malformed
 * entries are skipped, a NULL or non-array reply changes nothing. Returns
 * the clock's event_now_ms. *all_idle (may be NULL) tells whether every
 * partition was idle: ingest has applied everything it was given. */
int64_t patron_clock_advance_from_reply(struct patron_clock *c, const redisReply *reply,
                                        bool *all_idle);

/* The offset an HGETALL {clock}:out reply gives partition `partition` of
 * profile updates (partition -> offset, decimal); 0 when it has none. A
 * malformed entry counts as absent. */
int64_t patron_clock_out_offset(const redisReply *reply, int32_t partition);

#endif
