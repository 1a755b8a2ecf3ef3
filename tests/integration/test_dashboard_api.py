"""The dashboard's endpoints on patron-api over hand-written Redis state.

- GET /v1/dashboard/customers: a snapshot of every profile key {c:<id>}
  (several SCAN pages), segments and tiers at the api's now; tombstones,
  the customer's other keys and the trigger's {tp:<p>}:c:<id> keys are not
  customers; values that do not decode or have the wrong type are skipped
  and counted.
- GET /v1/dashboard/recommended: {tp:<p>}:reco summed over the listed
  partitions (only the top 200 of each), titles and prices from the
  catalog, ties by item id, limit checked; garbage skipped and counted.
- GET /v1/dashboard/history: each snapshot recorded under its day, the
  history bounded to 400 days by the write, one writer at a time (a second
  process does not write while the first holds the lease), the window,
  bad parameters, garbage skipped and counted.
- The static files: /, /dashboard/<file>, content types, 404, 405, HEAD.
"""
import datetime as dt
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import Stack, http, metric, proto_modules  # noqa: E402

TOPICS = {"patron.events": 1, "patron.dlq": 1}
DAY = 86_400_000
SEGMENTS = ("new", "champion", "loyal", "at_risk", "promising", "hibernating", "lost", "needs_attention")

# kind -> (orders, days since the last purchase, cents in the last event's month): segment, tier
KINDS = {
    "champion": (25, 2, 600_000, "platinum"),
    "new": (1, 1, 50_000, "silver"),
    "lost": (1, 400, 200_000, "gold"),
    "at_risk": (6, 120, 20_000, "silver"),
}
N_PROFILES = 1300  # several SCAN pages of COUNT 500


def month_of(ms):
    t = time.gmtime(ms / 1000)
    return t.tm_year * 12 + t.tm_mon - 1


def profile_bytes(pb, cid, kind, now):
    orders, days, cents, _ = KINDS[kind]
    last = now - days * DAY
    st = pb.ProfileState(customer_id=cid, orders=orders, net_spend_cents=cents, first_seen_ms=last - 30 * DAY,
                         last_seen_ms=last, last_purchase_ms=last, first_purchase_ms=last - 30 * DAY,
                         last_event_ms=last)
    st.months.add(month=month_of(last), cents=cents)
    return b"\0" * 7 + b"\1" + st.SerializeToString()


