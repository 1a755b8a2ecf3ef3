"""One bad record never stalls a pod: poison pills go to the DLQ, the partition moves on.

Each case puts a poison pill in front of 200 other customers' purchases on
the same 4 partitions, and all 200 must be applied within about 10 s:

- a 1,020,000-byte record (a broker's default topic limit takes it,
  librdkafka's default message.max.bytes does not): dead-lettered cut, with
  its original size in a header;
- a stored profile that does not decode, and a customer key of another Redis
  type (MGET answers nil for it): their customers' events go to the DLQ, the
  values stay as they were, counted in /metrics;
- a neighbour list key of another type: left as it is, counted; a garbage
  neighbour list string is rebuilt (statistics);
- a catalog item's key of another type: its update is dead-lettered, the
  value kept;
- ids holding a NUL: "victim3\\0x" is not victim3, "e\\0a" and "e\\0b" are
  not one event: all three go to the DLQ.

And the retriable kind still pauses and replays without loss: the broker
stops answering (SIGSTOP) long enough for deliveries to time out; every
customer is then applied exactly once, and nothing went to the DLQ.

On main the first three stall the pod (a reset replaying the same batch
for ever) and the NUL ids are applied to other customers.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, consume_all, http, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 2}
T0 = 1700000000000
OTHERS = 200


def producer(brokers):
    # the site's producer: it may send what its topic takes, over librdkafka's default
    return Producer({"bootstrap.servers": brokers, "message.max.bytes": 2000000, "linger.ms": 10})


def purchase(ev, cid, eid, item="i1", t=T0):
    e = ev.Event(event_id=eid, customer_id=cid, occurred_at_ms=t)
    e.purchase.items.add(item_id=item, quantity=1, unit_price_cents=1000)
    return e


def send(p, key, value):
    errors = []
    p.produce("patron.events", key=key, value=value, on_delivery=lambda err, m: err and errors.append(err))
    p.poll(0)
    return errors


def send_others(p, ev, tag, n=OTHERS):
    for i in range(n):
        e = purchase(ev, f"{tag}-{i}", f"{tag}-e{i}")
        send(p, e.customer_id.encode(), e.SerializeToString())
    assert p.flush(30) == 0


def all_applied(r, tag, n=OTHERS):
    return r.exists(*[f"{{c:{tag}-{i}}}" for i in range(n)]) == n


def dead_letters(brokers):
    """[(headers dict, key, value)] of every dead letter so far."""
    out = []
    for m in consume_all(brokers, "patron.dlq", timeout=30):
        h = {k: v.decode(errors="replace") for k, v in (m.headers() or [])}
        out.append((h, m.key(), m.value()))
    return out


def timed(what, predicate, timeout):
    start = time.time()
    wait_for(what, predicate, timeout=timeout, interval=0.1)
    return time.time() - start


LIMIT = 20  # seconds: "within about 10 s", with room for a loaded machine


class Rig:
    """The stack every case shares, and what the cases need of it."""

    def __init__(self, st):
        self.st = st
        self.ev = proto_modules(st.dir)
        self.r = st.start_redis()
        self.brokers = st.start_kafka(TOPICS)
        # Small batches, one in flight: the broker can stop mid-stream (the
        # retriable case), and a delivery it does not answer within 3 s fails.
        self.ingest = st.start_service("patron-ingest", PATRON_BATCH_MAX="5", PATRON_INFLIGHT_BATCHES="1",
                                       PATRON_RDKAFKA_MESSAGE_TIMEOUT_MS="3000")
        self.api = st.start_service("patron-api")
        self.p = producer(self.brokers)

    def metric(self, name, labels=""):
        return metric(self.ingest.http_port, name, labels)


def case_record_too_big_for_the_dlq(rig):
    assert not send(rig.p, b"big-one", b"\x0a" * 1020000)
    send_others(rig.p, rig.ev, "a")
    took = timed("200 customers after the 1,020,000-byte record", lambda: all_applied(rig.r, "a"), LIMIT)
    letters = wait_for("its dead letter", lambda: [x for x in dead_letters(rig.brokers) if x[1] == b"big-one"],
                       timeout=LIMIT)
    h, _, value = letters[0]
    assert h.get("original.size") == "1020000" and h.get("truncated") == "true", h
    assert h["error"] == "event_id has invalid bytes", h  # 0x0a 0x0a...: ids of newlines
    assert len(value) < 1000000 and value == b"\x0a" * len(value)
    assert rig.metric("patron_ingest_dlq_truncated_total") >= 1
    print(f"ok: 1,020,000-byte record dead-lettered cut, 200 customers after it in {took:.1f}s")


def case_stored_profiles_unreadable(rig):
    r = rig.r
    r.set("{c:corrupt}", b"\x00\x00\x00\x00\x00\x00\x00\x07not a profile at all")
    r.hset("{c:hashed}", mapping={"orders": "3"})  # MGET answers nil for it
    r.set("{c:shorty}", b"xyz")  # shorter than a version
    for cid in ("corrupt", "hashed", "shorty"):
        for k in range(3):
            e = purchase(rig.ev, cid, f"{cid}-e{k}")
            send(rig.p, cid.encode(), e.SerializeToString())
    send_others(rig.p, rig.ev, "b")
    took = timed("200 customers next to corrupt stored profiles", lambda: all_applied(r, "b"), LIMIT)
    keys = (b"corrupt", b"hashed", b"shorty")
    letters = wait_for("their events in the DLQ", lambda: (lambda x: len(x) >= 9 and x)(
        [(k, h["error"]) for h, k, v in dead_letters(rig.brokers) if k in keys]), timeout=LIMIT)
    assert dict(letters) == {b"corrupt": "stored_profile_unreadable", b"hashed": "stored_profile_wrong_type",
                             b"shorty": "stored_profile_unreadable"}, letters
    assert r.get("{c:corrupt}") == b"\x00\x00\x00\x00\x00\x00\x00\x07not a profile at all", "overwritten"
    assert r.type("{c:hashed}") == b"hash" and r.hgetall("{c:hashed}") == {b"orders": b"3"}, "overwritten"
    assert r.get("{c:shorty}") == b"xyz"
    inv = "patron_ingest_stored_invalid_total"
    assert rig.metric(inv, 'key="profile",reason="unreadable"') >= 2
    assert rig.metric(inv, 'key="profile",reason="wrong_type"') >= 1
    print(f"ok: corrupt and wrong-type profiles kept, their events dead-lettered, 200 others in {took:.1f}s")


def case_neighbour_lists(rig):
    r = rig.r
    r.hset("{i:hot}:co", mapping={"x": "1"})
    r.set("{i:junk}:co", b"garbage that is no list")
    rebuilt = rig.metric("patron_ingest_graph_rebuilt_total")
    for i in range(20):
        e = rig.ev.Event(event_id=f"g-e{i}", customer_id=f"g-{i}", occurred_at_ms=T0)
        for item in ("hot", "cold", "junk"):
            e.purchase.items.add(item_id=item, quantity=1, unit_price_cents=100)
        send(rig.p, e.customer_id.encode(), e.SerializeToString())
    send_others(rig.p, rig.ev, "c")
    took = timed("200 customers next to a neighbour list of another type",
                 lambda: all_applied(r, "c") and all_applied(r, "g", 20), LIMIT)
    assert r.type("{i:hot}:co") == b"hash" and r.hgetall("{i:hot}:co") == {b"x": b"1"}, "overwritten"
    assert r.get("{i:junk}:co") != b"garbage that is no list", "not rebuilt"
    assert rig.metric("patron_ingest_stored_invalid_total", 'key="neighbours",reason="wrong_type"') >= 1
    assert rig.metric("patron_ingest_graph_rebuilt_total") > rebuilt
    assert r.type("{i:cold}:co") == b"string"  # the other lists go on
    print(f"ok: neighbour list of another type kept, garbage rebuilt, 200 others in {took:.1f}s")


def case_item_key_of_another_type(rig):
    from patron.v1 import catalog_pb2
    rig.r.set("{i:odd-item}", b"a string where a hash goes")
    for item in ("odd-item", "fine-item"):
        u = catalog_pb2.ItemUpdate(item_id=item, title=f"Title of {item}", price_cents=500, in_stock=True)
        rig.p.produce("patron.catalog", key=item.encode(), value=u.SerializeToString())
    send_others(rig.p, rig.ev, "i")
    took = timed("200 customers and the other item next to an item key of another type",
                 lambda: all_applied(rig.r, "i") and rig.r.hget("{i:fine-item}", "title") == b"Title of fine-item",
                 LIMIT)
    letters = wait_for("its dead letter", lambda: [h for h, k, v in dead_letters(rig.brokers) if k == b"odd-item"],
                       timeout=LIMIT)
    assert letters[0]["error"] == "stored_item_wrong_type" and letters[0]["source.topic"] == "patron.catalog", letters
    assert rig.r.get("{i:odd-item}") == b"a string where a hash goes", "overwritten"
    assert rig.metric("patron_ingest_stored_invalid_total", 'key="item",reason="wrong_type"') >= 1
    print(f"ok: an item key of another type kept, its update dead-lettered, the rest in {took:.1f}s")


def case_nul_ids(rig):
    e = purchase(rig.ev, "victim3", "v3-real")
    send(rig.p, b"victim3", e.SerializeToString())
    e = purchase(rig.ev, "victim3\x00x", "v3-fake")
    send(rig.p, b"victim3\x00x", e.SerializeToString())
    for eid in ("e\x00a", "e\x00b"):
        e = purchase(rig.ev, "victim4", eid)
        send(rig.p, b"victim4", e.SerializeToString())
    send_others(rig.p, rig.ev, "d")
    timed("200 customers next to NUL ids", lambda: all_applied(rig.r, "d"), LIMIT)
    nul = wait_for("their dead letters", lambda: (lambda x: len(x) >= 3 and x)(sorted(
        h["error"] for h, k, v in dead_letters(rig.brokers) if k in (b"victim3\x00x", b"victim4"))), timeout=LIMIT)
    assert nul == ["customer_id has invalid bytes", "event_id has invalid bytes", "event_id has invalid bytes"], nul
    assert not rig.r.exists("{c:victim4}"), "an event id with a NUL was applied"
    status, prof = http(rig.api.http_port, "GET", "/v1/customers/victim3/profile")
    assert status == 200 and prof["orders"] == 1, prof
    print("ok: NUL ids dead-lettered, victim3 keeps its one order")


def case_broker_down_is_retriable(rig):
    dlq_before = rig.metric("patron_ingest_dlq_total")
    resets_before = rig.metric("patron_ingest_resets_total")
    applied = rig.metric("patron_ingest_events_total", 'result="applied"')
    send_others(rig.p, rig.ev, "z", 300)
    wait_for("a few of them applied", lambda: rig.metric("patron_ingest_events_total", 'result="applied"')
             >= applied + 20, timeout=30, interval=0.01)
    rig.st.kafka.send_signal(signal.SIGSTOP)
    try:
        time.sleep(8)
    finally:
        rig.st.kafka.send_signal(signal.SIGCONT)
    wait_for("300 customers after the broker came back", lambda: all_applied(rig.r, "z", 300), timeout=120)
    resets = rig.metric("patron_ingest_resets_total") - resets_before
    assert resets >= 1, "the broker's silence never failed a batch: nothing retriable was tried"
    for i in range(0, 300, 37):
        status, prof = http(rig.api.http_port, "GET", f"/v1/customers/z-{i}/profile")
        assert status == 200 and prof["orders"] == 1, (i, prof)
    assert rig.metric("patron_ingest_dlq_total") == dlq_before, "a retriable fault dead-lettered"
    print(f"ok: broker stopped 8 s: {resets:.0f} resets, 300 customers applied once, no dead letter")


CASES = [case_record_too_big_for_the_dlq, case_stored_profiles_unreadable, case_neighbour_lists,
         case_item_key_of_another_type, case_nul_ids, case_broker_down_is_retriable]


def main(cases=CASES):
    with Stack("ingest-poison") as st:
        rig = Rig(st)
        for case in cases:
            case(rig)
        assert st.stop(rig.ingest) == 0


if __name__ == "__main__":
    main()
