"""Memory stays bounded whatever the records: ingest under its pod's limit.

patron-ingest runs in a 512 MiB pod (k8s/base/ingest.yaml). Its peak
resident memory (VmHWM, from /proc) must stay well under that, at 256 MiB:

1. Twelve purchases of about 1 MB, each of 480,000 empty lines: decoding
   stops at line 1,001 (the contract's limit, checked as lines are
   counted), and all twelve go to the DLQ as "too many lines". On main each
   was decoded whole first, about 40 MB apiece: 517 MiB.
2. A stream of the largest records the broker takes, in waves: valid
   purchases of 1,000 lines padded to 1,000,000 bytes with an unknown field
   (applied), and 1,020,000-byte records that do not decode (dead-lettered,
   cut). The batches are bounded by bytes (PATRON_BATCH_MAX_BYTES) and so
   are those in flight (PATRON_INFLIGHT_MAX_BYTES), librdkafka's fetch queue
   by queued.max.messages.kbytes.

Under AddressSanitizer (the test build) freed memory waits in a quarantine
of 256 MiB by default before it is reused: it is set to 16 MiB for ingest
here, so that the figure is the program's.
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, consume_all, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

# the embedded Kafka keeps 5 MiB a partition: the DLQ needs room for twelve 1 MB letters
TOPICS = {"patron.events": 8, "patron.catalog": 1, "patron.profile-updates": 8, "patron.dlq": 8}
T0 = 1700000000000
LIMIT_MIB = 256


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(number, payload):
    return varint(number << 3 | 2) + varint(len(payload)) + payload


def empty_lines_purchase(cid, n_lines):
    """An Event whose purchase holds n_lines empty LineItems (2 bytes each)."""
    ids = field(1, f"{cid}-e".encode()) + field(2, cid.encode()) + b"\x18" + varint(T0)
    return ids + field(13, b"\x12\x00" * n_lines)


def padded_purchase(ev, cid, size):
    """A valid purchase of 1,000 lines, padded to `size` bytes with an unknown field."""
    e = ev.Event(event_id=f"{cid}-e", customer_id=cid, occurred_at_ms=T0)
    for i in range(1000):
        e.purchase.items.add(item_id=f"item-{i}", quantity=1, unit_price_cents=100)
    body = e.SerializeToString()
    pad = size - len(body) - 5  # the field's tag and length prefix
    return body + field(99, b"z" * pad)


def processed(port):
    return metric(port, "patron_ingest_events_total") + metric(port, "patron_ingest_dlq_total")


def main():
    with Stack("ingest-memory") as st:
        ev = proto_modules(st.dir)
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        asan = os.environ.get("ASAN_OPTIONS", "")
        ingest = st.start_service("patron-ingest",
                                  ASAN_OPTIONS=(asan + ":" if asan else "") + "quarantine_size_mb=16")
        p = Producer({"bootstrap.servers": brokers, "message.max.bytes": 2000000, "linger.ms": 5})
        start_mib = peak_rss_mib(ingest.pid)

        # 1. twelve purchases of 480,000 empty lines
        for i in range(12):
            value = empty_lines_purchase(f"lines-{i}", 480000)
            assert 900000 < len(value) < 1000000
            p.produce("patron.events", key=f"lines-{i}".encode(), value=value)
        assert p.flush(60) == 0
        def letters():
            return [m for m in consume_all(brokers, "patron.dlq") if m.key().startswith(b"lines-")]
        letters = wait_for("the twelve dead-lettered", lambda: len(letters()) >= 12 and letters(), timeout=120)
        reasons = {dict(m.headers())["error"].decode() for m in letters}
        assert len(letters) == 12 and reasons == {"too many lines"}, (len(letters), reasons)
        first = peak_rss_mib(ingest.pid)
        assert first < LIMIT_MIB, f"peak RSS {first:.0f} MiB after the 480,000-line purchases"
        print(f"ok: 12 purchases of 480,000 lines dead-lettered; peak RSS {first:.0f} MiB (at start {start_mib:.0f})")

        # 2. waves of the largest records: valid ones padded to 1,000,000 bytes, and garbage
        total, valid = processed(ingest.http_port), 0
        for wave in range(5):
            for i in range(24):
                cid = f"big-{wave}-{i}"
                if i % 2 == 0:
                    value = padded_purchase(ev, cid, 1000000)
                    valid += 1
                else:
                    value = b"\x0a" * 1020000
                p.produce("patron.events", key=cid.encode(), value=value)
            assert p.flush(60) == 0
            total += 24
            wait_for(f"wave {wave} read", lambda: processed(ingest.http_port) >= total, timeout=180, interval=0.2)
        wait_for("the valid ones applied", lambda: r.exists(
            *[f"{{c:big-{w}-{i}}}" for w in range(5) for i in range(0, 24, 2)]) == valid, timeout=60)
        peak = peak_rss_mib(ingest.pid)
        assert peak < LIMIT_MIB, f"peak RSS {peak:.0f} MiB under a stream of 1 MB records"
        assert metric(ingest.http_port, "patron_ingest_dlq_truncated_total") >= 60
        print(f"ok: {total:.0f} records of about 1 MB, {valid} applied; peak RSS {peak:.0f} MiB (limit {LIMIT_MIB})")
        assert st.stop(ingest) == 0


if __name__ == "__main__":
    main()
