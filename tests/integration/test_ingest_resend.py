"""Resends at any distance, and a re-published month, through the real path.

The Online Retail subset, with derived browsing, carts, consents and
customer data, goes through Kafka -> patron-ingest -> Redis with 5% of the
events resent at random points of the whole year (not a few events later:
`--resend-delay-max` spans the stream). Every customer's orders, net spend,
points, tier, last purchase and RFM f/m must equal what
scripts/expected_profiles.py computes from the CSV.

Then the site "re-publishes" June 2011 after an outage (`--from --until`:
the same events, ids and times): not one stored profile may change by a
byte, and no ProfileUpdate may be published for it, so that no campaign can
fire twice either.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from harness import (BIN, SUBSET, Stack, assert_profiles_exact, consume_all, expected_profiles,  # noqa: E402
                     metric, run_tool, wait_for)

TOPICS = {"patron.events": 8, "patron.catalog": 2, "patron.profile-updates": 8, "patron.dlq": 2}
DERIVED = ["--derive-browse", "--derive-profile", "--seed", "11"]


def replay(brokers, *extra):
    out = run_tool([os.path.join(BIN, "patron-replay"), "online-retail", "--brokers", brokers,
                    "--topic", "patron.events", "--file", SUBSET, *DERIVED, *extra], timeout=600)
    return json.loads(out.strip().splitlines()[-1])


def applied(port):
    """Every event ingest read, whatever became of it, once nothing is in flight."""
    if metric(port, "patron_ingest_inflight_batches") != 0:
        return -1
    return metric(port, "patron_ingest_events_total")


def stored_profiles(r):
    return {k: r.get(k) for k in r.scan_iter(match="{c:*}", count=1000) if r.type(k) == b"string"}


def main():
    expected = expected_profiles()
    with Stack("ingest-resend") as st:
        r = st.start_redis()
        brokers = st.start_kafka(TOPICS)
        ingest = st.start_service("patron-ingest", PATRON_CLOCK="event")
        api = st.start_service("patron-api", PATRON_CLOCK="event")

        first = replay(brokers, "--resend-percent", "5", "--resend-delay-max", "1000000")
        assert first["resent"] > 1000, first
        total = first["events"] + first["resent"]
        wait_for("ingest to read the year and its resends", lambda: applied(ingest.http_port) >= total,
                 timeout=300, interval=0.5)
        assert_profiles_exact(api.http_port, expected, after=" after far resends", timeout=60)
        duplicates = metric(ingest.http_port, "patron_ingest_events_total", 'result="duplicate"')
        stale = metric(ingest.http_port, "patron_ingest_events_total", 'result="stale"')
        assert duplicates + stale >= first["resent"], (duplicates, stale, first["resent"])
        assert metric(ingest.http_port, "patron_ingest_events_total", 'result="refused"') == 0

        before = stored_profiles(r)
        updates_before = len(consume_all(brokers, "patron.profile-updates", timeout=60))
        read_before = applied(ingest.http_port)

        june = replay(brokers, "--from", "2011-06-01", "--until", "2011-07-01")
        assert june["events"] > 1000, june
        wait_for("ingest to read the re-published month",
                 lambda: applied(ingest.http_port) >= read_before + june["events"], timeout=300, interval=0.5)

        after = stored_profiles(r)
        changed = [k for k in before if after.get(k) != before[k]]
        assert not changed, f"{len(changed)} stored profiles changed, e.g. {changed[:3]}"
        assert set(after) == set(before), "the re-published month created or removed profiles"
        updates_after = len(consume_all(brokers, "patron.profile-updates", timeout=60))
        assert updates_after == updates_before, \
            f"{updates_after - updates_before} ProfileUpdates published for a re-published month"
        assert_profiles_exact(api.http_port, expected, after=" after the re-published month", timeout=30)

        assert st.stop(ingest) == 0 and st.stop(api) == 0
        print(f"ok: {len(expected)} customers exact with {first['resent']} resends across the year; "
              f"June re-published ({june['events']} events) changed none of {len(before)} profiles")


if __name__ == "__main__":
    main()
