/*
 * patron-trigger's work (see trigger.c): profile updates in, campaign
 * messages out. Borrowed: cfg, log and metrics outlive the trigger; the
 * campaigns are owned by the trigger (trigger_reload swaps them).
 */
#ifndef PATRON_TRIGGER_H
#define PATRON_TRIGGER_H

#include <uv.h>

#include "patron/campaign.h"
#include "patron/service.h"

struct trigger;

/* Takes `campaigns` (freed by trigger_free, or at once on failure). */
int trigger_start(struct trigger **out, uv_loop_t *loop, const struct patron_config *cfg,
                  const struct patron_log *log, struct patron_metrics *metrics,
                  struct patron_campaigns *campaigns) PATRON_MUST_USE;
bool trigger_ready(const struct trigger *tr);
/* Swaps in a new set of campaigns (taken) between jobs; the old set is freed
 * once no job uses it. */
void trigger_reload(struct trigger *tr, struct patron_campaigns *campaigns);
/* Stops consuming, finishes the jobs in flight (bounded by the shutdown
 * timeout), commits offsets, flushes the producer, closes Redis, then calls
 * on_stopped. */
void trigger_stop(struct trigger *tr, void (*on_stopped)(void *ud), void *ud);
void trigger_free(struct trigger *tr);

#endif
