/* Protobuf's canonical JSON into protobuf-c structs (see pb_json.h). */
#include "patron/pb_json.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "patron/num.h"

/* Nesting allowed in the messages themselves (the contracts nest 3 deep). */
#define DEPTH_MAX 16
/* 2^53: the largest integer a JSON number (a double) holds exactly. */
#define EXACT_MAX 9007199254740992.0

struct ctx {
    ProtobufCAllocator *alloc;
    size_t max_repeated;
    char *why;
};

PATRON_PRINTF(2, 3)
static int fail(struct ctx *c, const char *fmt, ...)
{
    int n = snprintf(c->why, PATRON_JSON_REASON_MAX, "json: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why + n, PATRON_JSON_REASON_MAX - (size_t)n, fmt, ap);
    va_end(ap);
    return PATRON_EINVAL;
}

static void *take(struct ctx *c, size_t n)
{
    return c->alloc->alloc(c->alloc->allocator_data, n ? n : 1);
}

/* Values in the document, at most: every value but the first follows a ',',
 * '[' or ':'; bytes inside strings do not count. */
static size_t values_upper_bound(const char *s, size_t len)
{
    size_t n = 1;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (in_string) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_string = false;
        } else if (ch == '"') {
            in_string = true;
        } else if (ch == ',' || ch == '[' || ch == ':') {
            n++;
        }
    }
    return n;
}

/* Whether key names the field: its .proto name, or the JSON name protoc
 * derives from it (each '_' dropped and the letter after it upper-cased). */
static bool names_field(const char *name, const char *key)
{
    if (strcmp(name, key) == 0)
        return true;
    const char *n = name, *k = key;
    while (*n) {
        if (*n == '_' && n[1]) {
            n++;
            char up = (*n >= 'a' && *n <= 'z') ? (char)(*n - 'a' + 'A') : *n;
            if (*k++ != up)
                return false;
            n++;
            continue;
        }
        if (*k++ != *n++)
            return false;
    }
    return *k == '\0';
}

static const ProtobufCFieldDescriptor *field_of(const ProtobufCMessageDescriptor *d,
                                                const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (names_field(d->fields[i].name, key))
            return &d->fields[i];
    return NULL;
}

static size_t element_size(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_ENUM:
        return 4;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return 8;
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    }
    return 0;
}

/* An integer value within [min, max]: a JSON integer, a real that is a
 * whole number held exactly, or a decimal string. */
static int read_signed(struct ctx *c, const char *name, json_t *v, int64_t min, int64_t max,
                       int64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (x < min || x > max)
            return fail(c, "%s: %lld is out of range", name, (long long)x);
        *out = (int64_t)x;
        return 0;
    }
    if (json_is_real(v)) {
        double x = json_real_value(v);
        if (x != floor(x) || fabs(x) > EXACT_MAX || x < (double)min || x > (double)max)
            return fail(c, "%s: %g is not an integer in range", name, x);
        *out = (int64_t)x;
        return 0;
    }
    if (json_is_string(v)) {
        if (patron_parse_i64(json_string_value(v), json_string_length(v), min, max, out))
            return fail(c, "%s: \"%.32s\" is not an integer in range", name, json_string_value(v));
        return 0;
    }
    return fail(c, "%s: expected an integer", name);
}

static int read_unsigned(struct ctx *c, const char *name, json_t *v, uint64_t max, uint64_t *out)
{
    if (json_is_string(v)) {
        if (patron_parse_u64(json_string_value(v), json_string_length(v), 0, max, out))
            return fail(c, "%s: \"%.32s\" is not an integer in range", name, json_string_value(v));
        return 0;
    }
    int64_t x = 0;
    int rc = read_signed(c, name, v, 0, max > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)max, &x);
    if (rc == 0)
        *out = (uint64_t)x;
    return rc;
}

static int read_double(struct ctx *c, const char *name, json_t *v, double *out)
{
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (strcmp(s, "NaN") == 0)
            *out = NAN;
        else if (strcmp(s, "Infinity") == 0)
            *out = INFINITY;
        else if (strcmp(s, "-Infinity") == 0)
            *out = -INFINITY;
        else
            return fail(c, "%s: expected a number", name);
        return 0;
    }
    return fail(c, "%s: expected a number", name);
}

static int read_message(struct ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj, int depth,
                        ProtobufCMessage **out);

