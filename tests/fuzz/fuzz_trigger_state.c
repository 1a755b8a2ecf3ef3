/*
 * A customer's stored campaign state (patron.v1.TriggerState) through
 * patron_customer_state_decode.
 *
 * Properties: decode never fails on the way to an unbounded state (every
 * list within its bound, every time within 1970..9999, every channel and
 * timer kind known); the state it makes re-encodes, and the encoding is a
 * fixed point: decoding and encoding it again gives the same bytes.
 */
#include "fuzz.h"
#include "patron/campaign_state_codec.h"
#include "patron/clock.h"

static void check_bounds(const struct patron_customer_state *st)
{
    FUZZ_CHECK(st->n_recent <= PATRON_ENGINE_RECENT_EVENTS, "n_recent %zu", st->n_recent);
    FUZZ_CHECK(st->n_ledger <= PATRON_ENGINE_LEDGER_MAX, "n_ledger %zu", st->n_ledger);
    FUZZ_CHECK(st->n_timers <= PATRON_CAMPAIGNS_MAX && st->n_timers <= st->cap_timers,
               "n_timers %zu (cap %zu)", st->n_timers, st->cap_timers);
    for (size_t i = 0; i < st->n_timers; i++) {
        const struct patron_engine_timer *t = &st->timers[i];
        FUZZ_CHECK(t->kind >= PATRON_TIMER_NONE && t->kind <= PATRON_TIMER_SEGMENT, "timer kind %d",
                   (int)t->kind);
        FUZZ_CHECK(t->fire_at_ms >= 0 && t->fire_at_ms <= PATRON_TIME_MAX_MS &&
                       t->trigger_at_ms >= 0 && t->trigger_at_ms <= PATRON_TIME_MAX_MS,
                   "timer times %lld %lld", (long long)t->fire_at_ms, (long long)t->trigger_at_ms);
    }
    FUZZ_CHECK(st->n_sends <= PATRON_SEND_HISTORY_MAX, "n_sends %zu", st->n_sends);
    for (size_t i = 0; i < st->n_sends; i++)
        FUZZ_CHECK(st->sends[i].channel >= PATRON_CAMPAIGN_CHANNEL_SMS &&
                       st->sends[i].channel <= PATRON_CAMPAIGN_CHANNEL_EMAIL &&
                       st->sends[i].at_ms >= 0 && st->sends[i].at_ms <= PATRON_TIME_MAX_MS,
                   "send %zu: channel %d at %lld", i, (int)st->sends[i].channel,
                   (long long)st->sends[i].at_ms);
    FUZZ_CHECK(st->n_last_sent <= PATRON_CAMPAIGNS_MAX && st->n_last_sent <= st->cap_last_sent,
               "n_last_sent %zu", st->n_last_sent);
    FUZZ_CHECK(st->n_touches <= PATRON_ENGINE_TOUCHES_MAX, "n_touches %zu", st->n_touches);
    FUZZ_CHECK(st->last_purchase_ms >= 0 && st->last_purchase_ms <= PATRON_TIME_MAX_MS,
               "last_purchase_ms %lld", (long long)st->last_purchase_ms);
    /* the earliest timer must be computable whatever was stored */
    (void)patron_customer_state_next_fire(st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct patron_customer_state st, st2;
    int rc = patron_customer_state_decode(&st, data, size);
    if (rc != 0) {
        FUZZ_CHECK(rc == PATRON_EINVAL || rc == PATRON_ETOOBIG, "decode returned %d", rc);
        patron_customer_state_free(&st);
        return 0;
    }
    check_bounds(&st);
    uint8_t *first = NULL, *second = NULL;
    size_t n1 = patron_customer_state_encode(&st, &first);
    FUZZ_CHECK(first && n1 <= PATRON_ENGINE_STATE_MAX, "encoding of %zu bytes", n1);
    rc = patron_customer_state_decode(&st2, first, n1);
    FUZZ_CHECK(rc == 0, "the re-encoded state does not decode: %d", rc);
    check_bounds(&st2);
    size_t n2 = patron_customer_state_encode(&st2, &second);
    FUZZ_CHECK(n1 == n2 && memcmp(first, second, n1) == 0,
               "round trip not stable: %zu bytes, then %zu", n1, n2);
    free(first);
    free(second);
    patron_customer_state_free(&st);
    patron_customer_state_free(&st2);
    return 0;
}
