#!/usr/bin/python3
"""patron-trigger's benchmark (scripts/bench.sh trigger).

1. Latency, wall clock: customers who granted e-mail consent purchase at
   BENCH_RATE events/s for BENCH_SECONDS; the cross-sell campaign answers
   each purchase at once with a message carrying 4 recommendations. For
   every message: its Kafka timestamp (patron-trigger's producer) minus the
   purchase's event time (stamped when the bench produced it). The same for
   the ProfileUpdate that patron-ingest publishes: that is the floor the
   trigger stands on, measured in the same run, and the difference is what
   the trigger adds.
2. Pending timers, event clock: BENCH_TIMERS customers each grant push
   consent and add to cart, arming a 1 h cart-abandonment wait. Reported:
   Redis bytes per pending timer (MEMORY USAGE of every key of the trigger
   over the timers: the customer's whole campaign state counts), then the clock moves 2 h on and every timer
   fires: decisions/s, and Redis commands/s during the firing next to
   redis-benchmark's pipelined SET rate on the same server (the ceiling).

Knobs: BENCH_RATE=1000 BENCH_SECONDS=20 BENCH_CUSTOMERS=20000 BENCH_TIMERS=1000000
BENCH_PARTITIONS=8. The last line printed is JSON.
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the Release tree of scripts/lib.sh (scripts/bench.sh builds it)
os.environ.setdefault("PATRON_BIN_DIR", os.environ.get("PATRON_RELEASE_BUILD", os.path.join(ROOT, "build")))
os.environ.setdefault("PATRON_SOURCE_DIR", ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests", "support"))
from harness import Stack, metric, proto_modules, wait_for  # noqa: E402

from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

RATE = int(os.environ.get("BENCH_RATE", "1000"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "20000"))
TIMERS = int(os.environ.get("BENCH_TIMERS", "1000000"))
PARTS = int(os.environ.get("BENCH_PARTITIONS", "8"))

LATENCY_CAMPAIGNS = """
campaigns:
  - id: cross-sell
    when: { event: purchase }
    channel: email
    template: you_may_also_like
    recommendations: 4
"""
TIMER_CAMPAIGNS = """
campaigns:
  - id: cart-abandonment
    when: { event: cart_add }
    wait: 1h
    unless: { event: purchase }
    channel: push
    template: cart_reminder
