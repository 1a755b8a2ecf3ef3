"""The Online Retail replay on a real Redis Cluster that loses a master.

Three masters and three replicas (harness.py's Stack.start_redis_cluster:
redis-server --cluster-enabled, redis-cli --cluster create) hold the state of
patron-ingest, patron-trigger (the example campaigns, event clock) and
patron-api, all started with PATRON_REDIS_CLUSTER. The committed subset is replayed with derived browsing
and derived profiles; halfway through, the master holding {items} (written
by every ingest batch) is killed with SIGKILL and its replica promoted.
Then:
  (a) every profile through the API equals the oracle computed from the
      replayed events (scripts/expected_profiles.py --from-events);
  (b) no message_id twice on the campaign topics, and each campaign's
      "sent" counter (summed over the {tp:<p>}:stats of every master) equals
      its messages on the topics;
  (c) /v1/campaigns/stats and /v1/dashboard/customers answer on the cluster,
      the dashboard counting the profiles of every master, not one.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SRC, SUBSET, Stack, assert_profiles_exact, campaign_messages, http, metric,  # noqa: E402
                     proto_modules, run_tool, trigger_stats, wait_for)

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1,
          "patron.campaign.sms": 2, "patron.campaign.push": 2, "patron.campaign.email": 2}
CAMPAIGNS = os.path.join(SRC, "examples", "campaigns.yaml")
NODE_TIMEOUT_MS = 2000
CAMPAIGN_IDS = ("cart-abandonment", "browse-abandonment", "cross-sell", "review-request", "winback-60d",
                "at-risk", "tier-upgrade", "birthday")


def cluster_env(st, cl, **extra):
    env = {"PATRON_REDIS_URL": "", "PATRON_REDIS_CLUSTER": cl.seeds(),
           "PATRON_RDKAFKA_SESSION_TIMEOUT_MS": "6000", "PATRON_RDKAFKA_HEARTBEAT_INTERVAL_MS": "500"}
    env.update(extra)
    return env


def main():
    t0 = time.time()
    with Stack("cluster-replay") as st:
        pb = proto_modules(st.dir)
        from patron.v1 import campaign_pb2
        events = os.path.join(st.dir, "events.bin")
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--file", SUBSET,
                                       "--out", events, "--derive-browse", "--derive-profile"]).strip().splitlines()[-1])
        total = summary["events"]
        expected = json.loads(run_tool(["/usr/bin/python3", os.path.join(SRC, "scripts", "expected_profiles.py"),
                                        "--from-events", events]))
        assert len(expected) > 100, "the subset should hold a few hundred customers"

        cl = st.start_redis_cluster(masters=3, replicas=1, node_timeout_ms=NODE_TIMEOUT_MS)
        brokers = st.start_kafka(TOPICS)
        victim = cl.master_of("{items}:pop")
        ingest = st.start_service("patron-ingest", **cluster_env(st, cl, PATRON_CLOCK="event"))
        trig = st.start_service("patron-trigger", **cluster_env(st, cl, PATRON_CLOCK="event",
                                                                PATRON_CAMPAIGNS=CAMPAIGNS))
        api = st.start_service("patron-api", **cluster_env(st, cl, PATRON_CLOCK="event"))
        for svc in (ingest, trig, api):
            wait_for(f"{svc.patron_name} ready on the cluster",
                     lambda svc=svc: http(svc.http_port, "GET", "/readyz")[0] == 200, timeout=30)

        producer = st.spawn("replay", [os.path.join(BIN, "patron-replay"), "file", "--in", events,
                                       "--brokers", brokers, "--topic", "patron.events"])

        # kill -9 the master of {items} halfway, and wait for its replica
        wait_for("ingest halfway", lambda: metric(ingest.http_port, "patron_ingest_events_total") >= total // 2,
                 timeout=120, interval=0.02)
        at_kill = metric(ingest.http_port, "patron_ingest_events_total")
        cl.procs[victim].kill()
        cl.procs[victim].wait()
        killed_at = time.time()
        assert at_kill < total, "ingest had finished before the kill: the test proves nothing"

        def promoted():
            survivors = cl.alive()
            if not all(cl.state_ok(p) for p in survivors):
                return False
            return cl.master_of("{items}:pop") != victim
        wait_for("the replica's failover", promoted, timeout=30, interval=0.2)
        failover_s = time.time() - killed_at
        assert len(cl.masters()) == 3, cl.nodes(cl.alive()[0])
        assert producer.wait(timeout=120) == 0, "patron-replay failed"

        # (a) profiles exact
        assert_profiles_exact(api.http_port, expected, " after the failover")
        assert metric(ingest.http_port, "patron_ingest_resets_total") >= 0

        # (b) the trigger settled: every update consumed, the outbox empty
        rc = cl.client()
        parts = range(TOPICS["patron.profile-updates"])

        last = {"n": -1}

        def settled():
            if sum(rc.hlen("{tp:%d}:outbox" % p) for p in parts):
                return False
            if metric(trig.http_port, "patron_trigger_buffered_updates") != 0:
                return False
            n = metric(trig.http_port, "patron_trigger_updates_total")
            quiet, last["n"] = n == last["n"] and n > 0, n
            return quiet
        wait_for("trigger settled", settled, timeout=120, interval=3.0)
        time.sleep(4)  # idle partitions release the last timers
        wait_for("outbox empty", lambda: sum(rc.hlen("{tp:%d}:outbox" % p) for p in parts) == 0, timeout=30)

        msgs = campaign_messages(brokers, campaign_pb2)
        assert msgs, "no campaign message at all: the test proves nothing"
        seen = {}
        for ch, m in msgs:
            seen.setdefault(m.message_id, []).append(ch)
        dups = {k: v for k, v in seen.items() if len(v) > 1}
        assert not dups, f"duplicated messages: {list(dups.items())[:5]}"
        sv = trigger_stats(rc)
        for c in CAMPAIGN_IDS:
            on_topic = sum(1 for _, m in msgs if m.campaign_id == c)
            sent = sum(v for (cc, _, k), v in sv.items() if cc == c and k == "sent")
            assert sent == on_topic, (c, sent, on_topic)

        # (c) the API's aggregates over the cluster
        status, body = http(api.http_port, "GET", "/v1/campaigns/stats")
        assert status == 200, (status, body)
        api_sent = sum(c["sent"] for c in body["campaigns"])
        assert api_sent == len(msgs), (api_sent, len(msgs))
        # A fresh API takes its first dashboard snapshot now, over every master.
        profiles = 0
        for p in cl.masters():
            profiles += sum(1 for k in cl.node(p).scan_iter(match="{c:*}", count=1000) if k.endswith(b"}"))
        keys_per_master = [sum(1 for k in cl.node(p).scan_iter(match="{c:*}", count=1000) if k.endswith(b"}"))
                           for p in cl.masters()]
        assert all(n > 0 for n in keys_per_master), keys_per_master
        api2 = st.start_service("patron-api", **cluster_env(st, cl, PATRON_CLOCK="event"))
        status, dash = wait_for("the dashboard's first snapshot",
                                lambda: (lambda r: r if r[0] == 200 else None)(
                                    http(api2.http_port, "GET", "/v1/dashboard/customers")), timeout=60)
        assert dash["customers"] == profiles and not dash["truncated"], (dash, profiles, keys_per_master)
        status, reco = http(api2.http_port, "GET", "/v1/dashboard/recommended?limit=5")
        assert status == 200, (status, reco)

        for svc in (ingest, trig, api, api2):
            assert st.stop(svc) == 0, f"{svc.patron_name} did not exit cleanly on SIGTERM"
        print(f"ok: {len(expected)} customers exact on a 3+3 Redis Cluster; master :{victim} killed after "
              f"{int(at_kill)} of {total} events, replica promoted in {failover_s:.1f}s; {len(msgs)} campaign "
              f"messages, none twice; dashboard {profiles} profiles over {keys_per_master}; "
              f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
