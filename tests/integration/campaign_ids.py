"""The campaign ids and choices of campaign_rules.c, written again from the
definition (SipHash-2-4 over length-prefixed fields, fixed keys), so that a
test can predict a message id, a variant and the control group without
asking the code under test."""
import struct

M64 = (1 << 64) - 1
KEY_ID_A = (0x7061747230316D69, 0x6473736167655F31)
KEY_ID_B = (0x7061747230326D69, 0x6473736167655F32)
KEY_CHOICE = (0x70617472306E6368, 0x6F6963655F6B6579)


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & M64


def siphash24(data, k0, k1):
    v0, v1 = 0x736F6D6570736575 ^ k0, 0x646F72616E646F6D ^ k1
    v2, v3 = 0x6C7967656E657261 ^ k0, 0x7465646279746573 ^ k1

    def rnd(v0, v1, v2, v3):
        v0 = (v0 + v1) & M64; v1 = _rotl(v1, 13); v1 ^= v0; v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & M64; v3 = _rotl(v3, 16); v3 ^= v2
        v0 = (v0 + v3) & M64; v3 = _rotl(v3, 21); v3 ^= v0
        v2 = (v2 + v1) & M64; v1 = _rotl(v1, 17); v1 ^= v2; v2 = _rotl(v2, 32)
        return v0, v1, v2, v3

    n = len(data) - len(data) % 8
    for i in range(0, n, 8):
        m = struct.unpack_from("<Q", data, i)[0]
        v3 ^= m
        v0, v1, v2, v3 = rnd(*rnd(v0, v1, v2, v3))
        v0 ^= m
    b = (len(data) & 0xFF) << 56
    for i, c in enumerate(data[n:]):
        b |= c << (8 * i)
    v3 ^= b
    v0, v1, v2, v3 = rnd(*rnd(v0, v1, v2, v3))
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = rnd(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _fields(*parts):
    out = bytearray()
    for p in parts:
        if isinstance(p, int):
            out += struct.pack("<q", p)
        else:
            b = p.encode()[:255]
            out.append(len(b))
            out += b
    return bytes(out)


def message_id(campaign, customer, event_id, trigger_at_ms):
    if event_id:
        h = _fields("message", campaign, customer, "event", event_id)
    else:
        h = _fields("message", campaign, customer, "time", trigger_at_ms)
    return "%016x%016x" % (siphash24(h, *KEY_ID_A), siphash24(h, *KEY_ID_B))


def in_control(customer, basis_points):
    return siphash24(_fields("control:", customer), *KEY_CHOICE) % 10000 < basis_points


def variant(campaign, customer, variants):
    """variants: [(id, weight)] in file order."""
    r = siphash24(_fields("variant:", campaign, customer), *KEY_CHOICE) % sum(w for _, w in variants)
    for vid, w in variants:
        if r < w:
            return vid
        r -= w
    return variants[-1][0]
