/* The three encodings of the input topics (see event_wire.h). */
#include "patron/event_wire.h"

#include <stdio.h>
#include <string.h>

#include "patron/event_check.h"
#include "patron/event_codec.h"
#include "patron/pb_unpack.h"

/* Magic byte and schema id. */
#define REGISTRY_HEAD 5

enum patron_wire patron_wire_of(const uint8_t *buf, size_t len)
{
    if (len && buf[0] == 0x00)
        return PATRON_WIRE_REGISTRY;
    if (len && buf[0] == '{')
        return PATRON_WIRE_JSON;
    return PATRON_WIRE_PROTOBUF;
}

/* Past the framing of a Schema Registry value: *body and *body_len are
 * what follows it. PATRON_EINVAL with the reason in why. */
static int registry_body(const uint8_t *buf, size_t len, const uint8_t **body, size_t *body_len,
                         char *why)
{
    if (len < REGISTRY_HEAD + 1) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "schema registry: framing cut short");
        return PATRON_EINVAL;
    }
    const uint8_t *at = buf + REGISTRY_HEAD, *end = buf + len;
    if (*at == '{') { /* Confluent's JSON Schema serializer: no index list */
        *body = at;
        *body_len = (size_t)(end - at);
        return 0;
    }
    /* The list is [0] in one of its spellings: the short form 0x00; a count
     * of one then index 0, the count zig-zag encoded (0x02, the format's
     * definition) or not (0x01, what older Confluent clients wrote). */
    uint64_t count, index;
    if (patron_pb_unpack_varint(&at, end, 10, &count)) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "schema registry: bad message-index list");
        return PATRON_EINVAL;
    }
    if (count != 0) {
        if ((count != 1 && count != 2) || patron_pb_unpack_varint(&at, end, 10, &index) ||
            index != 0) {
            snprintf(why, PATRON_WIRE_REASON_MAX,
                     "schema registry: message index is not the file's first message");
            return PATRON_EINVAL;
        }
    }
    *body = at;
    *body_len = (size_t)(end - at);
    return 0;
}

/* Which of the three: *body is the message's own bytes, *json whether they
 * are JSON. PATRON_EINVAL for a framing that does not hold. */
static int unframe(const uint8_t *buf, size_t len, const uint8_t **body, size_t *body_len,
                   bool *json, char *why)
{
    *body = buf;
    *body_len = len;
    switch (patron_wire_of(buf, len)) {
    case PATRON_WIRE_REGISTRY:
        if (registry_body(buf, len, body, body_len, why))
            return PATRON_EINVAL;
        *json = *body_len && (*body)[0] == '{';
        return 0;
    case PATRON_WIRE_JSON:
        *json = true;
        return 0;
    case PATRON_WIRE_PROTOBUF:
        break;
    }
    *json = false;
    return 0;
}

Patron__V1__Event *patron_event_decode_wire(ProtobufCAllocator *alloc, const uint8_t *buf,
                                            size_t len, char why[PATRON_WIRE_REASON_MAX])
{
    const uint8_t *body;
    size_t body_len;
    bool json;
    why[0] = '\0';
    if (unframe(buf, len, &body, &body_len, &json, why))
        return NULL;
    if (json)
        return (Patron__V1__Event *)patron_pb_from_json(&patron__v1__event__descriptor, alloc,
                                                        (const char *)body, body_len,
                                                        PATRON_WIRE_REPEATED_MAX, why);
    const char *reason;
    Patron__V1__Event *ev = patron_event_unpack_why(alloc, body, body_len, &reason);
    if (!ev)
        snprintf(why, PATRON_WIRE_REASON_MAX, "%s", reason);
    return ev;
}

/* The first string field of d, at any depth of its sub-messages, whose
 * value in buf holds a NUL, or NULL. protobuf-c copies every byte, and a
 * C string ends at the NUL: "item\0x" would read as "item". Any occurrence
 * counts, a replaced one too. buf has decoded already: its framing holds
 * (and nesting is bounded by its length). */
static const char *nul_string(const ProtobufCMessageDescriptor *d, const uint8_t *buf, size_t len)
{
    const uint8_t *at = buf, *end = buf + len;
    while (at < end) {
        struct patron_pb_field f;
        if (patron_pb_unpack_field(&at, end, &f))
            return NULL;
        if (f.wire != PATRON_PB_LEN || !f.len)
            continue;
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, f.number);
        if (!fd)
            continue;
        if (fd->type == PROTOBUF_C_TYPE_STRING && memchr(f.data, 0, f.len))
            return fd->name;
        if (fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            const char *in = nul_string(fd->descriptor, f.data, f.len);
            if (in)
                return in;
        }
    }
    return NULL;
}

int patron_event_decode(const void *buf, size_t len, Patron__V1__Event **out, const char **reason)
{
    *out = NULL;
    if (len > PATRON_EVENT_MAX_BYTES) {
        *reason = "decode: event too big";
        return PATRON_ETOOBIG;
    }
    static const uint8_t empty[1];
    const uint8_t *bytes = buf ? buf : empty;
    Patron__V1__Event *ev = patron__v1__event__unpack(NULL, len, bytes);
    if (!ev) {
        *reason = "decode: not a patron.v1.Event";
        return PATRON_EINVAL;
    }
    int rc = 0;
    if (nul_string(&patron__v1__event__descriptor, bytes, len)) {
        *reason = "decode: a string holds a NUL";
        rc = PATRON_EINVAL;
    } else {
        rc = patron_event_check(ev, reason);
    }
    if (rc < 0) {
        patron__v1__event__free_unpacked(ev, NULL);
        return rc;
    }
    *out = ev;
    return 0;
}

Patron__V1__ItemUpdate *patron_item_update_decode_wire(ProtobufCAllocator *alloc,
                                                       const uint8_t *buf, size_t len,
                                                       char why[PATRON_WIRE_REASON_MAX])
{
    const uint8_t *body;
    size_t body_len;
    bool json;
    why[0] = '\0';
    if (unframe(buf, len, &body, &body_len, &json, why))
        return NULL;
    if (json)
        return (Patron__V1__ItemUpdate *)patron_pb_from_json(&patron__v1__item_update__descriptor,
                                                             alloc, (const char *)body, body_len,
                                                             PATRON_WIRE_REPEATED_MAX, why);
    static const uint8_t empty[1];
    Patron__V1__ItemUpdate *u =
        patron__v1__item_update__unpack(alloc, body_len, body_len ? body : empty);
    if (!u) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "decode: not an ItemUpdate");
        return NULL;
    }
    const char *nul = nul_string(&patron__v1__item_update__descriptor, body, body_len);
    if (nul) {
        snprintf(why, PATRON_WIRE_REASON_MAX, "%s has invalid bytes", nul);
        return NULL; /* the arena has it */
    }
    return u;
}
