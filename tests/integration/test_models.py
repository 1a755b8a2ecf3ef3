"""The fitted models over the real stack: churn, value and clusters.

The Online Retail subset goes through Kafka -> patron-ingest -> Redis; a
patron-api on the event clock, with snapshots every second, fits the churn
and value model and the K-Means clusters in the background and stores them
in Redis. Then:

1. /v1/model says both were fitted on the last snapshot's customers;
   /v1/segments/clusters has k in 3..8, labels, a silhouette in [-1, 1],
   and sizes that add up to the customers with a purchase (counted from
   every profile); each profile's `cluster` is the nearest centroid of the
   stored clusters (recomputed here from {model}:clusters), and its
   churn_risk is a probability for the configured horizon.
2. A model written into {model}:clv by hand (with the lease held, so that
   nobody refits) is picked up by the running API and by a second API
   process started afterwards: both answer a known customer's churn_risk,
   p_alive and expected orders exactly as the closed forms computed here
   from those parameters.
3. PATRON_CLV_MODEL fixes the parameters of a third process, whatever Redis
   holds.
"""
import json
import math
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, SRC, SUBSET, Stack, expected_profiles, http, metric, run_tool, wait_for  # noqa: E402

from confluent_kafka import Producer  # noqa: E402

TOPICS = {"patron.events": 4, "patron.catalog": 1, "patron.profile-updates": 4, "patron.dlq": 1}
DAY = 86_400_000
HORIZON = 60
CRAFTED = {"version": 1, "fitted_at_ms": 4102444800000, "as_of_ms": 4102444800000, "customers": 1,
           "sample": 1, "orders": 1,
           "bands": [{"below_cents": None, "customers": 1, "r": 2.0, "alpha": 10.0, "a": 0.5, "b": 5.0}],
           "gamma_gamma": {"p": 2.0, "q": 3.0, "gamma": 5000.0}}
OVERRIDE = "0.5,20,0.3,4,2,3,5000"


def proto_modules(build_dir):
    out = os.path.join(build_dir, "py")
    os.makedirs(out, exist_ok=True)
    v1 = os.path.join(SRC, "proto", "patron", "v1")
    protos = [os.path.join("patron", "v1", f) for f in sorted(os.listdir(v1))]
    subprocess.run(["protoc", f"--python_out={out}", "-I", os.path.join(SRC, "proto"), *protos], check=True)
    sys.path.insert(0, out)
    from patron.v1 import event_pb2
    return event_pb2


def get(port, path):
    status, body = http(port, "GET", path)
    assert status == 200, (path, status, body)
    return body


def model_settled(port):
    """/v1/model once both models were fitted on the last snapshot's customers."""
    m = get(port, "/v1/model")
    snap, clv, cl = m["snapshot"], m["clv"], m["clusters"]
    ok = (snap and clv["source"] == "fitted" and cl and clv["customers"] == snap["customers"] > 0
          and clv["orders"] == snap["orders"] and cl["customers"] == snap["customers"])
    return m if ok else None


# ---- closed forms, written again from FHL 2005a -----------------------------

def p_alive(r, alpha, a, b, x, t_x, T):
    if x == 0:
        return 1.0
    return 1.0 / (1.0 + a / (b + x - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x))


def p_no_purchase(params, x, t_x, T, h):
    r, alpha, a, b = params
    alive = p_alive(r, alpha, a, b, x, t_x, T)
    return 1 - alive + alive * ((alpha + T) / (alpha + T + h)) ** (r + x)


def expected_purchases(params, x, t_x, T, t):
    """FHL 2005a eq. (10); well conditioned for these parameters. 2F1 by its series."""
    r, alpha, a, b = params
    z = t / (alpha + T + t)
    s, term, n = 0.0, 1.0, 0
    A, B, C = r + x, b + x, a + b + x - 1
    while abs(term) > 1e-16 and n < 10000:
        s += term
        term *= (A + n) * (B + n) / ((C + n) * (n + 1)) * z
        n += 1
    inner = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * s
    return (a + b + x - 1) / (a - 1) * inner * p_alive(r, alpha, a, b, x, t_x, T)


