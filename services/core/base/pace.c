/* Additive increase, multiplicative decrease of work in flight (see pace.h). */
#include "patron/pace.h"

void patron_pace_init(struct patron_pace *p)
{
    *p = (struct patron_pace){.level = 1.0};
}

static bool cut(struct patron_pace *p, uint64_t next_seq)
{
    p->cut_before = next_seq;
    if (p->level <= PATRON_PACE_MIN)
        return false;
    p->level /= 2;
    if (p->level < PATRON_PACE_MIN)
        p->level = PATRON_PACE_MIN;
    return true;
}

bool patron_pace_failed(struct patron_pace *p, uint64_t next_seq)
{
    if (next_seq <= p->cut_before)
        return false; /* no batch went out at the pace since the last cut */
    return cut(p, next_seq);
}

int patron_pace_done(struct patron_pace *p, uint64_t seq, int64_t elapsed_ms, int64_t timeout_ms,
                     uint64_t next_seq)
{
    if (seq < p->cut_before)
        return 0;
    if (timeout_ms > 0 && elapsed_ms > timeout_ms / 2)
        return cut(p, next_seq) ? -1 : 0;
    if ((timeout_ms > 0 && elapsed_ms > timeout_ms / 4) || p->level >= 1.0)
        return 0;
    p->level += PATRON_PACE_STEP;
    if (p->level > 1.0)
        p->level = 1.0;
    return 1;
}

size_t patron_pace_scale(const struct patron_pace *p, size_t configured)
{
    double v = (double)configured * p->level;
    if (v >= (double)configured)
        return configured;
    return v < 1.0 ? (configured ? 1 : 0) : (size_t)v;
}
