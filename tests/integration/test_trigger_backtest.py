"""Backtesting: the same year replayed twice with the event clock gives the
same campaigns, to the message.

The Online Retail subset (with derived browsing, abandoned sessions,
consents, time zones and birthdays) goes through patron-ingest and
patron-trigger with examples/campaigns.yaml on two fresh stacks. Every
counter of every campaign and variant, and every message (id, decision
time, variant), must be identical: timers fire in event time, whatever the
speed of the machine, the batching or the moment a sweep runs.
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, SRC, SUBSET, Stack, consume_all, metric, proto_modules, run_tool, wait_for  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}


def run(name):
    with Stack(name) as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        trig = st.start_service("patron-trigger", PATRON_CLOCK="event",
                                PATRON_CAMPAIGNS=os.path.join(SRC, "examples", "campaigns.yaml"))
        t0 = time.time()
        run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET, "--brokers", brokers,
                  "--topic", "patron.events", "--derive-browse", "--derive-profile"])
        wait_for("every update through the trigger", lambda: metric(ingest.http_port, "patron_ingest_profile_updates_total")
                 == metric(trig.http_port, "patron_trigger_updates_total") > 0, timeout=300, interval=0.5)

        def decisions():
            return metric(trig.http_port, "patron_trigger_decisions_total")
        # the last timers fire once every partition is idle (2 s) and quiet
        last, stable = -1, 0
        while stable < 4:
            time.sleep(1.5)
            d = decisions()
            stable = stable + 1 if d == last else 0
            last = d
        elapsed = time.time() - t0
        # the promise the determinism rests on: no timer fires past an update
        # of its partition that is not read yet
        late = metric(trig.http_port, "patron_trigger_late_updates_total")
        assert late == 0, (f"{name}: {late} updates came after a sweep had fired timers past them "
                           f"({metric(trig.http_port, 'patron_trigger_job_failures_total')} jobs redone)")
        wait_for("the outbox empty", lambda: sum(r.hlen("{tp:%d}:outbox" % p) for p in range(4)) == 0, timeout=60)
        stats = {}
        for p in r.smembers("{trigger}:partitions"):
            for f, v in r.hgetall("{tp:%s}:stats" % p.decode()).items():
                stats[f.decode()] = stats.get(f.decode(), 0) + int(v)
        msgs = set()
        for ch in ("sms", "push", "email"):
            for m in consume_all(brokers, f"patron.campaign.{ch}", timeout=30):
                cm = campaign_pb2.CampaignMessage()
                cm.ParseFromString(m.value())
                msgs.add((cm.message_id, cm.campaign_id, cm.variant, cm.created_at_ms, ch))
        del pb
        return stats, msgs, elapsed


def main():
    a_stats, a_msgs, a_s = run("backtest-a")
    b_stats, b_msgs, b_s = run("backtest-b")
    diff = {k: (a_stats.get(k), b_stats.get(k)) for k in set(a_stats) | set(b_stats) if a_stats.get(k) != b_stats.get(k)}
    assert not diff, f"counters differ between the two runs: {sorted(diff.items())[:10]}"
    assert a_msgs == b_msgs, f"messages differ: {sorted(a_msgs ^ b_msgs)[:10]}"
    sent = sum(v for k, v in a_stats.items() if k.endswith("|sent"))
    assert sent == len(a_msgs) > 100, (sent, len(a_msgs))
    for c in ("cart-abandonment", "browse-abandonment", "cross-sell", "review-request", "winback-60d", "birthday"):
        assert any(m[1] == c for m in a_msgs), f"{c} sent nothing in a year of the shop"
    print(f"ok: {len(a_stats)} counters and {len(a_msgs)} messages identical across two backtests "
          f"({a_s:.0f} s and {b_s:.0f} s for a year of the shop)")


if __name__ == "__main__":
    main()
