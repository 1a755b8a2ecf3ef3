"""GET /v1/campaigns/stats over hand-written Redis state.

patron-trigger keeps its counters per partition of patron.profile-updates
({tp:<p>}:stats, fields "<campaign>|<variant>|<counter>", and the set
{trigger}:partitions); the API sums them. Written here by hand, so that
every case is exact: sums over partitions, a partition listed before it has
counters, rates and uplift with their nulls, the 95% interval against an
independent computation, ordering, and garbage of every kind (skipped and
counted in patron_api_stats_skipped_total, never a failure). Then Redis goes
away: 503.
"""
import math
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, metric, wait_for  # noqa: E402

TOPICS = {"patron.events": 1, "patron.dlq": 1}
COUNTERS = ("sent", "exited", "consent", "audience", "control_group", "cooldown", "frequency_cap",
            "conversions", "revenue_cents", "control_conversions", "control_revenue_cents")
REASONS = ("consent", "audience", "control_group", "cooldown", "frequency_cap")

# (partition, campaign, variant) -> counters; partition 2 holds counters but
# is not listed in {trigger}:partitions, so it must not count.
STATE = {
    (0, "cart-abandonment", "A"): dict(sent=40, exited=7, consent=3, audience=2, control_group=4, cooldown=1,
                                       frequency_cap=2, conversions=6, revenue_cents=12345,
                                       control_conversions=1, control_revenue_cents=999),
    (1, "cart-abandonment", "A"): dict(sent=60, exited=3, consent=7, control_group=6, conversions=9,
                                       revenue_cents=55, control_conversions=0),
    (0, "cart-abandonment", "B"): dict(sent=50, conversions=5, control_group=5, control_conversions=2),
    (1, "cross-sell", ""): dict(sent=10, consent=5, conversions=2, revenue_cents=5000),
    (3, "cross-sell", ""): dict(sent=5, consent=1),
    (3, "at-risk", ""): dict(consent=12, audience=3),             # nothing sent: rates null
    (3, "birthday", ""): dict(control_group=2, control_conversions=2),  # only control
    (1, "tier-upgrade", ""): dict(sent=3, conversions=5),        # more conversions than sends
    (2, "cross-sell", ""): dict(sent=1000),                      # unlisted partition
}
LISTED = ["0", "1", "3", "5"]  # 5: assigned, no counters yet

GARBAGE_FIELDS = {  # field -> value, in {tp:0}:stats
    "cross-sell||sent": "abc",          # value not an integer
    "cross-sell||exited": "1.5",
    "cross-sell||cooldown": "-3",
    "cross-sell||audience": " 7",
    "cross-sell||frequency_cap": "007",
    "cross-sell||conversions": "",
    "nopipe": "1",                      # fields that do not parse
    "a|b": "1",
    "a|b|unknown": "1",
    "Upper|A|sent": "1",
    "x|A|sent|extra": "1",
    "x|A!|sent": "1",
    "|A|sent": "1",
    ("y" * 65) + "|A|sent": "1",
}
BAD_VALUES = 6
BAD_FIELDS = 8


def expected_rows():
    rows = {}
    for (p, cid, var), counters in STATE.items():
        if str(p) not in LISTED:
            continue
        row = rows.setdefault((cid, var), dict.fromkeys(COUNTERS, 0))
        for k, v in counters.items():
            row[k] += v
    out = []
    for (cid, var), c in sorted(rows.items()):
        rate = c["conversions"] / c["sent"] if c["sent"] else None
        crate = c["control_conversions"] / c["control_group"] if c["control_group"] else None
        uplift = rate - crate if rate is not None and crate is not None else None
        ci = None
        if uplift is not None and 0 <= rate <= 1 and 0 <= crate <= 1:
            se = math.sqrt(rate * (1 - rate) / c["sent"] + crate * (1 - crate) / c["control_group"])
            ci = [uplift - 1.959963984540054 * se, uplift + 1.959963984540054 * se]
        out.append({
            "campaign_id": cid, "variant": var,
            "eligible": c["sent"] + c["exited"] + sum(c[r] for r in REASONS),
            "sent": c["sent"], "exited": c["exited"],
            "suppressed": {r: c[r] for r in REASONS},
            "conversions": c["conversions"], "revenue_cents": c["revenue_cents"],
            "conversion_rate": rate,
            "control": {"would_have_sent": c["control_group"], "conversions": c["control_conversions"],
                        "revenue_cents": c["control_revenue_cents"], "conversion_rate": crate},
            "uplift": uplift, "uplift_ci95": ci,
        })
    return out


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        return a is not None and b is not None and math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b


