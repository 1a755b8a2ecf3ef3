/*
 * Who may call patron-api (docs/contracts/api.md, "Authentication").
 *
 * Without PATRON_API_TOKEN every route is open. With it, every route the
 * API serves needs `Authorization: Bearer <token>` (compared in constant
 * time); /healthz, /readyz and /metrics are answered by the service shell
 * before the API sees the request, and stay open.
 *
 * A browser cannot send that header when it loads the dashboard, so the
 * dashboard has a login form instead: GET of the page without credentials
 * answers 401 with the form, which POSTs the token (form-encoded, field
 * `token`) to /dashboard/login; the right token gets a 303 to / and a
 * session cookie (patron_session, HttpOnly, SameSite=Strict, Path=/). Its
 * value is derived from the token (SHA-1 of a fixed label and the token),
 * so the token itself never sits in the browser; changing the token ends
 * every session. The cookie opens only what the page reads — GET and HEAD
 * of the page, its files, /v1/dashboard/... and /v1/campaigns/stats — never a
 * customer's data or an erasure, and SameSite keeps other sites from using
 * it.
 *
 * Ownership: api_auth_new copies the token. Loop thread only.
 */
#ifndef PATRON_API_AUTH_H
#define PATRON_API_AUTH_H

#include "patron/http.h"

struct api;
struct api_auth;

#define API_AUTH_COOKIE "patron_session"
#define API_AUTH_LOGIN_PATH "/dashboard/login"

/* token NULL: no authentication. */
struct api_auth *api_auth_new(const char *token);
void api_auth_free(struct api_auth *a);

/* True when the request may go on to its route; false when it was answered
 * here (401, the login form, or the login itself). */
bool api_auth_gate(const struct api_auth *a, struct api *api, const struct patron_http_request *req,
                   struct patron_http_response *res);

#endif
