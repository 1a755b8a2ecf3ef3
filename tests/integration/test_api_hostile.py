"""patron-api against hostile clients, a stalled Redis and a blank token.

1. Slow clients: 1,100 connections each holding a half-sent request take
   every ordinary connection; /healthz, /readyz and /metrics on new
   connections (as a kubelet probes: a new connection each time, 1 s
   timeout) must still be answered within 1 s, and anything else gets a
   quick 503 with Retry-After.
2. A stalled Redis (SIGSTOP: connected, not answering, as a stuck fork or
   a long script): a recommendation and a profile request are answered 503
   within 1.5 s, /readyz says 503 within a few seconds, with traffic and
   without; after SIGCONT everything recovers. patron-ingest and
   patron-trigger, idle on the same Redis, turn not ready and back too. On a
   Redis Cluster, a stopped master fails the requests for its slots the same
   way.
3. PATRON_API_TOKEN set but empty or short stops the API with exit 2 naming
   the variable (and not echoing the value); unset runs it open with a
   warning.
4. With a token, every /v1 route and the dashboard need it (401 and
   WWW-Authenticate otherwise; an unauthenticated DELETE publishes no
   erasure); the probes stay open. The dashboard's login form sets a session
   cookie that opens the page and what it reads, and nothing else.

Each part runs on its own stack and reports; the test fails if any part did.
"""
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.client import HTTPConnection

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, Stack, consume_all, free_port, http, metric, slot_of, wait_for  # noqa: E402

TOPICS = {"patron.events": 2, "patron.catalog": 1, "patron.profile-updates": 2, "patron.dlq": 1,
          "patron.campaign.sms": 1, "patron.campaign.push": 1, "patron.campaign.email": 1}
TOKEN = "hostile-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SLOW_CLIENTS = 1100
HALF = b"GET /v1/campaigns/stats HTTP/1.1\r\nHost: slow\r\nX-Slow: "  # never finished


def raw(port, method, path, headers=None, body=None, timeout=1.0):
    """(status, headers dict lower-cased, body bytes, seconds) on a new connection."""
    t0 = time.monotonic()
    c = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.monotonic() - t0
    finally:
        c.close()


# ---- 1. slow clients ------------------------------------------------------------------

def part_slow_clients():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = SLOW_CLIENTS + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    with Stack("hostile-slow") as st:
        st.start_redis()
        st.start_kafka(TOPICS)
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN)
        port = api.http_port
        slow = []
        try:
            for i in range(SLOW_CLIENTS):
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.sendall(HALF)
                slow.append(s)
            time.sleep(0.5)  # the server has taken what it takes
            worst = 0.0
            for rnd in range(3):
                for path in ("/healthz", "/readyz", "/metrics"):
                    try:
                        status, hdrs, body, took = raw(port, "GET", path, timeout=1.0)
                    except OSError as e:
                        raise AssertionError(f"{path} (round {rnd + 1}) behind {len(slow)} slow clients: "
                                             f"no answer within 1 s ({e!r})")
                    assert status == 200, (path, status, body[:200])
                    worst = max(worst, took)
            # anything else on a new connection: a quick 503, not a hang
            status, hdrs, body, took = raw(port, "GET", "/v1/campaigns/stats", AUTH, timeout=1.0)
            assert status == 503 and hdrs.get("retry-after") and hdrs.get("connection") == "close", \
                (status, hdrs, body[:200])
            rejected = metric(port, "patron_http_connections_rejected_total")
            assert rejected >= 1, rejected
        finally:
            for s in slow:
                s.close()
        # the slow ones gone, the API serves as before
        wait_for("the API to serve again", lambda: http(port, "GET", "/v1/campaigns/stats", headers=AUTH)[0] == 200,
                 timeout=15)
        assert api.poll() is None, "patron-api died"
        return f"probes answered behind {SLOW_CLIENTS} slow clients (slowest {worst * 1000:.0f} ms)"


# ---- 2. a stalled Redis -----------------------------------------------------------------

