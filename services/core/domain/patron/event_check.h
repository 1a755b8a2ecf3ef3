/*
 * Contract validation of patron.events payloads, before anything is applied:
 * what fails here goes to patron.dlq with the reason in its `error` header.
 *
 * Reasons are static strings (never freed, valid forever). Pure; safe from
 * any thread. A checked event is safe for the domain: ids fit PATRON_ID_MAX,
 * strings are UTF-8 without control bytes, times and money fit int64
 * arithmetic with room to spare. Strings are measured with strlen: the
 * decoders (event_wire.h) refuse one holding a NUL, which would otherwise
 * end it early and make "victim\0x" pass as "victim".
 */
#ifndef PATRON_EVENT_CHECK_H
#define PATRON_EVENT_CHECK_H

#include "patron/clock.h"
#include "patron/common.h"
#include "patron/v1/event.pb-c.h"

#define PATRON_EVENT_MAX_BYTES (1024 * 1024) /* largest payload decoded */
#define PATRON_EVENT_LINES_MAX 1000          /* lines in a purchase or refund */
#define PATRON_EVENT_CURRENCY_MAX 64         /* bytes of a purchase's currency */
/* occurred_at_ms must be in 1 .. 9999-12-31T23:59:59.999Z. */
#define PATRON_EVENT_TIME_MAX_MS PATRON_TIME_MAX_MS
/* A purchase's value, a refund's amount and each line's quantity x price are
 * at most this (10^15 cents, ten trillion currency units). */
#define PATRON_EVENT_VALUE_MAX_CENTS INT64_C(1000000000000000)

/* PATRON_EINVAL with *reason set when ev breaks the contract, else 0 and
 * *reason = NULL. A checked event has a customer_id, or else an
 * anonymous_id (a visitor's event; "missing customer_id" when it has
 * neither); an Identify has both customer_id and identify.anonymous_id. */
int patron_event_check(const Patron__V1__Event *ev, const char **reason) PATRON_MUST_USE;

/* A checked event's value: sum of quantity x unit price for a purchase; for a
 * refund amount_cents if > 0, else its lines' value; 0 for other kinds.
 * Saturates at PATRON_EVENT_VALUE_MAX_CENTS for an unchecked event. */
int64_t patron_event_value_cents(const Patron__V1__Event *ev);

/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF) and
 * no byte below 0x20: what JSON and log lines carry verbatim. Every string
 * that enters a profile passes this. */
bool patron_event_text_valid(const char *s, size_t len);

#endif
