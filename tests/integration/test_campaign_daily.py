"""GET /v1/campaigns/daily over hand-written Redis state.

patron-trigger keeps its counters per day of event time as well
({tp:<p>}:daily:<YYYY-MM-DD>, the fields of {tp:<p>}:stats, indexed by the
sorted set {tp:<p>}:daily of dates scored by day number). Written here by
hand, with the API on the event clock at a known now, so that every case is
exact: the window (its default, its bounds, the clock's day as its end),
every day listed with zeros, sums over partitions and variants, eligible =
every decision, the control group, one campaign asked for, ordering; bad
parameters (400), garbage of every kind (skipped and counted, never a
failure), and Redis gone (503).
"""
import datetime as dt
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, metric, wait_for  # noqa: E402

TOPICS = {"patron.events": 1, "patron.dlq": 1}
DECISIONS = ("sent", "exited", "consent", "audience", "control_group", "cooldown", "frequency_cap")
NOW = int(dt.datetime(2011, 12, 9, 12, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)

# (partition, date) -> {field: value}; partition 2 is not listed, so it must not count.
STATE = {
    (0, "2011-12-09"): {"cross-sell||sent": 3, "cross-sell||consent": 2, "cross-sell||conversions": 1,
                        "cross-sell||revenue_cents": 500, "cart|A|sent": 2, "cart|B|sent": 4,
                        "cart|A|control_group": 1, "cart|A|control_conversions": 1,
                        "cart|A|control_revenue_cents": 70, "cart|B|exited": 5},
    (1, "2011-12-09"): {"cross-sell||sent": 10, "cross-sell||frequency_cap": 1, "cart|A|conversions": 2,
                        "cart|A|revenue_cents": 1234},
    (0, "2011-12-01"): {"cross-sell||sent": 5, "birthday||sent": 1},
    (1, "2011-11-10"): {"birthday||cooldown": 4},                  # the first day of 30
    (1, "2011-11-09"): {"birthday||sent": 9},                      # the day before: out of 30, in 90
    (0, "2011-10-01"): {"cross-sell||sent": 7, "winback||sent": 1},  # 69 days back
    (2, "2011-12-09"): {"cross-sell||sent": 1000},                 # unlisted partition
}
LISTED = ["0", "1", "3"]  # 3: listed, no days yet


def day_number(date):
    return (dt.date.fromisoformat(date) - dt.date(1970, 1, 1)).days


def fill(r):
    r.sadd("{trigger}:partitions", *LISTED)
    for (p, date), fields in STATE.items():
        for f, v in fields.items():
            r.hincrby(f"{{tp:{p}}}:daily:{date}", f, v)
        r.zadd(f"{{tp:{p}}}:daily", {date: day_number(date)})


def expected(days, only=None):
    """The answer from STATE, computed here from the definition."""
    to = dt.date(2011, 12, 9)
    dates = [(to - dt.timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
    rows = {}
    for (p, date), fields in STATE.items():
        if str(p) not in LISTED or date not in dates:
            continue
        for f, v in fields.items():
            cid, _, counter = f.split("|")
            if only and cid != only:
                continue
            day = rows.setdefault(cid, {d: dict.fromkeys(("eligible", "sent", "conversions", "revenue_cents",
                                                            "would_have_sent", "control_conversions",
                                                            "control_revenue_cents"), 0) for d in dates})[date]
            if counter in DECISIONS:
                day["eligible"] += v
            key = {"control_group": "would_have_sent"}.get(counter, counter)
            if key in day:
                day[key] += v
    return {"from": dates[0], "to": dates[-1], "as_of_ms": NOW, "campaigns": [
        {"campaign_id": cid, "days": [
            {"day": d, "eligible": x["eligible"], "sent": x["sent"], "conversions": x["conversions"],
             "revenue_cents": x["revenue_cents"],
             "control": {"would_have_sent": x["would_have_sent"], "conversions": x["control_conversions"],
                         "revenue_cents": x["control_revenue_cents"]}}
            for d, x in rows[cid].items()]}
        for cid in sorted(rows)]}


def get(port, query=""):
    return http(port, "GET", "/v1/campaigns/daily" + query)


def main():
    with Stack("campaign-daily") as st:
        r = st.start_redis()
        st.start_kafka(TOPICS)
        r.hset("{clock}", "0", f"{NOW}:1")  # the event clock: ingest applied everything up to NOW
        api = st.start_service("patron-api", PATRON_CLOCK="event")
        port = api.http_port
        wait_for("the event clock", lambda: get(port)[1].get("to") == "2011-12-09", timeout=20)

        # Nothing yet: no campaign, the window still spelled out.
        status, body = get(port)
        assert status == 200 and body == {"from": "2011-11-10", "to": "2011-12-09", "as_of_ms": NOW,
                                          "campaigns": []}, body

        fill(r)
        for query, days, only in (("", 30, None), ("?days=90", 90, None), ("?days=1", 1, None),
                                  ("?days=400", 400, None), ("?campaign=cart", 30, "cart"),
                                  ("?days=90&campaign=birthday", 90, "birthday"),
                                  ("?campaign=nobody", 30, "nobody")):
            status, body = get(port, query)
            assert status == 200, (query, body)
            want = expected(days, only)
            assert body == want, f"{query}:\n got  {body}\n want {want}"
        # the cases spelled out, so that a wrong oracle cannot hide them
        body = get(port)[1]
        by = {c["campaign_id"]: {d["day"]: d for d in c["days"]} for c in body["campaigns"]}
        assert list(by) == ["birthday", "cart", "cross-sell"], list(by)
        today = by["cross-sell"]["2011-12-09"]
        assert (today["sent"], today["eligible"], today["conversions"], today["revenue_cents"]) == (13, 16, 1, 500)
        cart = by["cart"]["2011-12-09"]
        assert (cart["sent"], cart["eligible"], cart["control"]) == \
            (6, 12, {"would_have_sent": 1, "conversions": 1, "revenue_cents": 70}), cart
        assert by["birthday"]["2011-11-10"]["eligible"] == 4 and by["birthday"]["2011-11-10"]["sent"] == 0
        assert by["cart"]["2011-12-01"]["sent"] == 0 and len(by["cart"]) == 30
        assert metric(port, "patron_api_stats_skipped_total") == 0

        # Bad parameters.
        for q in ("days=0", "days=401", "days=abc", "days=", "days=1.5", "days=-3", "campaign=Upper",
                  "campaign=", "campaign=a%7Cb", "campaign=" + "x" * 65):
            status, body = get(port, "?" + q)
            assert status == 400 and body["error"] == "bad_request", (q, status, body)
        for method in ("POST", "DELETE"):
            status, body = http(port, method, "/v1/campaigns/daily", body=b"" if method == "POST" else None)
            assert status == 405 and body["error"] == "method_not_allowed", (method, status, body)

        # Garbage: skipped and counted; the good counters still add up.
        r.zadd("{tp:0}:daily", {"2011-12-08": day_number("2011-12-07"),   # date and score disagree
                                "yesterday": day_number("2011-12-08"),    # not a date
                                "2011-12-05": day_number("2011-12-05")})  # listed, no hash: zeros
        r.hset("{tp:1}:daily:2011-12-09", mapping={"cross-sell||sent|x": "1", "nopipe": "2",
                                                    "cross-sell||exited": "-1", "cross-sell||cooldown": "x"})
        r.set("{tp:3}:daily", "not a sorted set")
        r.set("{tp:1}:daily:2011-12-01", "not a hash")
        r.zadd("{tp:1}:daily", {"2011-12-01": day_number("2011-12-01")})
        r.sadd("{trigger}:partitions", "abc", "-1")
        status, body = get(port)
        assert status == 200 and body == expected(30), body
        assert metric(port, "patron_api_stats_skipped_total", 'reason="field"') == 4  # 2 index, 2 fields
        assert metric(port, "patron_api_stats_skipped_total", 'reason="value"') == 2
        assert metric(port, "patron_api_stats_skipped_total", 'reason="partition"') == 4  # 2 names, 2 types

        # Redis gone: 503, and the API stays up.
        st.stop(st.redis)
        wait_for("503 without redis", lambda: get(port)[0] == 503, timeout=10)
        status, body = get(port)
        assert status == 503 and body["error"] == "unavailable", body
        assert st.stop(api) == 0
        print("campaigns by day: windows, sums, one campaign, bad parameters, garbage and outage as expected")


if __name__ == "__main__":
    main()
