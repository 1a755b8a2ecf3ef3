"""Faults of the parts Patron stands on: Redis killed, the broker gone.

1. A year of the shop (the Online Retail subset with derived browsing,
   carts, consents, time zones and birthdays) through patron-ingest and
   patron-trigger with the example campaigns, on the event clock, while:
   - Redis (append-only file, appendfsync always) is SIGKILLed a third of
     the way through and started again on the same port;
   - every Kafka broker goes down two thirds of the way through (the
     embedded Kafka's SIGUSR1) and comes back 8 s later (SIGUSR2).
   Both services must say they are not ready while Redis is gone, stay
   alive, and end exact: every profile equals scripts/expected_profiles.py,
   no campaign message id appears twice, and every campaign's `sent`
   counter equals its messages on Kafka.
2. Redis SIGKILLed without persistence and started again empty: the state
   is gone (a Redis without an append-only file is a cache, see
   docs/operations.md), but no service crashes or stalls: each reports not
   ready, then ready, and new events are applied and answered at once.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SRC, SUBSET, Stack, assert_profiles_exact, consume_all, expected_profiles, http,  # noqa: E402
                     metric, produce, proto_modules, run_tool, trigger_stats, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}
DURABLE = ["--appendonly", "yes", "--appendfsync", "always"]
CAMPAIGNS = os.path.join(SRC, "examples", "campaigns.yaml")


def ready(p):
    return http(p.http_port, "GET", "/readyz", timeout=2)[0]


def restart_redis(st, extra):
    st.redis = st.spawn("redis-again", st.redis_argv(st.redis_port, extra))
    wait_for("redis back", lambda: st.r.ping(), timeout=10)


def settled(trig):
    """The trigger's decisions stop moving (its last timers fire once every
    partition is idle and quiet)."""
    last, stable = -1, 0
    while stable < 4:
        time.sleep(1.5)
        d = metric(trig.http_port, "patron_trigger_decisions_total")
        stable = stable + 1 if d == last else 0
        last = d


def year_through_faults():
    expected = expected_profiles()
    with Stack("faults-year") as st:
        proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        r = st.start_redis(DURABLE)
        brokers = st.start_kafka(TOPICS)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET,
                                       "--brokers", brokers, "--topic", "patron.events", "--derive-browse",
                                       "--derive-profile"]).strip().splitlines()[-1])
        env = {"PATRON_CLOCK": "event", "PATRON_BATCH_MAX": "200", "PATRON_INFLIGHT_BATCHES": "4"}
        ingest = st.start_service("patron-ingest", **env)
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=CAMPAIGNS, **env)
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        services = (ingest, trig, api)

        # Redis dies a third of the way through, and comes back with its file
        wait_for("a third of the year", lambda: metric(ingest.http_port, "patron_ingest_events_total")
                 >= summary["events"] // 3, timeout=120, interval=0.05)
        st.redis.kill()
        st.redis.wait()
        for p in services:
            wait_for(f"{p.patron_name} not ready without Redis", lambda p=p: ready(p) == 503, timeout=15)
        time.sleep(2)
        for p in services:
            assert p.poll() is None and http(p.http_port, "GET", "/healthz")[0] == 200, p.patron_name
        restart_redis(st, DURABLE)
        for p in services:
            wait_for(f"{p.patron_name} ready again", lambda p=p: ready(p) == 200, timeout=30)

        # every broker goes away two thirds of the way through, and comes back
        wait_for("two thirds of the year", lambda: metric(ingest.http_port, "patron_ingest_events_total")
                 >= 2 * summary["events"] // 3, timeout=180, interval=0.05)
        st.kafka.send_signal(signal.SIGUSR1)
        time.sleep(8)
        for p in services:
            assert p.poll() is None and http(p.http_port, "GET", "/healthz")[0] == 200, p.patron_name
        st.kafka.send_signal(signal.SIGUSR2)

        wait_for("every update through the trigger",
                 lambda: metric(ingest.http_port, "patron_ingest_profile_updates_total")
                 <= metric(trig.http_port, "patron_trigger_updates_total") > 0, timeout=300, interval=0.5)
        assert_profiles_exact(api.http_port, expected, after=" after a Redis kill and a broker outage",
                              timeout=120)
        settled(trig)
        wait_for("the outbox empty", lambda: sum(r.hlen("{tp:%d}:outbox" % p) for p in range(4)) == 0, timeout=60)
        stats = trigger_stats(r)
        ids, per_campaign = [], {}
        for ch in ("sms", "push", "email"):
            for m in consume_all(brokers, f"patron.campaign.{ch}", timeout=30):
                cm = campaign_pb2.CampaignMessage()
                cm.ParseFromString(m.value())
                ids.append(cm.message_id)
                key = (cm.campaign_id, cm.variant)
                per_campaign[key] = per_campaign.get(key, 0) + 1
        assert len(ids) == len(set(ids)) > 100, f"{len(ids) - len(set(ids))} messages sent twice of {len(ids)}"
        sent = {(c, v): n for (c, v, k), n in stats.items() if k == "sent" and n}
        assert sent == per_campaign, f"sent counters {sent} against messages {per_campaign}"
        assert metric(ingest.http_port, "patron_ingest_resets_total") >= 1
        for p in services:
            assert st.stop(p) == 0, f"{p.patron_name} did not stop cleanly"
        print(f"ok: a year through a Redis kill and a broker outage: {len(expected)} profiles exact, "
              f"{len(ids)} messages each once, every sent counter equal to its messages")


def redis_without_persistence():
    with Stack("faults-cache") as st:
        pb = proto_modules(st.dir)
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest")
        trig = st.start_service("patron-trigger", PATRON_CAMPAIGNS=CAMPAIGNS)
        api = st.start_service("patron-api")
        services = (ingest, trig, api)
        t0 = int(time.time() * 1000)

        def purchase(eid, cid, t, item):
            ev = pb.Event(event_id=eid, customer_id=cid, occurred_at_ms=t)
            ev.purchase.order_id = eid
            line = ev.purchase.items.add()
            line.item_id, line.quantity, line.unit_price_cents = item, 1, 1500
            return ev

        produce(brokers, [purchase("b1", "before", t0, "a")])
        wait_for("the first purchase", lambda: http(api.http_port, "GET", "/v1/customers/before/profile")[0] == 200,
                 timeout=30)
        st.redis.kill()
        st.redis.wait()
        for p in services:
            wait_for(f"{p.patron_name} not ready", lambda p=p: ready(p) == 503, timeout=15)
        restart_redis(st, [])
        for p in services:
            wait_for(f"{p.patron_name} ready again", lambda p=p: ready(p) == 200, timeout=30)
        # what Redis held is gone; what comes now is applied and answered
        assert http(api.http_port, "GET", "/v1/customers/before/profile")[0] == 404
        produce(brokers, [purchase("a1", "after", t0 + 1000, "b"), purchase("a2", "after", t0 + 2000, "c")])
        wait_for("purchases after the restart",
                 lambda: http(api.http_port, "GET", "/v1/customers/after/profile")[1].get("orders") == 2
                 if http(api.http_port, "GET", "/v1/customers/after/profile")[0] == 200 else False, timeout=30)
        status, body = http(api.http_port, "GET", "/v1/customers/after/recommendations")
        assert status == 200 and "items" in body, (status, body)
        for p in services:
            assert st.stop(p) == 0, f"{p.patron_name} did not stop cleanly"
        print("ok: Redis restarted empty: every service recovered and new events were applied at once")


def main():
    redis_without_persistence()
    year_through_faults()


if __name__ == "__main__":
    main()
