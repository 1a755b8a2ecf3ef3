#include "patron/graph.h"

#include <string.h>

static bool in_prior(const char (*prior)[PATRON_ID_MAX + 1], size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strncmp(prior[i], id, PATRON_ID_MAX + 1) == 0)
            return true;
    return false;
}

size_t patron_graph_new_items(const char (*prior_bought)[PATRON_ID_MAX + 1], size_t n_prior,
                              const Patron__V1__Purchase *purchase, const char **out, size_t max)
{
    if (!purchase)
        return 0;
    size_t lines =
        purchase->n_items < PATRON_GRAPH_LINES_MAX ? purchase->n_items : PATRON_GRAPH_LINES_MAX;
    size_t n = 0;
    for (size_t i = 0; i < lines && n < max; i++) {
        const Patron__V1__LineItem *li = purchase->items[i];
        if (!li || !li->item_id || !li->item_id[0])
            continue;
        if (in_prior(prior_bought, n_prior, li->item_id))
            continue;
        bool seen = false;
        for (size_t k = 0; k < n && !seen; k++)
            seen = strcmp(out[k], li->item_id) == 0;
        if (!seen)
            out[n++] = li->item_id;
    }
    return n;
}

size_t patron_graph_pairs(const char (*prior_bought)[PATRON_ID_MAX + 1], size_t n_prior,
                          size_t history, const Patron__V1__Purchase *purchase,
                          struct patron_graph_pair *out, size_t max)
{
    const char *fresh[PATRON_GRAPH_LINES_MAX];
    size_t k =
        patron_graph_new_items(prior_bought, n_prior, purchase, fresh, PATRON_ARRAY_LEN(fresh));
    size_t h = history < n_prior ? history : n_prior;
    size_t n = 0;
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < k; j++) {
            if (j == i)
                continue;
            if (n == max)
                return n;
            out[n++] = (struct patron_graph_pair){fresh[i], fresh[j]};
        }
        for (size_t j = 0; j < h; j++) {
            if (n + 2 > max)
                return n;
            out[n++] = (struct patron_graph_pair){fresh[i], prior_bought[j]};
            out[n++] = (struct patron_graph_pair){prior_bought[j], fresh[i]};
        }
    }
    return n;
}
