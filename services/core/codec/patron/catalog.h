/*
 * The catalog contract (patron.catalog, ItemUpdate): decoding with limits
 * and validation, pure. The ingest shell writes accepted updates to the
 * item's hash ({i:<id>}: title, category, price_cents, in_stock).
 */
#ifndef PATRON_CATALOG_H
#define PATRON_CATALOG_H

#include "patron/common.h"
#include "patron/v1/catalog.pb-c.h"

#define PATRON_ITEM_UPDATE_MAX (64 * 1024) /* bytes of one encoded ItemUpdate */
#define PATRON_TITLE_MAX 512               /* bytes of a title */

/* On success *out is the caller's: patron__v1__item_update__free_unpacked(*out, NULL).
 * On failure *reason is a static string for the DLQ `error` header. */
int patron_item_update_decode(const void *buf, size_t len, Patron__V1__ItemUpdate **out,
                              const char **reason) PATRON_MUST_USE;

#endif
