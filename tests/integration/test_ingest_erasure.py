"""An erasure reaches the customer's campaign state whatever partitioner the site uses.

The site's producer is confluent-kafka's (Python) with its default
partitioner, consistent_random: CRC32 of the key. DELETE /v1/customers/{id}
publishes the ErasureRequest by murmur2, the Java client's partitioner, so
for the customer chosen here the two land on different partitions of
patron.events. The trigger keeps the customer's state, timers and outbox on
the partition of patron.profile-updates its events came from: that one must
see the erasure.

So ingest sends the erasure's ProfileUpdate to every partition of
patron.profile-updates: to its event's partition in order, as every update,
and a copy flagged fanout to each of the others. After it, on every
partition, the last update of the customer is an erasure. On main, the
partition that holds the customer's purchases never sees one.
"""
import os
import sys
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, consume_all, http, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

PARTITIONS = 8
TOPICS = {"patron.events": PARTITIONS, "patron.catalog": 1, "patron.profile-updates": PARTITIONS,
          "patron.dlq": 1}
T0 = 1700000000000
TOKEN = "erasure-test-token"


def murmur2(data):
    """Kafka's murmur2 (the Java client's, librdkafka's murmur2_random)."""
    m, r, h = 0x5BD1E995, 24, 0x9747B28C ^ len(data)
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = data[4 * n4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def a_customer_split_by_partitioners():
    for i in range(1000):
        cid = f"erased-{i}"
        crc = zlib.crc32(cid.encode()) % PARTITIONS
        mur = (murmur2(cid.encode()) & 0x7FFFFFFF) % PARTITIONS
        if crc != mur:
            return cid, crc, mur
    raise AssertionError("no customer whose partitions differ")


def main():
    cid, crc_partition, murmur_partition = a_customer_split_by_partitioners()
    with Stack("ingest-erasure") as st:
        ev = proto_modules(st.dir)
        from patron.v1 import profile_pb2
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest")
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN)
        auth = {"Authorization": f"Bearer {TOKEN}"}

        # the site's producer: no partitioner set, librdkafka's default (CRC32)
        p = Producer({"bootstrap.servers": brokers})
        partitions = []
        for k in range(3):
            e = ev.Event(event_id=f"{cid}-buy-{k}", customer_id=cid, occurred_at_ms=T0 + k)
            e.purchase.items.add(item_id="gift", quantity=1, unit_price_cents=2500)
            p.produce("patron.events", key=cid.encode(), value=e.SerializeToString(),
                      on_delivery=lambda err, m: partitions.append(None if err else m.partition()))
        assert p.flush(30) == 0
        assert partitions == [crc_partition] * 3, (partitions, crc_partition)

        def orders():
            status, body = http(api.http_port, "GET", f"/v1/customers/{cid}/profile", headers=auth)
            return body.get("orders") if status == 200 else None
        wait_for("the purchases applied", lambda: orders() == 3, timeout=60)

        status, body = http(api.http_port, "DELETE", f"/v1/customers/{cid}", headers=auth)
        assert status in (200, 202), (status, body)
        wait_for("the customer erased", lambda: http(api.http_port, "GET", f"/v1/customers/{cid}/profile",
                                                     headers=auth)[0] == 404, timeout=60)
        erasures = [m for m in consume_all(brokers, "patron.events") if m.key() == cid.encode()
                    and ev.Event.FromString(m.value()).WhichOneof("kind") == "erasure"]
        assert [m.partition() for m in erasures] == [murmur_partition], \
            ([m.partition() for m in erasures], murmur_partition)

        def updates_of_customer():
            out = {}
            for m in consume_all(brokers, "patron.profile-updates"):
                u = profile_pb2.ProfileUpdate.FromString(m.value())
                if u.customer_id == cid:
                    out.setdefault(m.partition(), []).append(u)
            return out

        def every_partition_erased():
            ups = updates_of_customer()
            return len(ups) == PARTITIONS and all(
                v[-1].kind == profile_pb2.ERASURE for v in ups.values()) and ups
        ups = wait_for("an erasure on every partition of the updates", every_partition_erased, timeout=60)

        # the partition with the customer's purchases, where the trigger keeps its state
        held = ups[crc_partition]
        assert [u.kind for u in held] == [profile_pb2.PURCHASE] * 3 + [profile_pb2.ERASURE], \
            [u.kind for u in held]
        for partition, us in ups.items():
            erase = [u for u in us if u.kind == profile_pb2.ERASURE]
            assert len(erase) == 1, (partition, erase)
            assert erase[0].fanout == (partition != murmur_partition), (partition, erase[0])
            assert erase[0].partition == murmur_partition  # where its event was read
        assert metric(ingest.http_port, "patron_ingest_erasure_copies_total") == PARTITIONS - 1
        print(f"ok: {cid}'s events on partition {crc_partition} (CRC32), its erasure on {murmur_partition} "
              f"(murmur2): the erasure reached all {PARTITIONS} partitions of the updates, last on each")
        assert st.stop(ingest) == 0


if __name__ == "__main__":
    main()
