/*
 * patron.events payloads: the hand-written decoder (patron_event_unpack,
 * ingest's hot path) against protobuf-c's as the oracle, then the contract
 * check and the DLQ decoder (patron_event_decode) on the same bytes.
 *
 * Properties: ours accepts nothing protobuf-c refuses, and refuses more only
 * for a value over one of the contract's limits, which patron_event_decode
 * then refuses too; accepted by both, the repacked messages are the same
 * (unknown fields aside: ours skips them); the hand-written
 * one never frees through the allocator; the check gives the same verdict
 * on both structs; patron_event_decode accepts exactly what decodes and
 * passes the check, with a reason whenever it refuses; a checked event's
 * value is within 0 .. PATRON_EVENT_VALUE_MAX_CENTS. The same bytes go
 * through patron_event_decode_wire (every encoding ingest reads): an event
 * or a reason, never both.
 */
#include "fuzz.h"
#include "patron/event_check.h"
#include "patron/event_codec.h"
#include "patron/event_wire.h"

typedef void (*visit_fn)(ProtobufCMessage *m, void *ud);

/* Every message reachable from m (set oneof members and repeated ones). */
static void walk(ProtobufCMessage *m, visit_fn f, void *ud)
{
    f(m, ud);
    const ProtobufCMessageDescriptor *d = m->descriptor;
    char *base = (char *)m;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *fd = &d->fields[i];
        if (fd->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(size_t *)(base + fd->quantifier_offset);
            ProtobufCMessage **v = *(ProtobufCMessage ***)(base + fd->offset);
            for (size_t k = 0; k < n; k++)
                if (v[k])
                    walk(v[k], f, ud);
            continue;
        }
        if ((fd->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(uint32_t *)(base + fd->quantifier_offset) != fd->id)
            continue;
        ProtobufCMessage *sub = *(ProtobufCMessage **)(base + fd->offset);
        if (sub)
            walk(sub, f, ud);
    }
}

/* Unknown-field counts saved, zeroed and put back, so that the oracle's
 * message packs without them and is still freed whole. */
struct unknowns {
    unsigned v[4096];
    size_t n, i;
    bool overflow;
};

static void unknowns_hide(ProtobufCMessage *m, void *ud)
{
    struct unknowns *u = ud;
    if (u->n == sizeof(u->v) / sizeof(u->v[0])) {
        u->overflow = true;
        return;
    }
    u->v[u->n++] = m->n_unknown_fields;
    m->n_unknown_fields = 0;
}

static void unknowns_restore(ProtobufCMessage *m, void *ud)
{
    struct unknowns *u = ud;
    if (u->i < u->n)
        m->n_unknown_fields = u->v[u->i++];
}

static void no_unknowns(ProtobufCMessage *m, void *ud)
{
    (void)ud;
    FUZZ_CHECK(m->n_unknown_fields == 0, "patron_event_unpack kept %u unknown fields",
               m->n_unknown_fields);
}

static uint8_t *pack(const Patron__V1__Event *ev, size_t *len)
{
    *len = patron__v1__event__get_packed_size(ev);
    uint8_t *buf = malloc(*len ? *len : 1);
    FUZZ_CHECK(buf, "out of memory");
    FUZZ_CHECK(patron__v1__event__pack(ev, buf) == *len, "pack wrote another size");
    return buf;
}

