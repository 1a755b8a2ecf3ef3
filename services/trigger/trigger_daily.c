/*
 * The campaign counters by day (docs/redis.md): every counter the engine
 * gives a job is added to {tp:p}:stats (trigger_jobs.c) and, here, to the
 * hash of its event-time day (UTC), {tp:p}:daily:<YYYY-MM-DD>, with the
 * same field (stats_field.h). The sorted set {tp:p}:daily lists the days
 * that have a hash, scored by day number; the commit keeps the
 * PATRON_DAILY_DAYS_MAX most recent and deletes the older ones' hashes, so
 * that a partition's daily counters are bounded whatever the dates a
 * replay brings. All of it is part of the job's one fenced commit script
 * (trigger_commit.c): the days are counted exactly as the totals are.
 */
#include <stdlib.h>
#include <string.h>

#include "patron/clock.h"
#include "patron/keys.h"
#include "trigger_internal.h"

void trigger_daily_add(struct job *j, const char *field, int64_t at_ms, int64_t delta)
{
    int64_t day = patron_utc_day(at_ms);
    char key[PATRON_DATE_LEN + 1 + PATRON_STATS_FIELD_MAX];
    if (patron_utc_date_format(day, key) != 0)
        return; /* outside 1970..9999: the update was refused before */
    size_t flen = strlen(field);
    key[PATRON_DATE_LEN] = '|';
    memcpy(key + PATRON_DATE_LEN + 1, field, flen + 1);
    size_t klen = PATRON_DATE_LEN + 1 + flen;
    struct daily_delta *d = patron_strmap_get(&j->daily, key, klen);
    if (d == NULL) {
        d = patron_malloc(sizeof(*d) + klen + 1);
        d->day = day;
        d->delta = 0;
        d->field_at = PATRON_DATE_LEN + 1;
        memcpy(d->key, key, klen + 1);
        (void)patron_strmap_put(&j->daily, d->key, klen, d);
    }
    d->delta += delta;
}

void trigger_daily_free(struct job *j)
{
    for (size_t i = 0; i < j->daily.cap; i++)
        if (j->daily.slots[i].key)
            free(j->daily.slots[i].value);
    patron_strmap_free(&j->daily);
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(struct daily_delta *const *)a)->key, (*(struct daily_delta *const *)b)->key);
}

/* j's counters sorted by day, then field; the caller frees the array. */
static struct daily_delta **sorted(const struct job *j, size_t *n)
{
    struct daily_delta **all = patron_malloc((j->daily.count ? j->daily.count : 1) * sizeof(*all));
    *n = 0;
    for (size_t i = 0; i < j->daily.cap; i++)
        if (j->daily.slots[i].key)
            all[(*n)++] = j->daily.slots[i].value;
    qsort(all, *n, sizeof(*all), by_key);
    return all;
}

void trigger_daily_keys(struct job *j, struct argv_buf *a)
{
    char key[PATRON_KEY_MAX];
    int kl = patron_key_trigger(key, sizeof(key), j->p->id, "daily");
    trigger_argv_own(a, patron_strdup(key), (size_t)kl);
    size_t n;
    struct daily_delta **all = sorted(j, &n);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && all[i]->day == all[i - 1]->day)
            continue;
        kl = patron_key_trigger_daily(key, sizeof(key), j->p->id, all[i]->day);
        if (kl < 0)
            abort(); /* the day came from patron_utc_date_format: cannot happen */
        trigger_argv_own(a, patron_strdup(key), (size_t)kl);
    }
    free(all);
}

void trigger_daily_args(struct job *j, struct argv_buf *a)
{
    size_t n, days = 0;
    struct daily_delta **all = sorted(j, &n);
    for (size_t i = 0; i < n; i++)
        days += i == 0 || all[i]->day != all[i - 1]->day;
    trigger_argv_int(a, (int64_t)days);
    for (size_t i = 0; i < n;) {
        size_t end = i;
        while (end < n && all[end]->day == all[i]->day)
            end++;
        trigger_argv_add(a, all[i]->key, PATRON_DATE_LEN);
        trigger_argv_int(a, all[i]->day);
        trigger_argv_int(a, (int64_t)(end - i));
        for (; i < end; i++) {
            const struct daily_delta *d = all[i];
            trigger_argv_add(a, d->key + d->field_at, strlen(d->key + d->field_at));
            trigger_argv_int(a, d->delta);
        }
    }
    trigger_argv_int(a, PATRON_DAILY_DAYS_MAX);
    free(all);
}
