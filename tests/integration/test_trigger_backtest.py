"""Backtesting: the same year replayed twice with the event clock gives the
same campaigns, to the message.

A first run with anonymous visitors (a quarter of the customers browse
before their login, on another partition) checks that no timer fires past an
update not yet read, however the two partitions' pace differs; the two runs
compared leave the visitors out (`--no-visitors`, docs/guarantees.md "Time").

The Online Retail subset (with derived browsing, abandoned sessions,
consents, time zones and birthdays) goes through patron-ingest and
patron-trigger with examples/campaigns.yaml on two fresh stacks. Every
counter of every campaign and variant, every daily counter, and every
message (id, decision time, variant), must be identical: timers fire in
event time, whatever the speed of the machine, the batching or the moment a
sweep runs.

The campaigns that decide with the fitted models (churn-save:
churn_risk_above; vip-early-access: a cluster audience) run on models fixed
by PATRON_CLV_MODEL and PATRON_CLUSTERS_MODEL, as a backtest must: a refit
landing between two replays would change their decisions. Both must fire.
The daily counters must add up to the totals.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, SRC, SUBSET, Stack, consume_all, metric, proto_modules, run_tool, wait_for  # noqa: E402

# The models patron-api fits on the whole subset (GET /v1/model's clv.override,
# and GET {model}:clusters), fixed here so that both replays decide alike.
CLV_MODEL = ("0.630807963793939,39.182929199457845,0.0810623962935315,7.016308215447195,"
             "2.0726579867873363,4.410079951496002,59078.476508657106")
CLUSTERS_MODEL = json.dumps({
    "version": 1, "fitted_at_ms": 1796616242872, "as_of_ms": 1323733710000, "customers": 613, "sample": 613,
    "mean": [3.928309651082903, 1.365492897683828, 6.544796212166581],
    "sd": [1.2089045503462728, 0.6940431810819327, 1.319452973172988],
    "k": 4, "silhouette": 0.34044450842412616, "clusters": [
        {"id": 0, "label": "recent, frequent, high spend", "size": 93,
         "z": [-1.1821116955342668, 1.7426772331846034, 1.387555802928861],
         "centroid": {"recency_days": 11.17335373920869, "orders": 12.131135267401374, "net_spend_cents": 433891.8472520576}},
        {"id": 1, "label": "cooling, regular, high spend", "size": 180,
         "z": [0.052888224689287916, 0.32867023854375826, 0.5171281960291436],
         "centroid": {"recency_days": 53.17645836442285, "orders": 3.9214550840494162, "net_spend_cents": 137525.66884425192}},
        {"id": 2, "label": "recent, regular, mid spend", "size": 128,
         "z": [-0.8590731483411602, -0.42143351748324126, -0.4907399137813564],
         "centroid": {"recency_days": 16.989211425823207, "orders": 1.9241382988437676, "net_spend_cents": 36304.88179433621}},
        {"id": 3, "label": "lapsed, rare, low spend", "size": 212,
         "z": [0.9923484444730382, -0.7890855442744633, -0.7514672452529162],
         "centroid": {"recency_days": 167.6733831941005, "orders": 1.2655860255335423, "net_spend_cents": 25708.023402669063}}
    ]})
MODEL_CAMPAIGNS = ("churn-save", "vip-early-access")
TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}


def run(name, visitors=False):
    with Stack(name) as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        trig = st.start_service("patron-trigger", PATRON_CLOCK="event",
                                PATRON_CAMPAIGNS=os.path.join(SRC, "examples", "campaigns.yaml"),
                                PATRON_CLV_MODEL=CLV_MODEL, PATRON_CLUSTERS_MODEL=CLUSTERS_MODEL)
        t0 = time.time()
        run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET, "--brokers", brokers,
                  "--topic", "patron.events", "--derive-browse", "--derive-profile"]
                 + ([] if visitors else ["--no-visitors"]))
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
        stats, daily = {}, {}
        for p in r.smembers("{trigger}:partitions"):
            for f, v in r.hgetall("{tp:%s}:stats" % p.decode()).items():
                stats[f.decode()] = stats.get(f.decode(), 0) + int(v)
            for day, num in r.zrange("{tp:%s}:daily" % p.decode(), 0, -1, withscores=True):
                for f, v in r.hgetall("{tp:%s}:daily:%s" % (p.decode(), day.decode())).items():
                    k = (day.decode(), f.decode())
                    daily[k] = daily.get(k, 0) + int(v)
        # every counter is in its day: the days add up to the totals
        by_field = {}
        for (_, f), v in daily.items():
            by_field[f] = by_field.get(f, 0) + v
        assert by_field == stats, f"{name}: daily counters do not add up: " \
            f"{sorted((k, by_field.get(k), stats.get(k)) for k in set(by_field) | set(stats) if by_field.get(k) != stats.get(k))[:5]}"
        msgs = set()
        for ch in ("sms", "push", "email"):
            for m in consume_all(brokers, f"patron.campaign.{ch}", timeout=30):
                cm = campaign_pb2.CampaignMessage()
                cm.ParseFromString(m.value())
                msgs.add((cm.message_id, cm.campaign_id, cm.variant, cm.created_at_ms, ch))
        del pb
        return stats, daily, msgs, elapsed


def main():
    # With anonymous visitors the trigger still never fires a timer past an
    # update it has not read (run() asserts it: the event clock's gate), but
    # which of a visitor's events come before its Identify depends on how
    # fast ingest reads two partitions, so the two runs to compare have none.
    run("backtest-visitors", visitors=True)
    a_stats, a_daily, a_msgs, a_s = run("backtest-a")
    b_stats, b_daily, b_msgs, b_s = run("backtest-b")
    diff = {k: (a_stats.get(k), b_stats.get(k)) for k in set(a_stats) | set(b_stats) if a_stats.get(k) != b_stats.get(k)}
    assert not diff, f"counters differ between the two runs: {sorted(diff.items())[:10]}"
    diff = {k: (a_daily.get(k), b_daily.get(k)) for k in set(a_daily) | set(b_daily) if a_daily.get(k) != b_daily.get(k)}
    assert not diff, f"daily counters differ between the two runs: {sorted(diff.items())[:10]}"
    assert a_msgs == b_msgs, f"messages differ: {sorted(a_msgs ^ b_msgs)[:10]}"
    sent = sum(v for k, v in a_stats.items() if k.endswith("|sent"))
    assert sent == len(a_msgs) > 100, (sent, len(a_msgs))
    for c in ("cart-abandonment", "browse-abandonment", "cross-sell", "review-request", "winback-60d", "birthday") \
            + MODEL_CAMPAIGNS:
        assert any(m[1] == c for m in a_msgs), f"{c} sent nothing in a year of the shop"
    fired = {c: sum(1 for m in a_msgs if m[1] == c) for c in MODEL_CAMPAIGNS}
    print(f"ok: {len(a_stats)} counters, {len(a_daily)} daily counters and {len(a_msgs)} messages identical "
          f"across two backtests ({a_s:.0f} s and {b_s:.0f} s for a year of the shop); on the fixed models "
          + ", ".join(f"{c} sent {n}" for c, n in fired.items()))


if __name__ == "__main__":
    main()