static void same_message(Patron__V1__Event *got, Patron__V1__Event *want)
{
    walk(&got->base, no_unknowns, NULL);
    static struct unknowns u; /* 16 KiB: not on the stack */
    u.n = u.i = 0;
    u.overflow = false;
    walk(&want->base, unknowns_hide, &u);
    size_t got_len, want_len;
    uint8_t *got_buf = pack(got, &got_len);
    uint8_t *want_buf = pack(want, &want_len);
    walk(&want->base, unknowns_restore, &u);
    if (!u.overflow)
        FUZZ_CHECK(got_len == want_len && memcmp(got_buf, want_buf, got_len) == 0,
                   "patron_event_unpack and protobuf-c decoded different messages (%zu and %zu "
                   "bytes repacked)",
                   got_len, want_len);
    free(got_buf);
    free(want_buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_arena a = {0};
    ProtobufCAllocator alloc = {
        .alloc = fuzz_arena_alloc, .free = fuzz_arena_free_one, .allocator_data = &a};
    const char *limit = NULL;
    Patron__V1__Event *got = patron_event_unpack_why(&alloc, data, size, &limit);
    Patron__V1__Event *want = patron__v1__event__unpack(NULL, size, data);
    FUZZ_CHECK(!got || want, "ours accepts what protobuf-c rejects");
    /* ours refuses more: a value over one of the contract's limits, which
     * the DLQ decoder must refuse too (checked below) */
    bool over_limit = !got && want;
    if (over_limit) {
        FUZZ_CHECK(limit && strcmp(limit, "decode: not a patron.v1.Event") != 0,
                   "ours rejects what protobuf-c accepts, as \"%s\"", limit ? limit : "NULL");
        patron__v1__event__free_unpacked(want, NULL);
        want = NULL;
    }
    FUZZ_CHECK(a.frees == 0, "the decoder called the allocator's free %zu times", a.frees);

    const char *got_reason = NULL, *want_reason = NULL;
    int got_check = 0, want_check = 0;
    if (got) {
        same_message(got, want);
        got_check = patron_event_check(got, &got_reason);
        want_check = patron_event_check(want, &want_reason);
        FUZZ_CHECK(got_check == want_check, "check verdicts differ: %d (%s), %d (%s)", got_check,
                   got_reason ? got_reason : "-", want_check, want_reason ? want_reason : "-");
        FUZZ_CHECK((got_check == 0) == (got_reason == NULL), "check %d with reason %s", got_check,
                   got_reason ? got_reason : "NULL");
        if (got_check == 0) {
            int64_t v = patron_event_value_cents(got);
            FUZZ_CHECK(v >= 0 && v <= PATRON_EVENT_VALUE_MAX_CENTS, "value %lld", (long long)v);
        }
    }

    Patron__V1__Event *ev = (Patron__V1__Event *)(uintptr_t)1;
    const char *reason = NULL;
    int rc = patron_event_decode(data, size, &ev, &reason);
    if (rc == 0) {
        FUZZ_CHECK(ev && !reason, "accepted with a reason or without an event");
        FUZZ_CHECK(got && got_check == 0, "patron_event_decode accepted what fails the check");
        FUZZ_CHECK(!over_limit, "patron_event_decode accepts what is over a limit (%s)", limit);
        patron__v1__event__free_unpacked(ev, NULL);
    } else {
        FUZZ_CHECK(!ev && reason && rc < 0, "refused (%d) without a reason or with an event", rc);
        over_limit = false; /* refused by both */
        /* it also refuses a string holding a NUL, which the structs cannot show */
        if (size <= PATRON_EVENT_MAX_BYTES && strcmp(reason, "decode: a string holds a NUL") != 0)
            FUZZ_CHECK(!got || got_check != 0, "patron_event_decode refused a valid event: %s",
                       reason);
    }

    /* ingest's decoder of every encoding (protobuf, schema-registry framing,
     * JSON): an event or a reason, never both, from the arena only */
    struct fuzz_arena w = {0};
    ProtobufCAllocator walloc = {
        .alloc = fuzz_arena_alloc, .free = fuzz_arena_free_one, .allocator_data = &w};
    char why[PATRON_WIRE_REASON_MAX];
    memset(why, 'x', sizeof(why));
    Patron__V1__Event *wire = patron_event_decode_wire(&walloc, data, size, why);
    FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL, "why not NUL-terminated");
    FUZZ_CHECK(wire ? why[0] == '\0' : why[0] != '\0', "event %p with why \"%s\"", (void *)wire,
               why);
    if (wire) {
        const char *r = NULL;
        (void)patron_event_check(wire, &r);
        (void)patron_event_value_cents(wire);
    }
    fuzz_arena_reset(&w);
    if (want)
        patron__v1__event__free_unpacked(want, NULL);
    fuzz_arena_reset(&a);
    return 0;
}