def nearest_cluster(stored, recency_days, orders, net_spend_cents):
    t = [math.log1p(max(recency_days, 0)), math.log1p(orders), math.log1p(max(net_spend_cents, 0) / 100)]
    z = [(t[j] - stored["mean"][j]) / stored["sd"][j] for j in range(3)]
    dist = [sum((z[j] - c["z"][j]) ** 2 for j in range(3)) for c in stored["clusters"]]
    return min(range(len(dist)), key=lambda i: (dist[i], i))


def main():
    expected = expected_profiles()
    with Stack("models") as st:
        pb = proto_modules(st.dir)
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        env = {"PATRON_CLOCK": "event", "PATRON_DASHBOARD_REFRESH_MS": "1000",
               "PATRON_CHURN_HORIZON_DAYS": str(HORIZON)}
        api = st.start_service("patron-api", **env)
        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET]).strip().splitlines()[-1])

        # one customer with a known history, after the subset's last day
        t0 = 1_325_376_000_000  # 2012-01-01
        p = Producer({"bootstrap.servers": brokers})
        for i, days in enumerate((0, 10, 30)):
            e = pb.Event(event_id=f"mt-{i}", customer_id="model-test", occurred_at_ms=t0 + days * DAY)
            e.purchase.order_id = f"mt-o{i}"
            e.purchase.items.add(item_id="sku-mt", category="home", quantity=1, unit_price_cents=30_000)
            p.produce("patron.events", key=b"model-test", value=e.SerializeToString())
        assert p.flush(10) == 0
        total = summary["events"] + 3
        wait_for("ingest to apply everything",
                 lambda: metric(ingest.http_port, "patron_ingest_events_total")
                 + metric(ingest.http_port, "patron_ingest_dlq_total") >= total
                 and metric(ingest.http_port, "patron_ingest_inflight_batches") == 0, timeout=180, interval=0.5)
        buyers = 1 + sum(1 for e in expected.values() if e["last_purchase_ms"] is not None)

        # ---- 1. the background fit -------------------------------------------------
        status, early = http(api.http_port, "GET", "/v1/segments/clusters")
        assert status in (200, 503), (status, early)
        # the event clock moves once every partition has caught up or gone idle
        now = wait_for("the event clock at the last purchase",
                       lambda: (n := get(api.http_port, "/v1/campaigns/stats")["as_of_ms"]) >= t0 + 30 * DAY and n,
                       timeout=60, interval=0.2)
        model = wait_for("the models fitted on every customer, at the last purchase",
                         lambda: (m := model_settled(api.http_port)) and m["snapshot"]["customers"] == buyers
                         and m["clv"]["as_of_ms"] >= now and m, timeout=120, interval=0.5)
        clusters = get(api.http_port, "/v1/segments/clusters")
        stored = json.loads(r.get("{model}:clusters"))
        stored_clv = json.loads(r.get("{model}:clv"))
        assert stored["version"] == 1 and stored_clv["version"] == 1
        assert stored_clv["fitted_at_ms"] == model["clv"]["fitted_at_ms"], "the API serves what it stored"
        assert 3 <= clusters["k"] <= 8 and len(clusters["clusters"]) == clusters["k"], clusters
        assert clusters["silhouette"] is None or -1 <= clusters["silhouette"] <= 1, clusters
        assert all(c["label"] for c in clusters["clusters"]), clusters
        assert [c["id"] for c in clusters["clusters"]] == list(range(clusters["k"]))
        assert clusters["as_of_ms"] == stored["as_of_ms"]

        with_purchase, by_cluster = 0, {}
        for cid in list(expected) + ["model-test"]:
            prof = get(api.http_port, f"/v1/customers/{cid}/profile")
            assert 0 <= prof["churn_risk"] <= 1 and prof["churn_horizon_days"] == HORIZON, prof
            assert prof["predicted_value_12m_cents"] >= 0 and prof["expected_orders_12m"] >= 0, prof
            if prof["last_purchase_ms"] is None:
                assert prof["cluster"] is None and prof["p_alive"] is None, prof
                continue
            with_purchase += 1
            assert 0 <= prof["p_alive"] <= 1, prof
            c = prof["cluster"]
            assert c["label"] == clusters["clusters"][c["id"]]["label"], (prof, clusters)
            # recency as the API computes it, at its now; whole-day rfm.recency_days is
            # close enough only away from a boundary, so compare the nearest cluster
            # at both ends of the day
            rec = prof["rfm"]["recency_days"]
            candidates = {nearest_cluster(stored, d, prof["orders"], prof["net_spend_cents"])
                          for d in (rec, rec + 0.999)}
            assert c["id"] in candidates, (cid, c, candidates)
            by_cluster[c["id"]] = by_cluster.get(c["id"], 0) + 1
        sizes = sum(c["size"] for c in clusters["clusters"])
        assert sizes == with_purchase == model["snapshot"]["customers"], (sizes, with_purchase, model)
        assert stored["sample"] == with_purchase, "the subset fits in one sample: sizes are exact"
        assert by_cluster == {c["id"]: c["size"] for c in clusters["clusters"] if c["size"]}, (by_cluster, clusters, model)

        # ---- 2. the parameters in Redis, used by every process ------------------------------
        r.set("{model}:lease", "test", px=600_000)  # nobody refits from now on
        r.set("{model}:clv", json.dumps(CRAFTED))
        api2 = st.start_service("patron-api", **env)
        for port in (api.http_port, api2.http_port):
            wait_for("the hand-written model", lambda port=port: get(port, "/v1/model")["clv"]["bands"][0]["r"] == 2.0,
                     timeout=30, interval=0.2)
        assert get(api.http_port, "/v1/campaigns/stats")["as_of_ms"] == now, "the clock has not moved"
        x, t_x, T = 2, 30.0, (now - t0) / DAY
        params = [CRAFTED["bands"][0][k] for k in ("r", "alpha", "a", "b")]
        want_risk = p_no_purchase(params, x, t_x, T, HORIZON)
        want_alive = p_alive(*params, x, t_x, T)
        want_orders = expected_purchases(params, x, t_x, T, 365)
        gg = CRAFTED["gamma_gamma"]
        want_value = want_orders * gg["p"] * (gg["gamma"] + 3 * 30_000) / (gg["p"] * 3 + gg["q"] - 1)
        for port in (api.http_port, api2.http_port):
            prof = get(port, "/v1/customers/model-test/profile")
            assert abs(prof["churn_risk"] - want_risk) < 6e-5, (port, prof["churn_risk"], want_risk)
            assert abs(prof["p_alive"] - want_alive) < 6e-5, (port, prof["p_alive"], want_alive)
            assert abs(prof["expected_orders_12m"] - want_orders) < 6e-5, (prof, want_orders)
            assert abs(prof["predicted_value_12m_cents"] - want_value) <= 1, (prof, want_value)
        assert metric(api2.http_port, "patron_api_model_fits_total") == 0, "the second process did not fit"

        # ---- 3. PATRON_CLV_MODEL --------------------------------------------------------------------
        api3 = st.start_service("patron-api", PATRON_CLV_MODEL=OVERRIDE, **env)
        m3 = get(api3.http_port, "/v1/model")
        assert m3["clv"]["source"] == "override" and m3["clv"]["override"] == OVERRIDE, m3
        params = [float(v) for v in OVERRIDE.split(",")[:4]]
        prof = get(api3.http_port, "/v1/customers/model-test/profile")
        assert abs(prof["churn_risk"] - p_no_purchase(params, x, t_x, T, HORIZON)) < 6e-5, prof

        for proc in (api3, api2, api, ingest):
            assert st.stop(proc) == 0, f"{proc.patron_name} did not stop cleanly"
    print("test_models: ok")


if __name__ == "__main__":
    main()
