/*
 * The campaigns file (YAML) into struct patron_campaigns (campaign.h): the
 * one parser of that format, with the line, column and reason of every
 * error. Pure: bytes in, a new set (or an error) out.
 */
#ifndef PATRON_CAMPAIGN_YAML_H
#define PATRON_CAMPAIGN_YAML_H

#include "patron/campaign.h"

/* Parses `len` bytes of YAML (need not be NUL-terminated). On success *out
 * is a new set the caller frees; on failure *out is untouched and `err`
 * (errlen > 0) holds the line, column and reason. */
int patron_campaigns_parse(const char *yaml, size_t len, struct patron_campaigns **out, char *err,
                           size_t errlen) PATRON_MUST_USE;

/* A duration "30s", "15m", "1h", "3d", "2w" in ms. Rejects 0, signs,
 * spaces, unknown units, and values over ~100 years. */
int patron_duration_parse(const char *s, int64_t *out_ms) PATRON_MUST_USE;

/* "HH:MM" (two digits each, 00:00..23:59) in minutes after midnight. */
int patron_clock_time_parse(const char *s, int *out_min) PATRON_MUST_USE;

#endif
