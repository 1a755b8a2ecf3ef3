/* One day of the dashboard's customer history (see patron/dashboard_history.h). */
#include "patron/dashboard_history.h"

#include <stdlib.h>
#include <string.h>

/* jansson returns NULL only when out of memory, which aborts (common.h). */
static json_t *must(json_t *j)
{
    if (!j)
        abort();
    return j;
}

static void set(json_t *obj, const char *key, json_t *value)
{
    if (json_object_set_new(obj, key, must(value)) < 0)
        abort();
}

static json_t *body(const struct patron_history_day *d, bool stored, const char *day)
{
    json_t *o = must(json_object());
    if (stored)
        set(o, "version", json_integer(PATRON_HISTORY_VERSION));
    else
        set(o, "day", json_string(day));
    set(o, "as_of_ms", json_integer(d->as_of_ms));
    set(o, "customers", json_integer((json_int_t)d->customers));
    json_t *seg = must(json_object()), *tiers = must(json_object()), *cl = must(json_array());
    for (int i = 0; i < PATRON_SEGMENT_COUNT; i++)
        set(seg, patron_segment_name((enum patron_segment)i),
            json_integer((json_int_t)d->segments[i]));
    for (int i = 0; i < PATRON_TIER_COUNT; i++)
        set(tiers, patron_tier_name((enum patron_tier)i), json_integer((json_int_t)d->tiers[i]));
    for (size_t i = 0; i < d->n_clusters && i < PATRON_CLUSTERS_MAX; i++) {
        json_t *c = must(json_object());
        set(c, "id", json_integer(d->clusters[i].id));
        set(c, "label", json_string(d->clusters[i].label));
        set(c, "size", json_integer((json_int_t)d->clusters[i].size));
        if (json_array_append_new(cl, c) < 0)
            abort();
    }
    set(o, "segments", seg);
    set(o, "tiers", tiers);
    set(o, "clusters", cl);
    return o;
}

char *patron_history_day_encode(const struct patron_history_day *d)
{
    json_t *o = body(d, true, NULL);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (!s)
        abort();
    return s;
}

json_t *patron_history_day_to_json(const struct patron_history_day *d, const char *day)
{
    return body(d, false, day);
}

static bool get_u64(const json_t *o, const char *key, uint64_t *out)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* An object with exactly the names of a table, each a count. */
static bool get_counts(const json_t *o, const char *key, int n, const char *(*name)(int),
                       uint64_t *out)
{
    const json_t *m = json_object_get(o, key);
    if (!json_is_object(m) || json_object_size(m) != (size_t)n)
        return false;
    for (int i = 0; i < n; i++)
        if (!get_u64(m, name(i), &out[i]))
            return false;
    return true;
}

static const char *segment_name(int i)
{
    return patron_segment_name((enum patron_segment)i);
}

static const char *tier_name(int i)
{
    return patron_tier_name((enum patron_tier)i);
}

static bool get_clusters(const json_t *o, struct patron_history_day *d)
{
    const json_t *a = json_object_get(o, "clusters");
    if (!json_is_array(a) || json_array_size(a) > PATRON_CLUSTERS_MAX)
        return false;
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *c = json_array_get(a, i), *id = json_object_get(c, "id");
        const json_t *label = json_object_get(c, "label");
        struct patron_history_cluster *h = &d->clusters[i];
        if (!json_is_object(c) || json_object_size(c) != 3 || !json_is_integer(id) ||
            json_integer_value(id) < 0 || json_integer_value(id) >= PATRON_CLUSTERS_MAX ||
            (i > 0 && json_integer_value(id) <= d->clusters[i - 1].id) || !json_is_string(label) ||
            json_string_length(label) < 1 || json_string_length(label) > PATRON_CLUSTER_LABEL_MAX ||
            strlen(json_string_value(label)) != json_string_length(label) ||
            !get_u64(c, "size", &h->size))
            return false;
        h->id = (int)json_integer_value(id);
        memcpy(h->label, json_string_value(label), json_string_length(label) + 1);
    }
    d->n_clusters = json_array_size(a);
    return true;
}

int patron_history_day_decode(const char *s, size_t len, struct patron_history_day *out)
{
    if (!s || len == 0 || len > PATRON_HISTORY_STORED_MAX)
        return PATRON_EINVAL;
    json_t *o = json_loadb(s, len, JSON_REJECT_DUPLICATES, NULL);
    struct patron_history_day d = {0};
    const json_t *version = json_object_get(o, "version"), *as_of = json_object_get(o, "as_of_ms");
    bool ok = json_is_object(o) && json_object_size(o) == 6 && json_is_integer(version) &&
              json_integer_value(version) == PATRON_HISTORY_VERSION && json_is_integer(as_of) &&
              json_integer_value(as_of) >= 0 && get_u64(o, "customers", &d.customers) &&
              get_counts(o, "segments", PATRON_SEGMENT_COUNT, segment_name, d.segments) &&
              get_counts(o, "tiers", PATRON_TIER_COUNT, tier_name, d.tiers) && get_clusters(o, &d);
    if (ok)
        d.as_of_ms = json_integer_value(as_of);
    json_decref(o);
    if (!ok)
        return PATRON_EINVAL;
    *out = d;
    return 0;
}
