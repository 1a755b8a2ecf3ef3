/*
 * What `patron-replay online-retail --derive-profile` invents about a
 * customer, so that the demo's campaigns have someone to message: a time
 * zone and locale from the CSV's Country (a table; anything else is UTC and
 * no locale), a birthday, and consent per channel (email 80%, push 60%, SMS
 * 40% granted); and whether it first came as an anonymous visitor (25%:
 * half of them log in at checkout, half check out as a guest and are
 * identified right after), under which anonymous id. All are functions of
 * the customer id alone (FNV-1a 64, mixed per purpose with replay_mix64),
 * not of --seed: the same customer always gets the same answers.
 * data/README.md "Derived profiles" and "Derived identity".
 * Header-only and pure, like parse.h and rng.h; tests/unit/test_replay_derive.c
 * pins it.
 */
#ifndef PATRON_REPLAY_DERIVE_PROFILE_H
#define PATRON_REPLAY_DERIVE_PROFILE_H

#include <string.h>

#include "patron/common.h"
#include "rng.h"

struct replay_country {
    const char *country; /* the data set's Country, exactly */
    const char *time_zone, *locale;
};

/* The data set's countries (all 38 of the full file). */
static const struct replay_country REPLAY_COUNTRIES[] = {
    {"United Kingdom", "Europe/London", "en-GB"},
    {"EIRE", "Europe/Dublin", "en-IE"},
    {"Channel Islands", "Europe/Jersey", "en-GB"},
    {"France", "Europe/Paris", "fr-FR"},
    {"Germany", "Europe/Berlin", "de-DE"},
    {"Netherlands", "Europe/Amsterdam", "nl-NL"},
    {"Belgium", "Europe/Brussels", "nl-BE"},
    {"Switzerland", "Europe/Zurich", "de-CH"},
    {"Austria", "Europe/Vienna", "de-AT"},
    {"Spain", "Europe/Madrid", "es-ES"},
    {"Portugal", "Europe/Lisbon", "pt-PT"},
    {"Italy", "Europe/Rome", "it-IT"},
    {"Norway", "Europe/Oslo", "nb-NO"},
    {"Sweden", "Europe/Stockholm", "sv-SE"},
    {"Denmark", "Europe/Copenhagen", "da-DK"},
    {"Finland", "Europe/Helsinki", "fi-FI"},
    {"Iceland", "Atlantic/Reykjavik", "is-IS"},
    {"Poland", "Europe/Warsaw", "pl-PL"},
    {"Czech Republic", "Europe/Prague", "cs-CZ"},
    {"Lithuania", "Europe/Vilnius", "lt-LT"},
    {"Greece", "Europe/Athens", "el-GR"},
    {"Cyprus", "Asia/Nicosia", "el-CY"},
    {"Malta", "Europe/Malta", "en-MT"},
    {"Israel", "Asia/Jerusalem", "he-IL"},
    {"Lebanon", "Asia/Beirut", "ar-LB"},
    {"United Arab Emirates", "Asia/Dubai", "ar-AE"},
    {"Saudi Arabia", "Asia/Riyadh", "ar-SA"},
    {"Bahrain", "Asia/Bahrain", "ar-BH"},
    {"Japan", "Asia/Tokyo", "ja-JP"},
    {"Hong Kong", "Asia/Hong_Kong", "zh-HK"},
    {"Singapore", "Asia/Singapore", "en-SG"},
    {"Australia", "Australia/Sydney", "en-AU"},
    {"USA", "America/New_York", "en-US"},
    {"Canada", "America/Toronto", "en-CA"},
    {"Brazil", "America/Sao_Paulo", "pt-BR"},
    {"RSA", "Africa/Johannesburg", "en-ZA"},
    {"European Community", "UTC", ""},
    {"Unspecified", "UTC", ""},
};

