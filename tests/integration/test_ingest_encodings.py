"""Three encodings of the same events give the same profiles.

The Online Retail subset's events (with derived browsing, carts, consents
and customer data: every kind a shop sends) are written once by
patron-replay, then re-encoded by clients nobody here wrote and produced to
patron.events three times, under three customer prefixes:
- plain protobuf, as Google's Python protobuf serializes it;
- Confluent's Schema Registry framing, by confluent-kafka's own
  ProtobufSerializer (its registry answered by a stand-in: no network);
- canonical JSON, by protobuf's json_format (int64 as strings, enum names).
Every customer's profile must be the same in all three, field for field,
and equal to what scripts/expected_profiles.py computes for it — but for
the customers who first came as visitors (data/README.md, "Derived
identity"): their visitor's events and their own come on two partitions,
read at their own pace, so what the visitor brought at the merge, and the
order-dependent lists (recently viewed, cart, tastes: a view more than a
day behind its customer is stale), may differ between the copies; their
counters, tier and merged anonymous ids may not. The catalog
gets the same three treatments. Malformed JSON goes to the DLQ with the
parser's reason.
"""
import json
import os
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, consume_all, expected_profiles, http, metric, proto_modules,  # noqa: E402
                     run_tool, wait_for)

from confluent_kafka import Producer  # noqa: E402

# the embedded Kafka keeps 5 MiB a partition and drops the oldest beyond:
# ingest reads while the copies are produced, one copy at a time (the JSON
# one is 30 MB), over 16 partitions
TOPICS = {"patron.events": 16, "patron.catalog": 2, "patron.profile-updates": 16, "patron.dlq": 1}
PREFIXES = ("p-", "r-", "j-")
# fields that differ by construction between the three copies
SKIP = {"customer_id"}
# ... and, for a customer with a merged visitor, by the pace of two partitions
ORDER_DEPENDENT = {"recent_items", "top_categories", "cart"}


class StandInRegistry:
    """What ProtobufSerializer asks of a Schema Registry: a schema id."""

    def register_schema(self, subject, schema, normalize_schemas=False):
        return 100000 + len(subject)

    def lookup_schema(self, subject, schema, normalize_schemas=False):
        raise AssertionError("auto.register.schemas is on: lookup is not called")


def read_events(path, event_pb2):
    """The length-prefixed Events patron-replay --out writes."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        (n,) = struct.unpack(">I", data[at:at + 4])
        ev = event_pb2.Event()
        ev.ParseFromString(data[at + 4:at + 4 + n])
        out.append(ev)
        at += 4 + n
    return out


def send(producer, topic, key, value):
    """Produces, waiting for room when the producer's queue is full."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
            producer.poll(0)
            return
        except BufferError:
            producer.poll(0.1)


def renamed(ev, event_pb2, prefix):
    """The copy of another customer: its ids prefixed, a visitor's (no
    customer_id) and an Identify's anonymous ids too."""
    copy = event_pb2.Event()
    copy.CopyFrom(ev)
    copy.event_id = prefix + ev.event_id
    if ev.customer_id:
        copy.customer_id = prefix + ev.customer_id
    if ev.anonymous_id:
        copy.anonymous_id = prefix + ev.anonymous_id
    if ev.WhichOneof("kind") == "identify":
        copy.identify.anonymous_id = prefix + ev.identify.anonymous_id
    return copy


