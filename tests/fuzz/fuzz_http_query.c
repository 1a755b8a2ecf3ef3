/*
 * patron_http_query_param, the API's reader of query strings, alone (the
 * server target reaches it too, at a fraction of the speed).
 *
 * Input: byte 0 picks the room (1..64 bytes), then the parameter's name up
 * to the first NUL, then the query.
 *
 * Properties: a found value is NUL-terminated at the returned length, fits
 * the room and holds no NUL; PATRON_ETOOBIG means more room finds it; a
 * value is found exactly when "name=" or "name" is one of the '&'-separated
 * pieces.
 */
#include "fuzz.h"
#include "patron/common.h"
#include "patron/http.h"

#define QUERY_MAX 4096

/* Whether name is the key of one of the query's pieces. */
static bool has_key(const char *query, const char *name)
{
    size_t name_len = strlen(name);
    for (const char *p = query; p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        size_t len = strcspn(p, "&");
        size_t key_len = strcspn(p, "=&");
        if (key_len > len)
            key_len = len;
        if (key_len == name_len && memcmp(p, name, name_len) == 0)
            return true;
        if (!p[len])
            break;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > QUERY_MAX)
        return 0;
    size_t cap = 1 + data[0] % 64;
    static char buf[QUERY_MAX + 1];
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *name = buf;
    const char *nul = memchr(buf, '\0', size);
    const char *query = nul + 1 <= buf + size - 1 ? nul + 1 : "";
    /* a NUL in the query ends it, as in a C string */
    if (!name[0])
        return 0; /* no parameter is named "" */

    char out[64 + 1], big[QUERY_MAX + 1];
    memset(out, 'x', sizeof(out));
    int rc = patron_http_query_param(query, name, out, cap);
    bool present = has_key(query, name);
    if (rc >= 0) {
        FUZZ_CHECK((size_t)rc < cap && out[rc] == '\0' && strlen(out) == (size_t)rc,
                   "value of %d bytes in a room of %zu", rc, cap);
        FUZZ_CHECK(present, "found \"%s\" where it is not", name);
        return 0;
    }
    FUZZ_CHECK(rc == PATRON_ENOTFOUND || rc == PATRON_ETOOBIG || rc == PATRON_EINVAL, "returned %d",
               rc);
    FUZZ_CHECK((rc == PATRON_ENOTFOUND) == !present, "\"%s\" %s but returned %d", name,
               present ? "present" : "absent", rc);
    if (rc == PATRON_ETOOBIG) {
        int again = patron_http_query_param(query, name, big, sizeof(big));
        FUZZ_CHECK(again >= (int)cap || again == PATRON_EINVAL, "too big for %zu bytes, then %d",
                   cap, again);
    }
    return 0;
}
