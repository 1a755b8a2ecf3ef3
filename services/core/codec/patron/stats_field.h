/*
 * The campaign statistics' field, as patron-trigger writes it into
 * {tp:<p>}:stats and patron-api reads it back:
 *
 *   <campaign>|<variant>|<counter>
 *
 * campaign 1..PATRON_CAMPAIGN_ID_MAX bytes of [a-z0-9_-], variant 0..that
 * of [A-Za-z0-9_-] ("" when the campaign has none), counter one of
 * patron_stat_name's. The one place this format is written and parsed.
 * Pure.
 */
#ifndef PATRON_STATS_FIELD_H
#define PATRON_STATS_FIELD_H

#include "patron/campaign_engine.h"

/* Room for the longest field, with its NUL. */
#define PATRON_STATS_FIELD_MAX (2 * PATRON_CAMPAIGN_ID_MAX + 32)

/* Writes the field and its NUL into dst; returns its length, or
 * PATRON_EINVAL for ids outside the form above or an unknown counter. */
int patron_stats_field_format(char dst[PATRON_STATS_FIELD_MAX], const char *campaign,
                              const char *variant, enum patron_stat stat) PATRON_MUST_USE;

/* Splits a field; on success the ids are NUL-terminated copies.
 * PATRON_EINVAL for anything but the form above. */
int patron_stats_field_parse(const char *field, size_t len,
                             char campaign[PATRON_CAMPAIGN_ID_MAX + 1],
                             char variant[PATRON_CAMPAIGN_ID_MAX + 1],
                             enum patron_stat *stat) PATRON_MUST_USE;

#endif