/* One value of field f into dst (a member, or an element of a repeated). */
static int read_value(struct ctx *c, const ProtobufCFieldDescriptor *f, json_t *v, int depth,
                      void *dst)
{
    const char *name = f->name;
    int64_t i = 0;
    uint64_t u = 0;
    double x = 0;
    int rc = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        if ((rc = read_signed(c, name, v, INT32_MIN, INT32_MAX, &i)) == 0)
            *(int32_t *)dst = (int32_t)i;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        if ((rc = read_signed(c, name, v, INT64_MIN, INT64_MAX, &i)) == 0)
            *(int64_t *)dst = i;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        if ((rc = read_unsigned(c, name, v, UINT32_MAX, &u)) == 0)
            *(uint32_t *)dst = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        if ((rc = read_unsigned(c, name, v, UINT64_MAX, &u)) == 0)
            *(uint64_t *)dst = u;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        if ((rc = read_double(c, name, v, &x)) == 0)
            *(double *)dst = x;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        if ((rc = read_double(c, name, v, &x)) == 0)
            *(float *)dst = (float)x;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(c, "%s: expected true or false", name);
        *(protobuf_c_boolean *)dst = json_is_true(v);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(f->descriptor, json_string_value(v));
            if (!ev)
                return fail(c, "%s: unknown value \"%.32s\"", name, json_string_value(v));
            *(int32_t *)dst = ev->value;
        } else if ((rc = read_signed(c, name, v, INT32_MIN, INT32_MAX, &i)) == 0) {
            *(int32_t *)dst = (int32_t)i; /* proto3 enums are open */
        }
        break;
    case PROTOBUF_C_TYPE_STRING: {
        if (!json_is_string(v))
            return fail(c, "%s: expected a string", name);
        size_t n = json_string_length(v); /* jansson refuses \u0000: no NUL inside */
        char *s = take(c, n + 1);
        if (!s)
            return PATRON_ENOMEM;
        memcpy(s, json_string_value(v), n + 1);
        *(char **)dst = s;
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE:
        rc = read_message(c, f->descriptor, v, depth + 1, (ProtobufCMessage **)dst);
        break;
    case PROTOBUF_C_TYPE_BYTES:
        return fail(c, "%s: bytes fields are not read", name);
    }
    return rc;
}

static int read_repeated(struct ctx *c, ProtobufCMessage *m, const ProtobufCFieldDescriptor *f,
                         json_t *v, int depth)
{
    if (!json_is_array(v))
        return fail(c, "%s: expected an array", f->name);
    size_t n = json_array_size(v), size = element_size(f->type);
    if (n > c->max_repeated)
        return fail(c, "%s: more than %zu elements", f->name, c->max_repeated);
    char *array = NULL;
    if (n) {
        array = take(c, n * size);
        if (!array)
            return PATRON_ENOMEM;
        memset(array, 0, n * size);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (json_is_null(e))
            return fail(c, "%s[%zu]: null in a list", f->name, i);
        int rc = read_value(c, f, e, depth, array + i * size);
        if (rc)
            return rc;
    }
    *(size_t *)((char *)m + f->quantifier_offset) = n;
    *(void **)((char *)m + f->offset) = array;
    return 0;
}

static int read_message(struct ctx *c, const ProtobufCMessageDescriptor *d, json_t *obj, int depth,
                        ProtobufCMessage **out)
{
    if (depth > DEPTH_MAX)
        return fail(c, "nested deeper than %d", DEPTH_MAX);
    if (!json_is_object(obj))
        return fail(c, "%s: expected an object", d->short_name);
    ProtobufCMessage *m = take(c, d->sizeof_message);
    if (!m)
        return PATRON_ENOMEM;
    d->message_init(m);
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        const ProtobufCFieldDescriptor *f = field_of(d, key);
        if (!f || json_is_null(v))
            continue; /* unknown fields are ignored; null is the default */
        int rc;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            rc = read_repeated(c, m, f, v, depth);
        } else {
            if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
                uint32_t *which = (uint32_t *)((char *)m + f->quantifier_offset);
                if (*which != 0)
                    return fail(c, "%s: two members of a oneof", f->name);
                *which = f->id;
            } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL &&
                       f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_STRING) {
                *(protobuf_c_boolean *)((char *)m + f->quantifier_offset) = 1;
            }
            rc = read_value(c, f, v, depth, (char *)m + f->offset);
        }
        if (rc)
            return rc;
    }
    *out = m;
    return 0;
}

ProtobufCMessage *patron_pb_from_json(const ProtobufCMessageDescriptor *d,
                                      ProtobufCAllocator *alloc, const char *buf, size_t len,
                                      size_t max_repeated, char why[PATRON_JSON_REASON_MAX])
{
    struct ctx c = {alloc, max_repeated, why};
    why[0] = '\0';
    if (!d || !alloc || !buf) {
        (void)fail(&c, "nothing to read");
        return NULL;
    }
    if (len > PATRON_JSON_BYTES_MAX) {
        (void)fail(&c, "more than %d bytes", PATRON_JSON_BYTES_MAX);
        return NULL;
    }
    if (values_upper_bound(buf, len) > PATRON_JSON_VALUES_MAX) {
        (void)fail(&c, "more than %d values", PATRON_JSON_VALUES_MAX);
        return NULL;
    }
    json_error_t err;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        (void)fail(&c, "line %d column %d: %s", err.line, err.column, err.text);
        return NULL;
    }
    ProtobufCMessage *m = NULL;
    if (read_message(&c, d, root, 0, &m) == PATRON_ENOMEM)
        (void)fail(&c, "out of room");
    json_decref(root);
    return m;
}