def get_raw(port, method, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def fill_profiles(r, pb, now):
    want = {"segments": dict.fromkeys(SEGMENTS, 0), "tiers": {"silver": 0, "gold": 0, "platinum": 0}}
    kinds = list(KINDS)
    pipe = r.pipeline(transaction=False)
    for i in range(N_PROFILES):
        kind = kinds[i % len(kinds)]
        cid = f"u{i}"
        pipe.set(f"{{c:{cid}}}", profile_bytes(pb, cid, kind, now))
        want["segments"][kind] += 1
        want["tiers"][KINDS[kind][3]] += 1
    # not customers
    tomb = pb.ProfileState(customer_id="gone", erased=True)
    pipe.set("{c:gone}", b"\0" * 8 + tomb.SerializeToString())
    pipe.set("{c:u1}:timers", b"x")
    pipe.set("{tp:0}:c:u1", b"x")
    pipe.set("{i:u1}", b"x")
    # garbage: counted, never a failure
    pipe.set("{c:short}", b"abc")
    pipe.set("{c:junk}", b"\0" * 8 + b"\xff\xff\xff\xff")
    pipe.hset("{c:hash}", "a", "b")
    pipe.execute()
    want["customers"] = N_PROFILES
    return want


def fill_reco(r):
    r.sadd("{trigger}:partitions", "0", "1", "2", "3", "4", "zz")
    r.zadd("{tp:0}:reco", {"a": 5, "b": 3, b"\xff": 100})
    r.zadd("{tp:1}:reco", {"a": 2, "c": 10, "d": 1, "inf-item": float("inf")})
    r.set("{tp:2}:reco", "not a sorted set")
    r.zadd("{tp:3}:reco", {f"q{i}": i for i in range(1, 251)})       # only q51..q250 are read
    r.zadd("{tp:4}:reco", {f"q{i}": 1000 for i in range(1, 51)})
    r.hset("{i:a}", mapping={"title": "Alpha \"mug\"", "price_cents": "250", "category": "x", "in_stock": "1"})
    r.hset("{i:c}", mapping={"title": "Charlie"})
    r.hset("{i:d}", mapping={"title": "Delta", "price_cents": "abc"})
    r.set("{i:q1}", "not a hash")


def old_days(n):
    """n valid history entries, days from 2000-01-01 on."""
    entry = ('{"version":1,"as_of_ms":946684800000,"customers":1,"segments":{"new":1,"champion":0,"loyal":0,'
             '"at_risk":0,"promising":0,"hibernating":0,"lost":0,"needs_attention":0},'
             '"tiers":{"silver":1,"gold":0,"platinum":0},"clusters":[]}')
    return {(dt.date(2000, 1, 1) + dt.timedelta(days=i)).isoformat(): entry for i in range(n)}


def check_history(st, r, port, want):
    """The first snapshot's day, the bound, a second writer held off, the window, garbage."""
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    status, body = http(port, "GET", "/v1/dashboard/history")
    assert status == 200 and list(body) == ["from", "to", "days"], body
    assert body["to"] == today, body
    days = body["days"]
    assert [d["day"] for d in days] == [today], [d["day"] for d in days]  # 2000's days: out of the window
    d = days[0]
    assert (d["customers"], d["segments"], d["tiers"]) == (want["customers"], want["segments"], want["tiers"]), d
    # before the first fit no cluster; after it, every customer (all bought) in one
    assert d["clusters"] == [] or sum(c["size"] for c in d["clusters"]) == want["customers"], d["clusters"]
    # 405 days were there before: the write kept the 400 most recent
    assert r.hlen("{dashboard}:history") == 400, r.hlen("{dashboard}:history")
    assert not r.hexists("{dashboard}:history", "2000-01-06") and r.hexists("{dashboard}:history", "2000-01-07")
    assert metric(port, "patron_api_dashboard_history_writes_total") >= 1
    # a second process snapshots every second, but the first holds the lease
    other = st.start_service("patron-api", log_name="patron-api-2", PATRON_DASHBOARD_REFRESH_MS="1000")
    time.sleep(4)
    assert metric(other.http_port, "patron_api_dashboard_snapshots_total") >= 2
    assert metric(other.http_port, "patron_api_dashboard_history_writes_total") == 0
    assert st.stop(other) == 0
    # the window and its bad values
    status, body = http(port, "GET", "/v1/dashboard/history?days=1")
    assert status == 200 and [d["day"] for d in body["days"]] == [today] and body["from"] == today, body
    for q in ("days=0", "days=401", "days=x", "days="):
        status, body = http(port, "GET", f"/v1/dashboard/history?{q}")
        assert status == 400 and body["error"] == "bad_request", (q, status, body)
    # garbage: skipped and counted, never a failure
    before = metric(port, "patron_api_dashboard_skipped_total", 'reason="history"')
    r.hset("{dashboard}:history", mapping={"yesterday": "{}", today[:8] + "00": "{}", "2000-12-31": "garbage"})
    status, body = http(port, "GET", "/v1/dashboard/history")
    assert status == 200 and [d["day"] for d in body["days"]] == [today], body
    assert metric(port, "patron_api_dashboard_skipped_total", 'reason="history"') == before + 3


def check_static(port):
    status, headers, body = get_raw(port, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html"), (status, headers)
    assert b"<title>Patron" in body and b"/dashboard/app.js" in body, body[:200]
    assert "default-src 'self'" in headers.get("Content-Security-Policy", ""), headers
    for path, ctype, needle in [("/dashboard/", "text/html", b"<!doctype html>"),
                                ("/dashboard/index.html", "text/html", b"<!doctype html>"),
                                ("/dashboard/app.js", "text/javascript", b"use strict"),
                                ("/dashboard/style.css", "text/css", b":root")]:
        status, headers, body = get_raw(port, "GET", path)
        assert status == 200 and headers["Content-Type"].startswith(ctype), (path, status, headers)
        assert needle in body and int(headers["Content-Length"]) == len(body), path
        src = os.path.join(os.environ.get("PATRON_SOURCE_DIR", ".."), "services", "api", "dashboard",
                           "index.html" if path.endswith("/") else path.rsplit("/", 1)[1])
        with open(src, "rb") as f:
            assert f.read() == body, f"{path} differs from {src}"
    # the page loads nothing from elsewhere
    for path in ("/", "/dashboard/app.js", "/dashboard/style.css"):
        body = get_raw(port, "GET", path)[2]
        assert b"http://" not in body.replace(b"http://www.w3.org/2000/svg", b"") and b"https://" not in body, path
    for path in ("/dashboard/nope.js", "/dashboard/../api.c", "/dashboard/embed.cmake", "/dashboard/app.js/x"):
        status, _, body = get_raw(port, "GET", path)
        assert status == 404 and b"error" in body, (path, status)
    status, headers, body = get_raw(port, "HEAD", "/dashboard/app.js")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 1000, (status, headers)
    for method, path in (("POST", "/"), ("DELETE", "/dashboard/app.js"), ("POST", "/v1/dashboard/customers"),
                         ("PUT", "/v1/dashboard/recommended"), ("HEAD", "/v1/dashboard/customers")):
        status, _, _ = get_raw(port, method, path)
        assert status == 405, (method, path, status)


def main():
    with Stack("dashboard-api") as st:
        pb_event = proto_modules(st.dir)  # noqa: F841  (compiles the contracts)
        from patron.v1 import profile_pb2 as pb
        r = st.start_redis()
        now = int(time.time() * 1000)
        want = fill_profiles(r, pb, now)
        r.hset("{dashboard}:history", mapping=old_days(405))
        st.start_kafka(TOPICS)
        api = st.start_service("patron-api")
        port = api.http_port

        check_static(port)

        # The first request waits for the first snapshot, taken at start.
        status, body = http(port, "GET", "/v1/dashboard/customers", timeout=60)
        assert status == 200, body
        assert list(body) == ["customers", "segments", "tiers", "as_of_ms", "truncated"], body
        assert body["customers"] == want["customers"], body
        assert body["segments"] == want["segments"], (body["segments"], want["segments"])
        assert body["tiers"] == want["tiers"], body
        assert body["truncated"] is False and abs(body["as_of_ms"] - now) < 60_000, body
        assert list(body["segments"]) == list(SEGMENTS) and list(body["tiers"]) == ["silver", "gold", "platinum"]
        assert metric(port, "patron_api_dashboard_skipped_total", 'reason="profile"') == 2
        assert metric(port, "patron_api_dashboard_skipped_total", 'reason="type"') == 1
        assert metric(port, "patron_api_dashboard_customers") == N_PROFILES

        # Nothing recommended yet.
        status, body = http(port, "GET", "/v1/dashboard/recommended")
        assert status == 200 and body == {"items": []}, body
        for q in ("limit=0", "limit=101", "limit=abc", "limit=", "limit=-1", "limit=1.5", "limit=007"):
            status, body = http(port, "GET", f"/v1/dashboard/recommended?{q}")
            assert status == 400 and body["error"] == "bad_request", (q, status, body)

        fill_reco(r)
        status, body = http(port, "GET", "/v1/dashboard/recommended?limit=100")
        assert status == 200, body
        items = body["items"]
        keys = [(-it["count"], it["item_id"]) for it in items]
        assert keys == sorted(keys), keys
        by = {it["item_id"]: it for it in items}
        assert by["q1"] == {"item_id": "q1", "count": 1000, "title": None, "price_cents": None}, by["q1"]
        assert [it["item_id"] for it in items[:50]] == sorted(f"q{i}" for i in range(1, 51)), items[:50]
        assert by["q250"]["count"] == 250 and "q50" in by, by
        # a, c, d, b are below the q items: a small limit on their own partitions' sums
        r.delete("{tp:3}:reco", "{tp:4}:reco")
        status, body = http(port, "GET", "/v1/dashboard/recommended")
        assert status == 200, body
        assert body["items"] == [
            {"item_id": "c", "count": 10, "title": "Charlie", "price_cents": None},
            {"item_id": "a", "count": 7, "title": 'Alpha "mug"', "price_cents": 250},
            {"item_id": "b", "count": 3, "title": None, "price_cents": None},
            {"item_id": "d", "count": 1, "title": "Delta", "price_cents": None},
        ], body
        status, body = http(port, "GET", "/v1/dashboard/recommended?limit=2")
        assert [it["item_id"] for it in body["items"]] == ["c", "a"], body
        # skipped: zz, the string at {tp:2}, the \xff member, the inf score
        assert metric(port, "patron_api_dashboard_skipped_total", 'reason="recommended"') >= 4

        check_history(st, r, port, want)

        # Redis gone: the snapshot still answers, the recommendations say 503.
        st.stop(st.redis)
        status, body = http(port, "GET", "/v1/dashboard/customers")
        assert status == 200 and body["customers"] == N_PROFILES, body
        status, body = http(port, "GET", "/v1/dashboard/recommended")
        assert status == 503, body
        assert st.stop(api) == 0
        print("dashboard endpoints: snapshot, recommended items, history, static files as expected")


if __name__ == "__main__":
    main()
