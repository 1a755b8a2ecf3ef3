/*
 * The campaigns file (YAML) through patron_campaigns_parse.
 *
 * Properties: success gives a set and leaves no error; failure leaves *out
 * untouched and says where and why ("line L, column C: ..."), within the
 * error buffer; a parsed set is freed whole (LeakSanitizer checks); a
 * campaign's id is found again by patron_campaigns_find.
 */
#include "fuzz.h"
#include "patron/campaign_yaml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct patron_campaigns *cs = (struct patron_campaigns *)(uintptr_t)1;
    char err[256];
    memset(err, 'x', sizeof(err));
    int rc = patron_campaigns_parse((const char *)data, size, &cs, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "error not NUL-terminated");
    if (rc != 0) {
        FUZZ_CHECK(rc == PATRON_EINVAL || rc == PATRON_ETOOBIG, "parse returned %d", rc);
        FUZZ_CHECK(cs == (struct patron_campaigns *)(uintptr_t)1, "*out changed on failure");
        FUZZ_CHECK(strncmp(err, "line ", 5) == 0, "error without its line: \"%s\"", err);
        return 0;
    }
    FUZZ_CHECK(cs != NULL && cs != (struct patron_campaigns *)(uintptr_t)1, "no set");
    FUZZ_CHECK(err[0] == '\0', "an error on success: \"%s\"", err);
    FUZZ_CHECK(cs->count <= PATRON_CAMPAIGNS_MAX, "%zu campaigns", cs->count);
    for (size_t i = 0; i < cs->count; i++)
        FUZZ_CHECK(patron_campaigns_find(cs, cs->campaigns[i].id) == &cs->campaigns[i],
                   "campaign %zu not found by its id (ids not unique?)", i);
    patron_campaigns_free(cs);
    return 0;
}
