"""The event clock waits for partitions that traffic is about to reach
(docs/guarantees.md, "Time").

One redis-server, patron-devkafka (patron.events in 3 partitions) and one
patron-ingest with PATRON_CLOCK=event:

1. with nothing to read for a while, every partition is idle in {clock};
2. traffic resumes on partition 0 alone: at once every partition of the pod
   is busy again, so the low watermark does not run to partition 0's events
   past the older ones partitions 1 and 2 are about to receive (a producer's
   batches reach partitions milliseconds apart; a visitor's event applied to
   its customer would otherwise reach the trigger after the timers it
   precedes);
3. partition 1 gets its older events a moment later: the watermark was never
   past them;
4. quiet again, the partitions turn idle after the quiet period, and the
   clock moves on to the latest event applied.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, metric, proto_modules, wait_for  # noqa: E402

TOPICS = {"patron.events": 3, "patron.catalog": 1, "patron.profile-updates": 3, "patron.dlq": 1}
HOUR = 3_600_000
T0 = 1_291_000_000_000  # December 2010, as a replay of last year's shop


def clock(r):
    """partition -> (ms, idle), as ingest stores it."""
    out = {}
    for p, v in r.hgetall("{clock}").items():
        ms, idle = v.decode().split(":")
        out[int(p)] = (int(ms), idle == "1")
    return out


def watermark(parts):
    busy = [ms for ms, idle in parts.values() if not idle]
    return min(busy) if busy else max(ms for ms, _ in parts.values())


def main():
    with Stack("event-clock") as st:
        pb = proto_modules(st.dir)
        from confluent_kafka import Producer
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        prod = Producer({"bootstrap.servers": brokers, "linger.ms": 0})
        n = 0

        def send(partition, at):
            nonlocal n
            n += 1
            e = pb.Event(event_id=f"e{n}", customer_id=f"c{partition}", occurred_at_ms=at)
            e.view.item_id, e.view.category = "i1", "home"
            prod.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString(),
                         partition=partition)
            assert prod.flush(10) == 0

        # 1. a first event on each partition, then quiet: all idle
        for p in range(3):
            send(p, T0 + p)
        wait_for("every partition idle", lambda: len(clock(r)) == 3 and all(i for _, i in clock(r).values()),
                 timeout=30, interval=0.2)
        before = watermark(clock(r))
        assert before == T0 + 2, clock(r)

        # 2. partition 0 wakes with events a day later
        for k in range(5):
            send(0, T0 + 24 * HOUR + k)
        wait_for("partition 0 applied", lambda: clock(r)[0][0] == T0 + 24 * HOUR + 4, timeout=30, interval=0.05)
        parts = clock(r)
        assert not parts[1][1] and not parts[2][1], f"the other partitions must wait: {parts}"
        assert watermark(parts) <= T0 + 2, f"the watermark ran past partitions 1 and 2: {parts}"

        # 3. partition 1's older events arrive: the watermark never passed them
        send(1, T0 + 12 * HOUR)
        wait_for("partition 1 applied", lambda: clock(r)[1][0] == T0 + 12 * HOUR, timeout=30, interval=0.05)
        assert watermark(clock(r)) <= T0 + 12 * HOUR, clock(r)

        # 4. quiet again: idle after the quiet period, the clock at the latest event
        t = time.monotonic()
        wait_for("every partition idle again", lambda: all(i for _, i in clock(r).values()), timeout=30,
                 interval=0.1)
        assert time.monotonic() - t >= 1.0, "idle before the quiet period"
        assert watermark(clock(r)) == T0 + 24 * HOUR + 4, clock(r)
        assert metric(ingest.http_port, "patron_ingest_events_total") == 9
        print("test_event_clock: passed (idle after quiet; one partition waking holds the others busy)")


if __name__ == "__main__":
    main()
