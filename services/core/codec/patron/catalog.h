/*
 * The catalog contract (patron.catalog, ItemUpdate): decoding in any of the
 * three encodings (event_wire.h), with limits and validation, pure. The
 * ingest shell writes accepted updates to the item's hash ({i:<id>}:
 * title, category, price_cents, in_stock).
 */
#ifndef PATRON_CATALOG_H
#define PATRON_CATALOG_H

#include "patron/common.h"
#include "patron/event_wire.h"
#include "patron/v1/catalog.pb-c.h"

#define PATRON_ITEM_UPDATE_MAX (64 * 1024) /* bytes of one encoded ItemUpdate */
#define PATRON_TITLE_MAX 512               /* bytes of a title */

/* On success *out comes from alloc (an arena: never freed here). On failure
 * *out is NULL and why says why, for the DLQ `error` header. */
int patron_item_update_decode(ProtobufCAllocator *alloc, const void *buf, size_t len,
                              Patron__V1__ItemUpdate **out,
                              char why[PATRON_WIRE_REASON_MAX]) PATRON_MUST_USE;

#endif
