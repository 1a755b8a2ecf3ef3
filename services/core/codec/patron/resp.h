/*
 * RESP (the Redis serialization protocol) where Patron parses it itself:
 * a command as hiredis formats it, split back into its arguments (the kv
 * handle routes a formatted command by its key on a cluster). Replies are
 * parsed by hiredis' reader. Pure; the input is never trusted.
 */
#ifndef PATRON_RESP_H
#define PATRON_RESP_H

#include "patron/common.h"

/* Most arguments one command may have. */
#define PATRON_RESP_ARGS_MAX (1 << 20)

/* Splits one command in RESP (an array of bulk
 * strings, as redisvFormatCommand writes it) into arguments pointing into
 * `resp`. Returns the number of arguments n and fills argv/lens only when
 * n <= max (call again with room for n); PATRON_EINVAL unless the `len`
 * bytes are exactly one such array with 1..PATRON_RESP_ARGS_MAX elements. */
int patron_resp_split(const char *resp, size_t len, const char **argv, size_t *lens,
                      size_t max) PATRON_MUST_USE;

#endif