def main():
    expected = expected_profiles()
    with Stack("ingest-encodings") as st:
        event_pb2 = proto_modules(st.dir)
        from google.protobuf import json_format
        from patron.v1 import catalog_pb2
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        path = os.path.join(st.dir, "events.bin")
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET,
                                       "--out", path, "--derive-browse", "--derive-profile",
                                       "--seed", "3"]).strip().splitlines()[-1])
        events = read_events(path, event_pb2)
        assert len(events) == summary["events"] and len(events) > 50000, (len(events), summary)

        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        registry = StandInRegistry()
        serialize = {
            "p-": lambda ev: ev.SerializeToString(),
            "r-": ProtobufSerializer(event_pb2.Event, registry, {"use.deprecated.format": False})
            if "use.deprecated.format" in ProtobufSerializer._default_conf
            else ProtobufSerializer(event_pb2.Event, registry),
            "j-": lambda ev: json_format.MessageToJson(ev, indent=None).encode(),
        }
        ctx = SerializationContext("patron.events", MessageField.VALUE)
        producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20})
        firsts = {}
        for k, prefix in enumerate(PREFIXES):
            enc = serialize[prefix]
            for ev in events:
                copy = renamed(ev, event_pb2, prefix)
                value = enc(copy, ctx) if prefix == "r-" else enc(copy)
                firsts.setdefault(prefix, value)
                send(producer, "patron.events", (copy.customer_id or copy.anonymous_id).encode(), value)
            assert producer.flush(60) == 0
            wait_for(f"ingest to read the {prefix} copy",
                     lambda k=k: metric(ingest.http_port, "patron_ingest_events_total") >= (k + 1) * len(events),
                     timeout=300, interval=0.5)
        assert firsts["r-"][0] == 0 and firsts["j-"][:1] == b"{" and firsts["p-"][0] not in (0, 0x7b), firsts

        items = []
        for i in range(20):
            u = catalog_pb2.ItemUpdate(item_id=f"item-{i}", category="home", price_cents=100 + i,
                                       in_stock=i % 3 != 0, title=f"Title {i} ✓", not_a_product=i == 5)
            items.append(u)
        item_ser = ProtobufSerializer(catalog_pb2.ItemUpdate, registry)
        cat_ctx = SerializationContext("patron.catalog", MessageField.VALUE)
        for prefix in PREFIXES:
            for u in items:
                copy = catalog_pb2.ItemUpdate()
                copy.CopyFrom(u)
                copy.item_id = prefix + u.item_id
                value = {"p-": lambda m: m.SerializeToString(), "r-": lambda m: item_ser(m, cat_ctx),
                         "j-": lambda m: json_format.MessageToJson(m, indent=None).encode()}[prefix](copy)
                send(producer, "patron.catalog", copy.item_id.encode(), value)
        bad = [b'{"eventId": "x", ', b'{"eventId":"x","customerId":"c","occurredAtMs":"1","view":{},"review":{}}']
        for i, value in enumerate(bad):
            send(producer, "patron.events", b"bad-%d" % i, value)
        assert producer.flush(60) == 0

        total = 3 * len(events) + len(bad)
        wait_for("ingest to read all three copies",
                 lambda: metric(ingest.http_port, "patron_ingest_events_total") + metric(
                     ingest.http_port, "patron_ingest_dlq_total") >= total
                 and metric(ingest.http_port, "patron_ingest_inflight_batches") == 0, timeout=300, interval=0.5)

        def differences():
            """Customers whose three copies differ, or differ from the oracle.
            Read again until the event clock settles: rfm and tastes are
            scored at its now, which moves once every partition is idle."""
            out = []
            for cid, exp in sorted(expected.items()):
                got = {}
                for prefix in PREFIXES:
                    status, body = http(api.http_port, "GET", f"/v1/customers/{prefix}{cid}/profile")
                    assert status == 200, (prefix, cid, status, body)
                    got[prefix] = {k: v for k, v in body.items() if k not in SKIP}
                    got[prefix]["merged_visitors"] = [m["anonymous_id"][len(prefix):]
                                                      for m in body["merged_visitors"]]
                    if body["merged_visitors"]:
                        for k in ORDER_DEPENDENT:
                            got[prefix].pop(k)
                if not (got["p-"] == got["r-"] == got["j-"]):
                    diff = [k for k in got["p-"] if not (got["p-"][k] == got["r-"].get(k) == got["j-"].get(k))]
                    out.append((cid, diff))
                for f in ("orders", "net_spend_cents", "points", "tier", "last_purchase_ms"):
                    if got["p-"][f] != exp[f]:
                        out.append((cid, f, got["p-"][f], exp[f]))
            return out

        mismatches = differences()
        for _ in range(30):
            if not mismatches:
                break
            time.sleep(1)
            mismatches = differences()
        assert not mismatches, f"{len(mismatches)} customers differ, first: {mismatches[:5]}"

        r = st.r
        for u in items:
            hashes = [r.hgetall("{i:%s%s}" % (p, u.item_id)) for p in PREFIXES]
            assert hashes[0] and hashes[0] == hashes[1] == hashes[2], (u.item_id, hashes)
            assert hashes[0][b"title"].decode() == u.title

        dlq = consume_all(brokers, "patron.dlq")
        reasons = {m.key(): dict(m.headers())["error"].decode() for m in dlq}
        assert reasons.get(b"bad-0", "").startswith("json: line 1"), reasons
        assert "two members of a oneof" in reasons.get(b"bad-1", ""), reasons
        assert len(reasons) == len(bad), reasons
        assert st.stop(ingest) == 0 and st.stop(api) == 0
        print(f"ok: {len(events)} events x 3 encodings, {len(expected)} customers identical; "
              f"{len(items)} items x 3; malformed JSON dead-lettered with the parser's reason")


if __name__ == "__main__":
    main()
