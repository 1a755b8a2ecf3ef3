/*
 * A stored profile (version + ProfileState) as Redis hands it back, through
 * patron_profile_stored_decode.
 *
 * Properties: a refused value leaves the profile untouched; an accepted one
 * keeps the decoder's promises (a customer's id or a visitor's, lists within their
 * capacity, bought_earlier strictly ascending) and re-encodes into bytes
 * that decode again to the same encoding: the round trip is stable. Then
 * what the services do with a stored profile must hold whatever it holds:
 * the API renders it as JSON (scores at a fixed now), and ingest applies
 * events of every kind to it; the result still encodes.
 */
#include "fuzz.h"
#include "../unit/fixture_events.h"
#include "patron/keys.h"
#include "patron/profile_codec.h"
#include "patron/profile_json.h"
#include "patron/rfm.h"

/* 2021-06-01T00:00:00Z: "now" for the scores, and the events' time */
#define NOW_MS INT64_C(1622505600000)

static void check_invariants(const struct patron_profile *p)
{
    /* a customer's profile, or a visitor's: exactly one of the two ids */
    FUZZ_CHECK((p->customer_id[0] != '\0') != (p->anonymous_id[0] != '\0'),
               "a profile of both or neither a customer and a visitor accepted");
    FUZZ_CHECK(strlen(p->customer_id) <= PATRON_ID_MAX, "customer_id too long");
    FUZZ_CHECK(p->customer_id[0] == '\0' || !p->merged_into[0], "a customer merged into someone");
    FUZZ_CHECK(p->customer_id[0] != '\0' || p->n_aliases == 0, "a visitor with aliases");
    FUZZ_CHECK(p->n_marks <= PATRON_PROFILE_MARKS_MAX, "n_marks %zu", p->n_marks);
    FUZZ_CHECK(p->n_aliases <= PATRON_PROFILE_ALIASES_MAX, "n_aliases %zu", p->n_aliases);
    for (size_t i = 0; i < p->n_aliases; i++)
        FUZZ_CHECK(p->aliases[i].anonymous_id[0] &&
                       p->aliases[i].n_marks <= PATRON_PROFILE_MARKS_MAX,
                   "alias %zu", i);
    FUZZ_CHECK(p->n_months <= PATRON_PROFILE_MONTHS, "n_months %zu", p->n_months);
    FUZZ_CHECK(p->n_categories <= PATRON_PROFILE_CATEGORIES_MAX, "n_categories %zu",
               p->n_categories);
    FUZZ_CHECK(p->n_viewed <= PATRON_PROFILE_VIEWED_MAX, "n_viewed %zu", p->n_viewed);
    FUZZ_CHECK(p->n_bought <= PATRON_PROFILE_BOUGHT_MAX, "n_bought %zu", p->n_bought);
    FUZZ_CHECK(p->n_bought_earlier <= PATRON_PROFILE_BOUGHT_EARLIER_MAX, "n_bought_earlier %zu",
               p->n_bought_earlier);
    for (size_t i = 1; i < p->n_bought_earlier; i++)
        FUZZ_CHECK(p->bought_earlier[i - 1] < p->bought_earlier[i],
                   "bought_earlier not ascending at %zu", i);
    FUZZ_CHECK(p->n_cart <= PATRON_PROFILE_CART_MAX, "n_cart %zu", p->n_cart);
    FUZZ_CHECK(p->n_event_ids <= PATRON_PROFILE_EVENT_IDS_MAX, "n_event_ids %zu", p->n_event_ids);
    FUZZ_CHECK(p->n_counted <= PATRON_PROFILE_COUNTED_MAX, "n_counted %zu", p->n_counted);
}

/* version + encoding of p, into out (room PATRON_PROFILE_VERSION_LEN +
 * PATRON_PROFILE_ENCODED_MAX). */
static size_t store(const struct patron_profile *p, uint64_t version, uint8_t *out)
{
    patron_profile_version_put(out, version);
    size_t len = 0;
    int rc = patron_profile_encode_into(p, out + PATRON_PROFILE_VERSION_LEN,
                                        PATRON_PROFILE_ENCODED_MAX, &len);
    FUZZ_CHECK(rc == 0, "a decoded profile does not encode: %d", rc);
    return PATRON_PROFILE_VERSION_LEN + len;
}