/* The row for a Country, or NULL (then: time zone "UTC", no locale). */
static inline const struct replay_country *replay_country_find(const char *s, size_t len)
{
    for (size_t i = 0; i < PATRON_ARRAY_LEN(REPLAY_COUNTRIES); i++)
        if (strlen(REPLAY_COUNTRIES[i].country) == len &&
            memcmp(REPLAY_COUNTRIES[i].country, s, len) == 0)
            return &REPLAY_COUNTRIES[i];
    return NULL;
}

/* Purposes of the customer hash: each its own independent draw. */
enum replay_derive_purpose {
    REPLAY_DERIVE_BIRTHDAY = 1,
    REPLAY_DERIVE_SMS = 2, /* = patron.v1.Channel + 1 */
    REPLAY_DERIVE_PUSH = 3,
    REPLAY_DERIVE_EMAIL = 4,
    REPLAY_DERIVE_VISITOR = 5,
    REPLAY_DERIVE_GUEST = 6,
    REPLAY_DERIVE_ANONYMOUS_ID = 7,
};

static inline uint64_t replay_customer_draw(const char *id, size_t len,
                                            enum replay_derive_purpose purpose)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a 64 */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)id[i];
        h *= UINT64_C(0x100000001b3);
    }
    return replay_mix64(h ^ ((uint64_t)purpose * UINT64_C(0x9e3779b97f4a7c15)));
}

/* "MM-DD", uniform over the 366 days of a leap year (so 29 February comes
 * up, about one customer in 366). out holds 6 bytes. */
static inline void replay_birthday(const char *id, size_t len, char out[6])
{
    static const int days_in[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int day = (int)(replay_customer_draw(id, len, REPLAY_DERIVE_BIRTHDAY) % 366);
    int month = 0;
    while (day >= days_in[month])
        day -= days_in[month++];
    out[0] = (char)('0' + (month + 1) / 10);
    out[1] = (char)('0' + (month + 1) % 10);
    out[2] = '-';
    out[3] = (char)('0' + (day + 1) / 10);
    out[4] = (char)('0' + (day + 1) % 10);
    out[5] = '\0';
}

/* Percent of customers who grant each channel, by patron.v1.Channel. */
static inline unsigned replay_consent_percent(int channel)
{
    switch (channel) {
    case 1: /* SMS */
        return 40;
    case 2: /* PUSH */
        return 60;
    case 3: /* EMAIL */
        return 80;
    default:
        return 0;
    }
}

/* Whether the customer granted `channel` (patron.v1.Channel 1..3). */
static inline bool replay_consent(const char *id, size_t len, int channel)
{
    if (channel < 1 || channel > 3)
        return false;
    uint64_t d = replay_customer_draw(id, len, (enum replay_derive_purpose)(channel + 1));
    return d % 100 < replay_consent_percent(channel);
}

/* Percent of customers whose first purchase follows an anonymous visit. */
#define REPLAY_VISITOR_PERCENT 25

enum replay_visitor {
    REPLAY_NOT_A_VISITOR, /* known from its first event */
    REPLAY_VISITOR_LOGIN, /* browsed anonymously, logged in at its first checkout */
    REPLAY_VISITOR_GUEST, /* browsed and bought as a guest, identified right after */
};

static inline enum replay_visitor replay_visitor_of(const char *id, size_t len)
{
    if (replay_customer_draw(id, len, REPLAY_DERIVE_VISITOR) % 100 >= REPLAY_VISITOR_PERCENT)
        return REPLAY_NOT_A_VISITOR;
    return replay_customer_draw(id, len, REPLAY_DERIVE_GUEST) % 2 ? REPLAY_VISITOR_GUEST
                                                                  : REPLAY_VISITOR_LOGIN;
}

/* The visitor's anonymous id: "anon-" and 16 hex digits of the customer's
 * hash (a cookie says nothing of whom it belongs to). out holds 22 bytes. */
static inline void replay_anonymous_id(const char *id, size_t len, char out[22])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t h = replay_customer_draw(id, len, REPLAY_DERIVE_ANONYMOUS_ID);
    memcpy(out, "anon-", 5);
    for (int i = 0; i < 16; i++)
        out[5 + i] = hex[(h >> (60 - 4 * i)) & 15];
    out[21] = '\0';
}

#endif
