/*
 * patron-api's authentication (see auth.h).
 */
#include "auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "patron/config.h"
#include "patron/redis.h"

/* The session cookie is SHA-1(SESSION_LABEL || token), in hex. */
#define SESSION_LABEL "patron-dashboard-session\n"
#define SESSION_HEX 40

struct api_auth {
    char *token; /* NULL: open */
    size_t token_len;
    char session[SESSION_HEX + 1];
};

static const char challenge[] = "WWW-Authenticate: Bearer realm=\"patron\"\r\n";
static const char unauthorized[] =
    "{\"error\":\"unauthorized\",\"message\":\"bearer token required\"}";

/* The page a browser gets instead of the dashboard: no script, no style, no
 * input echoed back. */
static const char login_head[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>Patron · sign in</title>\n</head>\n<body>\n<main>\n<h1>Patron</h1>\n"
    "<form method=\"post\" action=\"" API_AUTH_LOGIN_PATH "\">\n"
    "<label>API token <input type=\"password\" name=\"token\" autocomplete=\"current-password\" "
    "required autofocus data-testid=\"login-token\"></label>\n"
    "<button type=\"submit\" data-testid=\"login-submit\">Sign in</button>\n</form>\n";
static const char login_wrong[] = "<p data-testid=\"login-error\">Wrong token.</p>\n";
static const char login_tail[] = "</main>\n</body>\n</html>\n";
static const char login_headers[] =
    "WWW-Authenticate: Bearer realm=\"patron\"\r\n"
    "Cache-Control: no-store\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Content-Security-Policy: default-src 'none'; form-action 'self'\r\n";

struct api_auth *api_auth_new(const char *token)
{
    struct api_auth *a = patron_calloc(1, sizeof(*a));
    if (!token)
        return a;
    a->token = patron_strdup(token);
    a->token_len = strlen(token);
    size_t label = sizeof(SESSION_LABEL) - 1;
    char *keyed = patron_malloc(label + a->token_len);
    memcpy(keyed, SESSION_LABEL, label);
    memcpy(keyed + label, token, a->token_len);
    patron_sha1_hex(keyed, label + a->token_len, a->session);
    free(keyed);
    return a;
}

void api_auth_free(struct api_auth *a)
{
    if (!a)
        return;
    free(a->token);
    free(a);
}

/* Constant time in the secret's length, so that neither the secret nor how
 * much of it a guess got right leaks through timing. */
static bool same_secret(const char *given, size_t given_len, const char *secret, size_t len)
{
    unsigned char diff = (unsigned char)(given_len != len);
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(given[i < given_len ? i : 0] ^ secret[i]);
    return diff == 0 && given_len > 0;
}

static bool bearer_ok(const struct api_auth *a, const struct patron_http_request *req)
{
    static const char prefix[] = "Bearer ";
    const char *h = req->authorization;
    if (!h || strncmp(h, prefix, sizeof(prefix) - 1) != 0)
        return false;
    h += sizeof(prefix) - 1;
    return same_secret(h, strlen(h), a->token, a->token_len);
}

/* The value of the patron_session cookie in a Cookie header, or NULL. */
static const char *session_cookie(const char *cookies, size_t *len)
{
    static const char name[] = API_AUTH_COOKIE "=";
    for (const char *p = cookies; p && *p;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *end = strchr(p, ';');
        size_t pair = end ? (size_t)(end - p) : strlen(p);
        if (pair >= sizeof(name) - 1 && memcmp(p, name, sizeof(name) - 1) == 0) {
            *len = pair - (sizeof(name) - 1);
            while (*len > 0 && (p[sizeof(name) - 1 + *len - 1] == ' '))
                (*len)--;
            return p + sizeof(name) - 1;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

static bool cookie_ok(const struct api_auth *a, const struct patron_http_request *req)
{
    size_t len = 0;
    const char *v = req->cookie ? session_cookie(req->cookie, &len) : NULL;
    return v && same_secret(v, len, a->session, SESSION_HEX);
}

static bool is_read(const struct patron_http_request *req)
{
    return strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
}

/* The dashboard's page itself: a browser without a session gets the form. */
static bool is_page(const char *path)
{
    return strcmp(path, "/") == 0 || strcmp(path, "/dashboard") == 0 ||
           strcmp(path, "/dashboard/") == 0 || strcmp(path, "/dashboard/index.html") == 0;
}

/* What the dashboard's page reads, all a session cookie opens: its files,
 * the dashboard API (/v1/dashboard/...), and the campaign and segment aggregates it charts (no
 * customer's data: never a profile, a recommendation or an erasure). */
static bool dashboard_reads(const char *path)
{
    static const char files[] = "/dashboard/", api[] = "/v1/dashboard/";
    static const char *const aggregates[] = {"/v1/campaigns/stats", "/v1/campaigns/daily",
                                             "/v1/segments/clusters"};
    if (is_page(path) || strncmp(path, files, sizeof(files) - 1) == 0 ||
        strncmp(path, api, sizeof(api) - 1) == 0)
        return true;
    for (size_t i = 0; i < PATRON_ARRAY_LEN(aggregates); i++)
        if (strcmp(path, aggregates[i]) == 0)
            return true;
    return false;
}

static void login_page(struct api *api, struct patron_http_response *res, bool wrong)
{
    char page[sizeof(login_head) + sizeof(login_wrong) + sizeof(login_tail)];
    size_t n = 0;
    memcpy(page + n, login_head, sizeof(login_head) - 1);
    n += sizeof(login_head) - 1;
    if (wrong) {
        memcpy(page + n, login_wrong, sizeof(login_wrong) - 1);
        n += sizeof(login_wrong) - 1;
    }
    memcpy(page + n, login_tail, sizeof(login_tail) - 1);
    n += sizeof(login_tail) - 1;
    api_respond(api, res, 401, "text/html; charset=utf-8", login_headers, page, n);
}

/* POST /dashboard/login, token=<token>: the session cookie and back to the
 * page; the form again for a wrong token. */
static void login(const struct api_auth *a, struct api *api, const struct patron_http_request *req,
                  struct patron_http_response *res)
{
    if (strcmp(req->method, "POST") != 0) {
        api_respond_error(api, res, 405, "method_not_allowed", "use POST");
        return;
    }
    if (!a->token) { /* nothing to sign in to */
        api_respond(api, res, 303, NULL, "Location: /\r\n", "", 0);
        return;
    }
    char given[PATRON_CONFIG_VALUE_MAX + 1];
    int n = patron_http_query_param(req->body, "token", given, sizeof(given));
    if (n <= 0 || !same_secret(given, (size_t)n, a->token, a->token_len)) {
        login_page(api, res, true);
        return;
    }
    char headers[256];
    snprintf(headers, sizeof(headers),
             "Location: /\r\nCache-Control: no-store\r\n"
             "Set-Cookie: " API_AUTH_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict\r\n",
             a->session);
    api_respond(api, res, 303, NULL, headers, "", 0);
}

bool api_auth_gate(const struct api_auth *a, struct api *api, const struct patron_http_request *req,
                   struct patron_http_response *res)
{
    if (strcmp(req->path, API_AUTH_LOGIN_PATH) == 0) {
        login(a, api, req, res);
        return false;
    }
    if (!a->token || bearer_ok(a, req))
        return true;
    if (is_read(req) && dashboard_reads(req->path) && cookie_ok(a, req))
        return true;
    if (is_read(req) && is_page(req->path))
        login_page(api, res, false);
    else
        api_respond(api, res, 401, "application/json", challenge, unauthorized,
                    sizeof(unauthorized) - 1);
    return false;
}