/* The API's reading and ingest's writing of a decoded profile. */
static void consume(struct patron_profile *p)
{
    struct patron_profile_config cfg;
    patron_profile_config_default(&cfg);
    json_t *j = patron_profile_to_json(p, NOW_MS, &cfg);
    FUZZ_CHECK(j, "no JSON for a decoded profile");
    char *text = json_dumps(j, JSON_COMPACT);
    FUZZ_CHECK(text, "the profile's JSON does not serialise");
    free(text);
    json_decref(j);

    static struct fx_event f;
    static const struct fx_line lines[] = {{"85123A", "851", 6, 255}, {"71053", "710", 2, 339}};
    /* a fixture event's customer is FX_CUSTOMER: apply to that profile (a
     * visitor's becomes a customer's) */
    memcpy(p->customer_id, FX_CUSTOMER, sizeof(FX_CUSTOMER));
    memset(p->anonymous_id, 0, sizeof(p->anonymous_id));
    memset(p->merged_into, 0, sizeof(p->merged_into));
    int64_t t = NOW_MS, off = 0; /* past partition 0's mark: applied, not replayed */
    for (size_t i = 0; i < p->n_marks && i < PATRON_PROFILE_MARKS_MAX; i++)
        if (p->marks[i].partition == 0)
            off = p->marks[i].offset;
    for (int k = 0; k < 8; k++) {
        char id[16];
        snprintf(id, sizeof(id), "f-%d", k);
        const Patron__V1__Event *ev = NULL;
        switch (k) {
        case 0:
            ev = fx_view(&f, id, t, "85123A", "851");
            break;
        case 1:
            ev = fx_cart_add(&f, id, t, "71053", "710", 2, 339);
            break;
        case 2:
            ev = fx_purchase(&f, id, t, 2, lines);
            break;
        case 3:
            ev = fx_refund(&f, id, t, 0, 1, lines);
            break;
        case 4:
            ev = fx_review(&f, id, t, "71053", 5);
            break;
        case 5:
            ev = fx_customer(&f, id, t, "02-29", "Europe/London", "en-GB", "UK");
            break;
        case 6:
            ev = fx_consent(&f, id, t, PATRON__V1__CHANNEL__SMS, true);
            break;
        default:
            ev = fx_erasure(&f, id, t);
            break;
        }
        struct patron_apply_outcome out;
        int rc = patron_profile_apply(p, ev, 0, off + 1 + k, &cfg, &out);
        FUZZ_CHECK(rc == 0, "event %d refused by a decoded profile: %d", k, rc);
        uint8_t *buf = NULL;
        size_t len = 0;
        rc = patron_profile_encode(p, &buf, &len);
        FUZZ_CHECK(rc == 0, "the profile does not encode after event %d: %d", k, rc);
        free(buf);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* profiles are ~100 KiB: on the heap, once */
    static struct patron_profile p, q, untouched;
    static uint8_t first[PATRON_PROFILE_VERSION_LEN + PATRON_PROFILE_ENCODED_MAX];
    static uint8_t second[sizeof(first)];
    memset(&p, 0xa5, sizeof(p));
    memcpy(&untouched, &p, sizeof(p));
    uint64_t version = 0;
    if (patron_profile_stored_decode(&p, data, size, &version) != 0) {
        FUZZ_CHECK(memcmp(&p, &untouched, sizeof(p)) == 0, "a refused value changed the profile");
        return 0;
    }
    check_invariants(&p);
    size_t n1 = store(&p, version, first);

    uint64_t version2 = 0;
    int rc = patron_profile_stored_decode(&q, first, n1, &version2);
    FUZZ_CHECK(rc == 0, "the re-encoded profile does not decode: %d", rc);
    FUZZ_CHECK(version2 == version, "version %llu became %llu", (unsigned long long)version,
               (unsigned long long)version2);
    check_invariants(&q);
    size_t n2 = store(&q, version2, second);
    FUZZ_CHECK(n1 == n2 && memcmp(first, second, n1) == 0,
               "round trip not stable: %zu bytes, then %zu", n1, n2);
    consume(&q);
    return 0;
}
