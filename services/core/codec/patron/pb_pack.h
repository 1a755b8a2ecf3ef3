/*
 * Hand-written packers for the two messages ingest writes for every event:
 * the stored ProfileState and the published ProfileUpdate. They write, byte
 * for byte, what protobuf-c's pack writes for the same struct
 * (tests/unit/test_pb_pack.c compares them), at a fraction of the cost:
 * protobuf-c walks the descriptors and sizes every message before packing
 * it, which was close to a third of ingest's instructions per event.
 *
 * Pure; the message is read, never kept. Safe from any thread.
 */
#ifndef PATRON_PB_PACK_H
#define PATRON_PB_PACK_H

#include "patron/common.h"
#include "patron/v1/profile.pb-c.h"

/* Packs *m into out, which has room for cap bytes, and its length into
 * *len. PATRON_ETOOBIG when it does not fit (nothing meaningful in out then). */
int patron_pb_pack_profile_state(const Patron__V1__ProfileState *m, uint8_t *out, size_t cap,
                                 size_t *len) PATRON_MUST_USE;
int patron_pb_pack_profile_update(const Patron__V1__ProfileUpdate *m, uint8_t *out, size_t cap,
                                  size_t *len) PATRON_MUST_USE;

#endif
