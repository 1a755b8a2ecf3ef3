/*
 * Decimal integers in text: the one parser of them, for configuration,
 * query parameters, Redis values and command lines alike.
 *
 * The form is canonical: an optional '-', then digits, with no leading zero
 * unless the number is 0, and nothing else: no '+', no spaces, no "-0". A
 * value is exactly one text, so a counter written by Redis, a partition
 * number or an offset round-trips. Pure; the input need not be
 * NUL-terminated.
 */
#ifndef PATRON_NUM_H
#define PATRON_NUM_H

#include "patron/common.h"

/* The number in s[0 .. len), if canonical and within [min, max];
 * PATRON_EINVAL otherwise (*out untouched). */
int patron_parse_i64(const char *s, size_t len, int64_t min, int64_t max,
                     int64_t *out) PATRON_MUST_USE;

/* The same without a sign, over the whole uint64 range. */
int patron_parse_u64(const char *s, size_t len, uint64_t min, uint64_t max,
                     uint64_t *out) PATRON_MUST_USE;

/* patron_parse_i64 of a NUL-terminated string. */
int patron_parse_i64_str(const char *s, int64_t min, int64_t max, int64_t *out) PATRON_MUST_USE;

#endif
