/* GET /v1/segments/clusters and GET /v1/model (see segments.h). */
#include "segments.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api.h"
#include "model.h"
#include "patron/model_codec.h"

static void answer(struct api *api, struct patron_http_response *res, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(body);
    if (text)
        api_respond_json_text(api, res, 200, text);
    else
        api_respond_error(api, res, 500, "internal", "response did not render");
    free(text);
}

bool api_segments_route(const struct api_model *m, struct api *api,
                        const struct patron_http_request *req, struct patron_http_response *res)
{
    bool clusters = strcmp(req->path, "/v1/segments/clusters") == 0;
    bool model = strcmp(req->path, "/v1/model") == 0;
    if (!clusters && !model)
        return false;
    if (strcmp(req->method, "GET") != 0) {
        api_respond_error(api, res, 405, "method_not_allowed", "use GET");
    } else if (model) {
        answer(api, res, api_model_to_json(m));
    } else {
        const struct patron_clusters *c = api_model_clusters(m);
        if (c)
            answer(api, res, patron_clusters_to_json(c));
        else
            api_respond_error(api, res, 503, "unavailable", "the clusters are not fitted yet");
    }
    return true;
}