def timed(port, method, path, headers=None, timeout=5.0):
    try:
        status, _, body, took = raw(port, method, path, headers, timeout=timeout)
        return status, took
    except OSError:
        return None, timeout


def part_stalled_redis():
    campaigns = None
    with Stack("hostile-stall") as st:
        st.start_redis()
        st.start_kafka(TOPICS)
        campaigns = os.path.join(st.dir, "campaigns.yaml")
        with open(campaigns, "w") as fh:
            fh.write("campaigns:\n  - id: cross-sell\n    when: { event: purchase }\n    channel: email\n"
                     "    template: you_may_also_like\n    recommendations: 2\n")
        ingest = st.start_service("patron-ingest")
        trigger = st.start_service("patron-trigger", PATRON_CAMPAIGNS=campaigns)
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN)
        port = api.http_port
        for svc in (api, ingest, trigger):
            wait_for(f"{svc.patron_name} ready", lambda: http(svc.http_port, "GET", "/readyz")[0] == 200, timeout=30)
        assert raw(port, "GET", "/v1/customers/nobody/profile", AUTH)[0] == 404
        assert raw(port, "GET", "/v1/customers/nobody/recommendations", AUTH)[0] == 200

        # with traffic: requests in flight when Redis stops are answered 503 within 1.5 s
        st.redis.send_signal(signal.SIGSTOP)
        try:
            results = {}

            def ask(name, path):
                results[name] = timed(port, "GET", path, AUTH)
            threads = [threading.Thread(target=ask, args=("recommendations", "/v1/customers/c1/recommendations")),
                       threading.Thread(target=ask, args=("profile", "/v1/customers/c1/profile"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for name, (status, took) in results.items():
                assert status == 503 and took < 1.5, f"{name} with Redis stopped: {status} after {took:.2f} s"
            t0 = time.monotonic()
            wait_for("/readyz 503 with Redis stopped", lambda: http(port, "GET", "/readyz")[0] == 503,
                     timeout=5, interval=0.1)
            ready_after = time.monotonic() - t0
            # later requests fail fast while it stays stopped
            for path in ("/v1/customers/c2/profile", "/v1/customers/c2/recommendations"):
                status, took = timed(port, "GET", path, AUTH)
                assert status == 503 and took < 1.5, f"{path}: {status} after {took:.2f} s"
            # the idle services see it as well, through their heartbeat
            for svc in (ingest, trigger):
                wait_for(f"{svc.patron_name} /readyz 503 with Redis stopped",
                         lambda: http(svc.http_port, "GET", "/readyz")[0] == 503, timeout=10, interval=0.2)
            assert metric(port, "patron_redis_timeouts_total") >= 1
            assert http(port, "GET", "/healthz")[0] == 200, "liveness must not follow Redis"
        finally:
            st.redis.send_signal(signal.SIGCONT)
        for svc in (api, ingest, trigger):
            wait_for(f"{svc.patron_name} ready again after SIGCONT",
                     lambda: http(svc.http_port, "GET", "/readyz")[0] == 200, timeout=20)
        assert raw(port, "GET", "/v1/customers/nobody/profile", AUTH)[0] == 404
        assert raw(port, "GET", "/v1/customers/nobody/recommendations", AUTH)[0] == 200

        # without traffic: an idle API notices too
        time.sleep(2)
        st.redis.send_signal(signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            wait_for("an idle API's /readyz 503", lambda: http(port, "GET", "/readyz")[0] == 503,
                     timeout=6, interval=0.1)
            idle_after = time.monotonic() - t0
        finally:
            st.redis.send_signal(signal.SIGCONT)
        wait_for("ready again", lambda: http(port, "GET", "/readyz")[0] == 200, timeout=20)
        for svc in (api, ingest, trigger):
            assert svc.poll() is None, f"{svc.patron_name} died"
        return (f"503 within {max(t for _, t in results.values()):.2f} s, /readyz 503 after {ready_after:.1f} s "
                f"(idle: {idle_after:.1f} s), recovered after SIGCONT")


def part_stalled_cluster_master():
    with Stack("hostile-cluster") as st:
        cl = st.start_redis_cluster(masters=3, replicas=0)
        st.start_kafka(TOPICS)
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN)
        port = api.http_port
        wait_for("api ready on the cluster", lambda: http(port, "GET", "/readyz")[0] == 200, timeout=30)
        # two customers whose profiles live on different masters
        stopped = cl.master_of("{c:c1}")
        other = next(c for c in (f"c{i}" for i in range(2, 100)) if cl.master_of("{c:%s}" % c) != stopped)
        assert slot_of("{c:c1}") != slot_of("{c:%s}" % other)
        assert raw(port, "GET", "/v1/customers/c1/profile", AUTH)[0] == 404
        cl.procs[stopped].send_signal(signal.SIGSTOP)
        try:
            status, took = timed(port, "GET", "/v1/customers/c1/profile", AUTH)
            assert status == 503 and took < 1.5, f"profile on the stopped master: {status} after {took:.2f} s"
            status, took = timed(port, "GET", f"/v1/customers/{other}/profile", AUTH)
            assert status == 404 and took < 1.5, f"profile on a live master: {status} after {took:.2f} s"
            wait_for("/readyz 503 with a master stopped", lambda: http(port, "GET", "/readyz")[0] == 503,
                     timeout=5, interval=0.1)
        finally:
            cl.procs[stopped].send_signal(signal.SIGCONT)
        wait_for("ready again after SIGCONT", lambda: http(port, "GET", "/readyz")[0] == 200, timeout=20)
        assert raw(port, "GET", "/v1/customers/c1/profile", AUTH)[0] == 404
        return "a stopped master's slots answer 503 within 1.5 s, the others go on; recovered after SIGCONT"


# ---- 3. the token's rules -----------------------------------------------------------------

def run_api(st, timeout=10, **env):
    """Runs patron-api until it exits or `timeout`; (exit code or None, stderr)."""
    full = {k: v for k, v in os.environ.items() if k not in ("PATRON_BIN_DIR", "PATRON_SOURCE_DIR")}
    full.pop("PATRON_API_TOKEN", None)
    full.update(st.service_env(free_port(), **env))
    if env.get("PATRON_API_TOKEN") is None:
        full.pop("PATRON_API_TOKEN", None)
    p = subprocess.Popen([os.path.join(st.bin, "patron-api")], env=full, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, cwd=st.dir)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err.decode(errors="replace")
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
        return None, err.decode(errors="replace")


def part_token_rules():
    with Stack("hostile-token") as st:
        st.start_redis()
        st.start_kafka(TOPICS)
        for value, why in (("", "empty"), ("short-secret", "too short"), ("0123456789abcdef\n", "printable")):
            code, err = run_api(st, PATRON_API_TOKEN=value)
            assert code == 2, f"PATRON_API_TOKEN={value!r}: exit {code}, want 2; stderr: {err[-500:]}"
            assert "PATRON_API_TOKEN" in err and why in err, err[-500:]
            if value:
                assert value.strip() not in err, f"the token was echoed: {err[-500:]}"
        code, err = run_api(st, timeout=3, PATRON_API_TOKEN=None)
        assert code is None, f"unset token: exit {code}; {err[-500:]}"
        assert "PATRON_API_TOKEN is unset" in err, err[-800:]
        return "empty, short and unprintable tokens exit 2 naming the variable; unset warns"


# ---- 4. every route needs the token ----------------------------------------------------------

NEEDS_TOKEN = [
    ("GET", "/v1/customers/c1/recommendations"),
    ("GET", "/v1/items/i1/similar"),
    ("GET", "/v1/customers/c1/profile"),
    ("DELETE", "/v1/customers/c1"),
    ("GET", "/v1/campaigns/stats"),
    ("GET", "/v1/dashboard/customers"),
    ("GET", "/v1/dashboard/recommended"),
    ("GET", "/v1/segments/clusters"),
    ("GET", "/v1/model"),
    ("GET", "/v1/no/such/route"),
    ("GET", "/"),
    ("GET", "/dashboard/"),
    ("GET", "/dashboard/app.js"),
    ("GET", "/dashboard/style.css"),
    ("HEAD", "/dashboard/index.html"),
]


def part_every_route():
    with Stack("hostile-auth") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        api = st.start_service("patron-api", PATRON_API_TOKEN=TOKEN)
        port = api.http_port
        wait_for("api ready", lambda: http(port, "GET", "/readyz")[0] == 200, timeout=30)
        for path in ("/healthz", "/readyz", "/metrics"):
            assert raw(port, "GET", path)[0] == 200, f"{path} must stay open"
        bad = []
        for method, path in NEEDS_TOKEN:
            for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN},
                            {"Authorization": f"Basic {TOKEN}"}, {"Cookie": "patron_session=" + "0" * 40}):
                status, hdrs, body, _ = raw(port, method, path, headers, timeout=5)
                if status != 401 or "bearer" not in hdrs.get("www-authenticate", "").lower():
                    bad.append((method, path, headers, status))
            status = raw(port, method, path, AUTH, timeout=5)[0]
            if status == 401:
                bad.append((method, path, "with the token", status))
        assert not bad, f"{len(bad)} answers without the right token: {bad[:6]}"
        # an unauthenticated DELETE published no erasure; the authenticated one did
        events = consume_all(brokers, "patron.events", timeout=5)
        assert len(events) == 1, f"{len(events)} events on patron.events, want the one authenticated erasure"

        # the dashboard: the page without a session is the login form
        status, hdrs, body, _ = raw(port, "GET", "/")
        assert status == 401 and hdrs["content-type"].startswith("text/html") and b'name="token"' in body, \
            (status, hdrs, body[:300])
        form = lambda t: urllib.parse.urlencode({"token": t}).encode()  # noqa: E731
        ctype = {"Content-Type": "application/x-www-form-urlencoded"}
        status, hdrs, body, _ = raw(port, "POST", "/dashboard/login", ctype, form("wrong-token-0123456789"))
        assert status == 401 and b"Wrong token" in body and "set-cookie" not in hdrs, (status, hdrs)
        status, hdrs, body, _ = raw(port, "POST", "/dashboard/login", ctype, form(TOKEN))
        assert status == 303 and hdrs.get("location") == "/", (status, hdrs)
        cookie = hdrs.get("set-cookie", "")
        attrs = [a.strip().lower() for a in cookie.split(";")]
        assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs, cookie
        assert TOKEN not in cookie, "the cookie must not carry the token itself"
        session = {"Cookie": "theme=dark; " + cookie.split(";")[0]}
        for method, path in (("GET", "/"), ("GET", "/dashboard/app.js"), ("HEAD", "/dashboard/index.html"),
                             ("GET", "/v1/campaigns/stats")):
            status = raw(port, method, path, session, timeout=5)[0]
            assert status == 200, (method, path, status)
        status = raw(port, "GET", "/v1/dashboard/customers", session, timeout=5)[0]
        assert status in (200, 503), status  # 503 until the first snapshot
        for method, path in (("GET", "/v1/customers/c1/profile"), ("DELETE", "/v1/customers/c1"),
                             ("GET", "/v1/customers/c1/recommendations"), ("POST", "/v1/campaigns/stats")):
            status = raw(port, method, path, session, timeout=5)[0]
            assert status == 401, f"the session cookie opened {method} {path}: {status}"
        return f"{len(NEEDS_TOKEN)} routes need the token; probes open; the login cookie opens only the dashboard"


def main():
    assert os.access(os.path.join(BIN, "patron-api"), os.X_OK), f"patron-api is not built in {BIN}"
    failed = []
    for part in (part_slow_clients, part_stalled_redis, part_stalled_cluster_master, part_token_rules,
                 part_every_route):
        t0 = time.monotonic()
        try:
            what = part()
            print(f"ok {part.__name__} ({time.monotonic() - t0:.1f} s): {what}")
        except AssertionError as e:
            failed.append(part.__name__)
            print(f"FAILED {part.__name__} ({time.monotonic() - t0:.1f} s): {e}", file=sys.stderr)
    assert not failed, f"failed: {', '.join(failed)}"


if __name__ == "__main__":
    main()