def check_against(got, want):
    assert [(r["campaign_id"], r["variant"]) for r in got] == [(r["campaign_id"], r["variant"]) for r in want], \
        (got, want)
    for g, w in zip(got, want):
        assert close(g, w), f"\n got  {g}\n want {w}"


def fill(r):
    r.sadd("{trigger}:partitions", *LISTED)
    for (p, cid, var), counters in STATE.items():
        for k, v in counters.items():
            r.hincrby(f"{{tp:{p}}}:stats", f"{cid}|{var}|{k}", v)


def main():
    with Stack("campaign-stats") as st:
        r = st.start_redis()
        st.start_kafka(TOPICS)
        api = st.start_service("patron-api")
        port = api.http_port

        # Nothing yet: an empty list, and the api clock's now (wall here).
        before = int(time.time() * 1000)
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 200 and body["campaigns"] == [], body
        assert before - 1000 <= body["as_of_ms"] <= int(time.time() * 1000) + 1000, body
        for method in ("POST", "DELETE", "PUT"):
            status, body = http(port, method, "/v1/campaigns/stats", body=b"" if method != "DELETE" else None)
            assert status == 405 and body["error"] == "method_not_allowed", (method, status, body)

        # A partition listed before it has counters.
        r.sadd("{trigger}:partitions", "5")
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 200 and body["campaigns"] == [], body

        fill(r)
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 200, body
        assert set(body) == {"campaigns", "as_of_ms"}, body
        want = expected_rows()
        check_against(body["campaigns"], want)
        by = {(c["campaign_id"], c["variant"]): c for c in body["campaigns"]}
        # the cases spelled out, so that a wrong oracle cannot hide them
        assert by[("cross-sell", "")]["sent"] == 15 and by[("cross-sell", "")]["eligible"] == 21, by
        assert by[("cart-abandonment", "A")]["sent"] == 100, by
        assert by[("at-risk", "")]["conversion_rate"] is None and by[("at-risk", "")]["uplift"] is None
        assert by[("at-risk", "")]["uplift_ci95"] is None and by[("at-risk", "")]["eligible"] == 15
        assert by[("birthday", "")]["control"]["conversion_rate"] == 1.0
        assert by[("birthday", "")]["conversion_rate"] is None
        assert by[("tier-upgrade", "")]["conversion_rate"] > 1 and by[("tier-upgrade", "")]["uplift"] is None
        ca = by[("cart-abandonment", "B")]
        assert ca["uplift"] == 0.1 - 0.4 and ca["uplift_ci95"][0] < ca["uplift"] < ca["uplift_ci95"][1], ca
        assert metric(port, "patron_api_stats_skipped_total") == 0

        # Garbage: skipped and counted; the good counters still add up.
        for field, value in GARBAGE_FIELDS.items():
            r.hset("{tp:0}:stats", field, value)
        r.sadd("{trigger}:partitions", "abc", "-1", "99999999", "01", "7", "")
        r.set("{tp:7}:stats", "not a hash")
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 200, body
        check_against(body["campaigns"], want)
        assert metric(port, "patron_api_stats_skipped_total", 'reason="value"') == BAD_VALUES
        assert metric(port, "patron_api_stats_skipped_total", 'reason="field"') == BAD_FIELDS
        assert metric(port, "patron_api_stats_skipped_total", 'reason="partition"') == 6

        # A sum that would overflow int64 is skipped, not wrapped (each
        # request counts again what it skips: the garbage is still there).
        r.hset("{tp:0}:stats", "big||sent", str(2**63 - 1))
        r.hset("{tp:1}:stats", "big||sent", "1")
        status, body = http(port, "GET", "/v1/campaigns/stats")
        big = [c for c in body["campaigns"] if c["campaign_id"] == "big"]
        assert status == 200 and len(big) == 1 and big[0]["sent"] in (2**63 - 1, 1), big
        assert metric(port, "patron_api_stats_skipped_total", 'reason="value"') == 2 * BAD_VALUES + 1

        # The set itself of the wrong type: no campaigns, counted.
        r.delete("{trigger}:partitions")
        r.set("{trigger}:partitions", "oops")
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 200 and body["campaigns"] == [], body

        # Redis gone: 503, and the API stays up.
        st.stop(st.redis)
        wait_for("503 without redis", lambda: http(port, "GET", "/v1/campaigns/stats")[0] == 503, timeout=10)
        status, body = http(port, "GET", "/v1/campaigns/stats")
        assert status == 503 and body["error"] == "unavailable", body
        assert http(port, "GET", "/healthz")[0] == 200
        # a clean stop (under ASan a leak would make it non-zero)
        assert st.stop(api) == 0
        print("campaign stats: sums, nulls, interval, garbage and outage all as expected")


if __name__ == "__main__":
    main()
