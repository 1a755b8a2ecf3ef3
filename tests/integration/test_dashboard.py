"""The dashboard in a real browser, against a stack that replayed the subset.

Redis, the embedded Kafka, patron-ingest, patron-trigger (examples/
campaigns.yaml) and patron-api, all on the event clock; the Online Retail
subset replayed with derived browsing and derived profiles (consent, time
zones, birthdays), as scripts/demo.sh does. Once everything has settled,
Debian's headless Chromium, driven by playwright-core
(tests/integration/dashboard/read_page.js), loads http://api/ and reads back
every number the page shows; each must equal the API's JSON — the value
behind it exactly, the text people read up to its rounding — and the page
must have loaded nothing from anywhere else and logged no error. That
includes every point of the time charts (each campaign's sends,
conversions and revenue per day, from /v1/campaigns/daily; segments, tiers
and clusters per day, from /v1/dashboard/history) and the clusters beside
the segments (/v1/segments/clusters). The API runs with PATRON_API_TOKEN,
as in production: the browser first gets the login form, signs in with the
token, and reads the page through the session cookie the login sets.

Needs /usr/bin/chromium, node and npm (scripts/deps.sh installs them);
installs playwright-core from the committed lock file into a cache directory
when missing (never a browser of its own). PATRON_SCREENSHOT=path also saves
a full-page screenshot (the README's docs/dashboard.png).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import BIN, SRC, SUBSET, Stack, http, metric, run_tool, wait_for  # noqa: E402

CHECK_DIR = os.path.join(SRC, "tests", "integration", "dashboard")
READ_PAGE = os.path.join(CHECK_DIR, "read_page.js")
CHROMIUM = os.environ.get("PATRON_CHROMIUM", "/usr/bin/chromium")
TOPICS = {"patron.events": 8, "patron.catalog": 2, "patron.profile-updates": 8, "patron.dlq": 2,
          "patron.campaign.sms": 8, "patron.campaign.push": 8, "patron.campaign.email": 8}
REASONS = ("consent", "audience", "control_group", "cooldown", "frequency_cap")
SEGMENTS = ("new", "champion", "loyal", "at_risk", "promising", "hibernating", "lost", "needs_attention")
TIERS = ("silver", "gold", "platinum")
TOKEN = "dashboard-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# ---- tools ----------------------------------------------------------------------

def node_modules():
    """playwright-core from the committed lock file, in a cache directory keyed by
    the lock's hash (npm ci only when that directory is missing)."""
    with open(os.path.join(CHECK_DIR, "package-lock.json"), "rb") as f:
        tag = hashlib.sha256(f.read()).hexdigest()[:16]
    base = os.environ.get("PATRON_NODE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "patron")
    cache = os.path.join(base, f"dashboard-check-{tag}")
    modules = os.path.join(cache, "node_modules")
    if os.path.isdir(os.path.join(modules, "playwright-core")):
        return modules
    tmp = f"{cache}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for f in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(CHECK_DIR, f), tmp)
    env = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1")
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=tmp, env=env,
                       capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AssertionError(f"npm ci failed:\n{p.stdout}{p.stderr}")
    try:
        os.rename(tmp, cache)
    except OSError:  # another run got there first
        shutil.rmtree(tmp, ignore_errors=True)
    return modules


def read_page(url, modules, screenshot=None, token=None):
    argv = ["node", READ_PAGE, url]
    if token:
        argv += ["--token", token]
    if screenshot:
        argv += ["--screenshot", screenshot]
    env = dict(os.environ, NODE_PATH=modules, PATRON_CHROMIUM=CHROMIUM)
    p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    if p.returncode != 0:
        raise AssertionError(f"read_page.js failed ({p.returncode}):\n{p.stderr[-4000:]}")
    return json.loads(p.stdout)


# ---- what the page must show --------------------------------------------------------

def campaign_key(c):
    return c["campaign_id"] + ("-" + c["variant"] if c["variant"] else "")


def expected_numbers(stats, customers, reco, daily, history, clusters):
    """testid -> (kind, value): every number the page must show."""
    want = {"stats-as-of": ("time", stats["as_of_ms"])}
    want.update(expected_time(daily, history, clusters))
    totals = dict.fromkeys(("eligible", "sent", "suppressed", "conversions", "revenue"), 0)
    for c in stats["campaigns"]:
        k = campaign_key(c)
        suppressed = sum(c["suppressed"][r] for r in REASONS)
        ci = c["uplift_ci95"]
        want.update({
            f"eligible-{k}": ("int", c["eligible"]),
            f"sent-{k}": ("int", c["sent"]),
            f"exited-{k}": ("int", c["exited"]),
            f"suppressed-{k}": ("int", suppressed),
            f"conversions-{k}": ("int", c["conversions"]),
            f"revenue-{k}": ("money", c["revenue_cents"]),
            f"rate-{k}": ("pct", c["conversion_rate"]),
            f"control-rate-{k}": ("pct", c["control"]["conversion_rate"]),
            f"uplift-{k}": ("pp", c["uplift"]),
            f"uplift-lo-{k}": ("pp", ci[0] if ci else None),
            f"uplift-hi-{k}": ("pp", ci[1] if ci else None),
            f"control-sent-{k}": ("int", c["control"]["would_have_sent"]),
            f"control-conversions-{k}": ("int", c["control"]["conversions"]),
            f"control-revenue-{k}": ("money", c["control"]["revenue_cents"]),
        })
        for r in REASONS:
            want[f"suppressed-{r}-{k}"] = ("int", c["suppressed"][r])
        for t, v in (("eligible", c["eligible"]), ("sent", c["sent"]), ("suppressed", suppressed),
                     ("conversions", c["conversions"]), ("revenue", c["revenue_cents"])):
            totals[t] += v
    for t, v in totals.items():
        want[f"total-{t}"] = ("money" if t == "revenue" else "int", v)
    want["customers-total"] = ("int", customers["customers"])
    want["customers-as-of"] = ("time", customers["as_of_ms"])
    want["customers-truncated"] = ("bool", customers["truncated"])
    for s in SEGMENTS:
        want[f"segment-{s}"] = ("int", customers["segments"][s])
    for t in TIERS:
        want[f"tier-{t}"] = ("int", customers["tiers"][t])
    for i, it in enumerate(reco["items"]):
        want[f"reco-item-{i}"] = ("str", it["item_id"])
        want[f"reco-count-{i}"] = ("int", it["count"])
        want[f"reco-price-{i}"] = ("money", it["price_cents"])
    return want


def expected_time(daily, history, clusters):
    """The charts by day and the clusters: every plotted point's value."""
    want = {"daily-from": ("str", daily["from"]), "daily-to": ("str", daily["to"])}
    for c in daily["campaigns"]:
        for d in c["days"]:
            k = f"{c['campaign_id']}-{d['day']}"
            want[f"daily-sent-{k}"] = ("plot-int", d["sent"])
            want[f"daily-conversions-{k}"] = ("plot-int", d["conversions"])
            want[f"daily-revenue-{k}"] = ("plot-money", d["revenue_cents"])
    for d in history["days"]:
        for s in SEGMENTS:
            want[f"history-segment-{s}-{d['day']}"] = ("plot-int", d["segments"][s])
        for t in TIERS:
            want[f"history-tier-{t}-{d['day']}"] = ("plot-int", d["tiers"][t])
        for c in d["clusters"]:
            want[f"history-cluster-{c['id']}-{d['day']}"] = ("plot-int", c["size"])
    if clusters is not None:
        want["clusters-k"] = ("int", clusters["k"])
        want["clusters-as-of"] = ("time", clusters["as_of_ms"])
        want["clusters-silhouette"] = ("dec2", clusters["silhouette"])
        for c in clusters["clusters"]:
            i = c["id"]
            want[f"cluster-label-{i}"] = ("str", c["label"])
            want[f"cluster-size-{i}"] = ("int", c["size"])
            want[f"cluster-recency-{i}"] = ("dec1", c["centroid"]["recency_days"])
            want[f"cluster-orders-{i}"] = ("dec1", c["centroid"]["orders"])
            want[f"cluster-spend-{i}"] = ("money", c["centroid"]["net_spend_cents"])
    return want


def value_matches(kind, raw, want):
    if want is None:
        return raw == "null"
    if kind == "str":
        return raw == want
    if kind == "bool":
        return raw == ("true" if want else "false")
    if isinstance(want, float):
        return raw not in (None, "null") and float(raw) == want  # JS prints the shortest exact form
    return raw is not None and raw.lstrip("-").isdigit() and int(raw) == want


def text_matches(kind, text, want):
    """The text people read is the value, formatted and rounded."""
    if kind in ("time", "bool", "str"):
        return kind != "str" or text == want
    if want is None:
        return text == "–"
    if kind.startswith("plot-"):  # a chart's point: its tooltip starts with the value
        kind, text = kind[5:], text.split(" ")[0]
    t = text.replace(",", "").replace("+", "")
    try:
        if kind == "int":
            return int(t) == want
        if kind == "money":
            return abs(float(t) - want / 100) <= 0.005 + 1e-9
        if kind in ("dec1", "dec2"):
            return abs(float(t) - want) <= (0.05 if kind == "dec1" else 0.005) + 1e-9
        if kind == "pct":
            return t.endswith("%") and abs(float(t[:-1]) - 100 * want) <= 0.005 + 1e-9
        if kind == "pp":
            return t.endswith(" pp") and abs(float(t[:-3]) - 100 * want) <= 0.005 + 1e-9
    except ValueError:
        return False
    raise AssertionError(f"unknown kind {kind}")


def compare(page, stats, customers, reco, daily, history, clusters):
    bad = []
    for what in ("console_errors", "page_errors", "foreign_requests", "failed_requests"):
        if page[what]:
            bad.append((what, page[what]))
    if page["status"] != 200 or not page["content_type"].startswith("text/html"):
        bad.append(("page", page["status"], page["content_type"]))
    shown = {}
    for e in page["elements"]:
        if e["testid"] in shown:
            bad.append(("duplicate testid", e["testid"]))
        shown[e["testid"]] = e
    want = expected_numbers(stats, customers, reco, daily, history, clusters)
    for testid, (kind, value) in want.items():
        e = shown.get(testid)
        if e is None:
            bad.append(("missing", testid))
        elif not value_matches(kind, e["value"], value):
            bad.append(("value", testid, e["value"], value))
        elif not text_matches(kind, e["text"], value):
            bad.append(("text", testid, e["text"], value))
    numbers = {t for t, e in shown.items() if e["value"] is not None}
    extra = numbers - set(want)
    if extra:
        bad.append(("shown but not in the API's JSON", sorted(extra)[:10]))
    cards = [(c["campaign"], c["variant"]) for c in page["cards"]]
    if cards != [(c["campaign_id"], c["variant"]) for c in stats["campaigns"]]:
        bad.append(("cards", cards))
    return bad, len(want)


# ---- the stack ----------------------------------------------------------------------

def settled(port):
    """The stats unchanged over three reads a second apart."""
    seen = []
    for _ in range(3):
        status, body = http(port, "GET", "/v1/campaigns/stats", headers=AUTH)
        if status != 200:
            return False
        seen.append(json.dumps(body, sort_keys=True))
        time.sleep(1)
    return seen[0] == seen[1] == seen[2] and json.loads(seen[0])


# what the page reads, as it asks for it (the daily window: the page's default)
PAGE_READS = ("/v1/campaigns/stats", "/v1/dashboard/customers", "/v1/dashboard/recommended?limit=20",
              "/v1/campaigns/daily?days=90", "/v1/dashboard/history", "/v1/segments/clusters")


def api_json(port):
    out = []
    for path in PAGE_READS:
        status, body = http(port, "GET", path, headers=AUTH)
        if path == "/v1/segments/clusters" and status == 503:
            body = None  # not fitted yet: the page says so
        else:
            assert status == 200, (path, status, body)
        out.append(body)
    return out


def check_time(stats, daily, history, clusters, customers):
    """The charts' sources agree with the totals: the daily counters add up to
    at most the statistics (a 90-day window), every day of the window is
    there, and the history's last day is the snapshot's."""
    sent = {}
    for c in stats["campaigns"]:
        sent[c["campaign_id"]] = sent.get(c["campaign_id"], 0) + c["sent"]
    assert daily["campaigns"], "no campaign counted anything in the last 90 days"
    for c in daily["campaigns"]:
        assert len(c["days"]) == 90 and c["days"][0]["day"] == daily["from"] and c["days"][-1]["day"] == daily["to"]
        assert sum(d["sent"] for d in c["days"]) <= sent[c["campaign_id"]], c["campaign_id"]
    assert any(d["sent"] for c in daily["campaigns"] for d in c["days"]), "nothing sent in 90 days"
    last = history["days"][-1]
    assert (last["customers"], last["segments"], last["tiers"]) == \
        (customers["customers"], customers["segments"], customers["tiers"]), (last, customers)
    if clusters is not None and last["clusters"]:
        assert sum(c["size"] for c in last["clusters"]) <= customers["customers"]


def main():
    for tool in ("node", "npm"):
        assert shutil.which(tool), f"{tool} is missing (scripts/deps.sh installs it)"
    assert os.access(CHROMIUM, os.X_OK), f"{CHROMIUM} is missing (scripts/deps.sh installs chromium)"
    modules = node_modules()
    assert os.access(os.path.join(BIN, "patron-trigger"), os.X_OK), f"patron-trigger is not built in {BIN}"

    with Stack("dashboard") as st:
        st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        trigger = st.start_service("patron-trigger", PATRON_CLOCK="event",
                                   PATRON_CAMPAIGNS=os.path.join(SRC, "examples", "campaigns.yaml"))
        # snapshots every 2 s and the year streamed at 4,000 events/s, as
        # scripts/demo.sh does: the models are fitted while the year streams in
        # (the model campaigns decide with them) and the history records the
        # days the snapshots see
        api = st.start_service("patron-api", PATRON_CLOCK="event", PATRON_DASHBOARD_REFRESH_MS="2000",
                                PATRON_API_TOKEN=TOKEN)
        port = api.http_port

        summary = json.loads(run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                                       "--topic", "patron.events", "--file", SUBSET, "--derive-browse",
                                       "--derive-profile", "--catalog-topic", "patron.catalog", "--rate", "4000"]
                                      ).strip().splitlines()[-1])
        wait_for("ingest to apply the replay",
                 lambda: metric(ingest.http_port, "patron_ingest_events_total") >= summary["events"],
                 timeout=300, interval=1.0)
        published = metric(ingest.http_port, "patron_ingest_profile_updates_total")
        wait_for("patron-trigger to take every profile update",
                 lambda: metric(trigger.http_port, "patron_trigger_updates_total") >= published,
                 timeout=300, interval=1.0)
        stats = wait_for("the campaign statistics to settle", lambda: settled(port), timeout=300, interval=0.5)
        # derived consent lets campaigns through: a page of zeros would prove little
        assert sum(c["sent"] for c in stats["campaigns"]) > 100, stats
        # a snapshot taken at the settled clock (refreshed every 30 s)
        wait_for("a customer snapshot of the settled stack",
                 lambda: (lambda c: c["as_of_ms"] == stats["as_of_ms"] and c["customers"] == summary["customers"])(
                     http(port, "GET", "/v1/dashboard/customers", headers=AUTH)[1]), timeout=90, interval=1.0)
        # the clusters fitted (in the background, from a snapshot), so that the page shows them
        wait_for("the clusters", lambda: http(port, "GET", "/v1/segments/clusters", headers=AUTH)[0] == 200, timeout=90)

        url = f"http://127.0.0.1:{port}/"
        for attempt in range(3):
            before = api_json(port)
            page = read_page(url, modules, os.environ.get("PATRON_SCREENSHOT"), TOKEN)
            after = api_json(port)
            if before == after:
                break
            print(f"the API's answers moved during attempt {attempt + 1}, reading again", file=sys.stderr)
        assert before == after, "the API's answers never held still"
        bad, checked = compare(page, *after)
        assert not bad, f"{len(bad)} differences between the page and the API, first: {bad[:8]}"
        assert page["svg_bars"] > 20, page["svg_bars"]
        assert page.get("login_status") == 401, f"the page did not ask for the token first: {page.get('login_status')}"
        stats, customers, reco, daily, history, clusters = after
        check_time(stats, daily, history, clusters, customers)
        assert st.stop(api) == 0, "patron-api did not exit cleanly on SIGTERM"
        print(f"dashboard: {checked} numbers on the page equal the API's ({len(stats['campaigns'])} campaign rows, "
              f"{customers['customers']} customers, {len(reco['items'])} items, {len(daily['campaigns'])} campaigns "
              f"by day, {len(history['days'])} days of history, "
              f"{clusters['k'] if clusters else 'no'} clusters)")


if __name__ == "__main__":
    main()