"""


def topics(parts):
    t = {"patron.events": parts, "patron.catalog": 1, "patron.profile-updates": parts, "patron.dlq": 1}
    t.update({f"patron.campaign.{c}": parts for c in ("sms", "push", "email")})
    return t


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] if xs else float("nan")


def timestamps(brokers, topic, want, timeout):
    """{key: kafka timestamp} of the first `want` messages of a topic."""
    c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    out, deadline = {}, time.time() + timeout
    while len(out) < want and time.time() < deadline:
        for m in c.consume(10000, 0.5):
            if not m.error():
                out.setdefault(m.key().decode(), m.timestamp()[1])
    c.close()
    return out


def event_producer(brokers, linger_ms=20):
    return Producer({"bootstrap.servers": brokers, "linger.ms": linger_ms, "batch.num.messages": 10000,
                     "queue.buffering.max.messages": 2000000})


def latency(pb):
    with Stack("bench-trigger-latency") as st:
        st.start_redis()
        brokers = st.start_kafka(topics(PARTS))
        path = os.path.join(st.dir, "campaigns.yaml")
        open(path, "w").write(LATENCY_CAMPAIGNS)
        st.start_service("patron-ingest")
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=path)
        p = event_producer(brokers, linger_ms=5)  # stamped before produce: linger counts
        now = int(time.time() * 1000)
        for i in range(CUSTOMERS):
            e = pb.Event(event_id=f"c{i}", customer_id=f"u{i}", occurred_at_ms=now)
            e.consent.channel = pb.EMAIL
            e.consent.granted = True
            p.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString())
            p.poll(0)
        p.flush(60)
        wait_for("consents applied", lambda: metric(trig.http_port, "patron_trigger_updates_total") >= CUSTOMERS,
                 timeout=300, interval=0.5)
        n = RATE * SECONDS
        t0 = time.time()
        for i in range(n):
            target = t0 + i / RATE
            delay = target - time.time()
            if delay > 0:
                time.sleep(delay)
            cust = f"u{i % CUSTOMERS}"
            e = pb.Event(event_id=f"p{i}", customer_id=cust, occurred_at_ms=int(time.time() * 1000))
            e.purchase.order_id = f"o{i}"
            e.purchase.items.add(item_id=f"sku-{i % 500}", category="home", quantity=1, unit_price_cents=999)
            e.purchase.items.add(item_id=f"sku-{(i * 7 + 1) % 500}", category="home", quantity=1,
                                 unit_price_cents=499)
            p.produce("patron.events", key=cust.encode(), value=e.SerializeToString(),
                      headers={"at": str(e.occurred_at_ms)})
            p.poll(0)
        p.flush(60)
        achieved = n / (time.time() - t0)
        wait_for("every message", lambda: metric(trig.http_port, "patron_trigger_messages_total") >= n,
                 timeout=300, interval=0.5)
        # event time per purchase, by the customer's message order: the
        # message's trigger_event_id names the purchase
        from patron.v1 import campaign_pb2, profile_pb2
        c = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-{time.time_ns()}",
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe(["patron.campaign.email", "patron.profile-updates"])
        msg_lat, upd_lat, deadline = [], [], time.time() + 120
        while (len(msg_lat) < n or len(upd_lat) < n) and time.time() < deadline:
            for m in c.consume(10000, 0.5):
                if m.error():
                    continue
                if m.topic() == "patron.profile-updates":
                    u = profile_pb2.ProfileUpdate()
                    u.ParseFromString(m.value())
                    if u.kind == profile_pb2.PURCHASE:
                        upd_lat.append(m.timestamp()[1] - u.occurred_at_ms)
                else:
                    cm = campaign_pb2.CampaignMessage()
                    cm.ParseFromString(m.value())
                    msg_lat.append(m.timestamp()[1] - cm.created_at_ms)
        c.close()
        return {"rate_target": RATE, "rate_achieved": round(achieved), "messages": len(msg_lat),
                "message_p50_ms": pct(msg_lat, 50), "message_p99_ms": pct(msg_lat, 99),
                "update_p50_ms": pct(upd_lat, 50), "update_p99_ms": pct(upd_lat, 99)}


def info(r, key):
    return int(r.info()[key]) if key != "cmds" else int(r.info("stats")["total_commands_processed"])


def timers(pb):
    with Stack("bench-trigger-timers") as st:
        r = st.start_redis()
        # the embedded Kafka keeps at most 5 MiB per partition: 2M events
        # need enough partitions for none to be dropped before it is read
        parts = max(PARTS, TIMERS // 10000)
        brokers = st.start_kafka(topics(parts))
        path = os.path.join(st.dir, "campaigns.yaml")
        open(path, "w").write(TIMER_CAMPAIGNS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        trig = st.start_service("patron-trigger", PATRON_CLOCK="event", PATRON_CAMPAIGNS=path)
        p = event_producer(brokers)
        t0 = 1_300_000_000_000
        for i in range(TIMERS):
            e = pb.Event(event_id=f"c{i}", customer_id=f"u{i}", occurred_at_ms=t0 + i // 100)
            e.consent.channel = pb.PUSH
            e.consent.granted = True
            p.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString())
            p.poll(0)
        for i in range(TIMERS):
            e = pb.Event(event_id=f"a{i}", customer_id=f"u{i}", occurred_at_ms=t0 + 600_000 + i // 100)
            e.cart_add.item.item_id = f"sku-{i % 1000}"
            e.cart_add.item.quantity = 1
            e.cart_add.item.unit_price_cents = 100
            p.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString())
            p.poll(0)
        p.flush(120)
        t_apply = time.time()
        wait_for("ingest done", lambda: metric(ingest.http_port, "patron_ingest_events_total") >= 2 * TIMERS,
                 timeout=900, interval=1)
        wait_for("timers armed", lambda: metric(trig.http_port, "patron_trigger_updates_total") >= 2 * TIMERS,
                 timeout=1800, interval=1)
        apply_s = time.time() - t_apply
        pending = sum(r.zcard("{tp:%d}:due" % q) for q in range(parts))
        # the trigger's share of Redis: MEMORY USAGE of its keys (profiles and
        # the item statistics are ingest's)
        trigger_bytes, pipe, n = 0, r.pipeline(transaction=False), 0
        for k in r.scan_iter(match="{tp:*", count=10000):
            pipe.memory_usage(k, samples=0)
            n += 1
            if n % 10000 == 0:
                trigger_bytes += sum(x or 0 for x in pipe.execute())
        trigger_bytes += sum(x or 0 for x in pipe.execute())
        # the clock moves 2 h on: one heartbeat per customer partition
        t_fire = t0 + 600_000 + TIMERS // 100 + 2 * 3600_000
        for q in range(4 * parts):
            e = pb.Event(event_id=f"tick{q}", customer_id=f"tick-{q}", occurred_at_ms=t_fire)
            e.view.item_id = "x"
            p.produce("patron.events", key=e.customer_id.encode(), value=e.SerializeToString())
        p.flush(30)
        c0, t1 = info(r, "cmds"), None
        start = None
        while True:
            d = metric(trig.http_port, "patron_trigger_decisions_total")
            if start is None and d > 0:
                start, d0, c0 = time.time(), d, info(r, "cmds")
            if d >= TIMERS:
                t1, c1 = time.time(), info(r, "cmds")
                break
            time.sleep(0.05)
        fire_rate = (TIMERS - d0) / (t1 - start)
        cmd_rate = (c1 - c0) / (t1 - start)
        bench = subprocess.run(["redis-benchmark", "-p", str(st.redis_port), "-t", "set", "-P", "64", "-n",
                                "2000000", "-q", "-r", "1000000"], capture_output=True, text=True).stdout
        ceiling = float([w for w in bench.replace("\r", "\n").split() if w.replace(".", "").isdigit()][0])
        return {"timers": TIMERS, "pending_after_arming": pending, "arming_updates_per_s": round(2 * TIMERS / apply_s), "partitions": parts,
                "redis_bytes_per_timer": round(trigger_bytes / max(pending, 1)),
                "fire_decisions_per_s": round(fire_rate), "redis_cmds_per_s_firing": round(cmd_rate),
                "redis_benchmark_set_p64": round(ceiling), "cmds_ratio": round(cmd_rate / ceiling, 3)}


def main():
    import tempfile
    pb = proto_modules(tempfile.mkdtemp(prefix="patron-bench-py-"))
    res = {}
    if os.environ.get("BENCH_LATENCY", "1") == "1":
        res["latency"] = latency(pb)
        print("latency:", json.dumps(res["latency"]), flush=True)
    if os.environ.get("BENCH_TIMERS_RUN", "1") == "1":
        res["timers"] = timers(pb)
        print("timers:", json.dumps(res["timers"]), flush=True)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
