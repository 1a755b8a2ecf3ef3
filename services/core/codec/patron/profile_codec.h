/*
 * The stored profile: protobuf patron.v1.ProfileState behind an 8-byte
 * version (keys.h), encoded by hand (pb_pack.h) and decoded by hand
 * (pb_unpack.h). The one place that format is read and written. Pure.
 */
#ifndef PATRON_PROFILE_CODEC_H
#define PATRON_PROFILE_CODEC_H

#include "patron/profile.h"

/* Largest stored form patron_profile_decode accepts; a full profile encodes
 * to about 13 KiB (4 KiB of it bought_earlier). */
#define PATRON_PROFILE_ENCODED_MAX (64 * 1024)

/* The stored form: protobuf patron.v1.ProfileState (zero fields omitted).
 * Encodes into a new buffer the caller frees with free(). Fails with
 * PATRON_EINVAL only for a profile that breaks the invariants above (a list
 * longer than its capacity). */
int patron_profile_encode(const struct patron_profile *p, uint8_t **buf,
                          size_t *len) PATRON_MUST_USE;
/* The same into out (room cap; PATRON_PROFILE_ENCODED_MAX always suffices),
 * its length in *len; PATRON_ETOOBIG when it does not fit. */
int patron_profile_encode_into(const struct patron_profile *p, uint8_t *out, size_t cap,
                               size_t *len) PATRON_MUST_USE;
/* Strict: PATRON_ETOOBIG above PATRON_PROFILE_ENCODED_MAX; PATRON_EINVAL on
 * bytes that are not a ProfileState, an empty customer_id, a string longer
 * than its field or not UTF-8, a list over capacity, a non-finite score or a
 * cart quantity <= 0, or bought_earlier not strictly ascending. On failure *p is unchanged. */
int patron_profile_decode(struct patron_profile *p, const uint8_t *buf, size_t len) PATRON_MUST_USE;

/* A profile as stored in Redis: its PATRON_PROFILE_VERSION_LEN-byte version
 * (keys.h), then the ProfileState. The one decode of that value. *version
 * may be NULL. PATRON_EINVAL when shorter than the version or when the rest
 * does not decode (patron_profile_decode); then *p is unchanged. */
int patron_profile_stored_decode(struct patron_profile *p, const void *value, size_t len,
                                 uint64_t *version) PATRON_MUST_USE;

/* What a stored profile says of identity, read without decoding it all (a
 * batch decides from it which other profiles to read). */
struct patron_profile_peek {
    bool visitor;                          /* no customer_id */
    char merged_into[PATRON_ID_MAX + 1];   /* a merged visitor's customer, or "" */
    int32_t merged_partition;
    size_t n_aliases;                      /* a customer's merged anonymous ids */
    char aliases[PATRON_PROFILE_ALIASES_MAX][PATRON_ID_MAX + 1];
    /* anything besides the ids (a merged visitor still holding what it
     * brought, or any profile with data) */
    bool contents;
};

/* Walks the stored value's top-level fields only: no check of the rest,
 * which patron_profile_stored_decode does (a value that fails it fails
 * there). PATRON_EINVAL when the walk itself fails. */
int patron_profile_stored_peek(const void *value, size_t len,
                               struct patron_profile_peek *out) PATRON_MUST_USE;

#endif
