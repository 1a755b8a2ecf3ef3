#!/usr/bin/env bash
# Patron on a year of a real shop: one command on a fresh Debian machine.
#
#   scripts/demo.sh           installs what is missing, builds, starts Redis, the
#                             embedded Kafka, patron-ingest, patron-trigger (with
#                             examples/campaigns.yaml) and patron-api with the event
#                             clock, replays the Online Retail subset (with browse and
#                             cart events derived from the purchases, and consent,
#                             time zones and birthdays derived per customer), prints a
#                             report and leaves the stack running, dashboard included.
#                             patron-api takes its customer snapshot every 2 s (not 30):
#                             the models are fitted while the year streams in (at
#                             4,000 events/s), so the campaigns that decide with them
#                             (churn-save, vip-early-access) have them, and the
#                             dashboard's history sees the year go by
#   scripts/demo.sh --once    the same, then stops everything cleanly
#   scripts/demo.sh --stop    stops a stack left running
#
# Ports (override with the variables): API and dashboard 8080 (PATRON_DEMO_API_PORT),
# ingest metrics 8081, trigger metrics 8082 (PATRON_DEMO_TRIGGER_PORT), Redis 6390
# (PATRON_DEMO_REDIS_PORT), Kafka bootstrap 19092.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ROOT=$PATRON_ROOT
STATE=${PATRON_DEMO_DIR:-/tmp/patron-demo}
API_PORT=${PATRON_DEMO_API_PORT:-8080}
INGEST_PORT=${PATRON_DEMO_INGEST_PORT:-8081}
TRIGGER_PORT=${PATRON_DEMO_TRIGGER_PORT:-8082}
REDIS_PORT=${PATRON_DEMO_REDIS_PORT:-6390}
KAFKA_PORT=${PATRON_DEMO_KAFKA_PORT:-19092}
DATA=${PATRON_DEMO_DATA:-$ROOT/data/online-retail-subset.csv.gz}
BUILD=$PATRON_RELEASE_BUILD

# services first (they drain and commit), then Kafka, then Redis: SIGTERM,
# SIGKILL after 10 s (tests/support/harness.py down)
stop_stack() {
  [ -f "$STATE/stack.json" ] || return 0
  patron_stack down --dir "$STATE" --timeout 10
}

if [ "${1:-}" = "--stop" ]; then
  stop_stack
  echo "stopped"
  exit 0
fi
ONCE=0
[ "${1:-}" = "--once" ] && ONCE=1

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

say "checking packages"
scripts/deps.sh
say "building (release, $BUILD)"
patron_build_release

stop_stack
mkdir -p "$STATE"
rm -f "$STATE"/*.log "$STATE"/bootstrap
[ $ONCE = 1 ] && trap 'stop_stack' EXIT

TRIGGER=0
[ -x "$BUILD/patron-trigger" ] && TRIGGER=1
SERVICES=(--service "ingest:$INGEST_PORT")
[ $TRIGGER = 1 ] && SERVICES+=(--service "trigger:$TRIGGER_PORT")
SERVICES+=(--service "api:$API_PORT")
say "starting redis-server :$REDIS_PORT, the embedded Kafka :$KAFKA_PORT, patron-ingest :$INGEST_PORT$(
  [ $TRIGGER = 1 ] && echo ", patron-trigger :$TRIGGER_PORT") and patron-api :$API_PORT (event clock)"
patron_stack up --dir "$STATE" --redis --redis-port "$REDIS_PORT" --kafka --kafka-port "$KAFKA_PORT" \
  --topic patron.events:8 --topic patron.catalog:2 --topic patron.profile-updates:8 --topic patron.dlq:1 \
  --topic patron.campaign.sms:8 --topic patron.campaign.push:8 --topic patron.campaign.email:8 \
  "${SERVICES[@]}" --env PATRON_CLOCK=event --env "trigger:PATRON_CAMPAIGNS=$ROOT/examples/campaigns.yaml" \
  --env api:PATRON_DASHBOARD_REFRESH_MS=2000
# shellcheck source=/dev/null
. "$STATE/stack.env"

say "replaying $(basename "$DATA") (purchases and refunds as they happened; views, cart adds, consent, time zones and birthdays derived)"
# 4,000 events a second: the year streams in over ~25 s, so that the snapshots
# (every 2 s) see its days go by: the models are fitted on what has happened
# so far, and the dashboard's history holds a point every few weeks
SUMMARY=$("$BUILD/patron-replay" online-retail --brokers "$BROKERS" --topic patron.events --file "$DATA" \
  --derive-browse --derive-profile --catalog-topic patron.catalog --rate 4000 --progress | tail -1)
EVENTS=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["events"])' "$SUMMARY")
echo "    produced: $SUMMARY"

say "waiting for patron-ingest to apply $EVENTS events"
applied() {
  curl -fsS "http://127.0.0.1:$INGEST_PORT/metrics" |
    awk '/^patron_ingest_events_total/ {s += $2} END {printf "%d", s}'
}
start=$(date +%s)
while :; do
  n=$(applied)
  printf '\r    %s / %s events' "$n" "$EVENTS"
  [ "$n" -ge "$EVENTS" ] && break
  if [ $(($(date +%s) - start)) -gt 300 ]; then
    echo; echo "ingest did not catch up in 5 minutes (logs in $STATE)" >&2; exit 1
  fi
  sleep 0.5
done
echo

say "waiting for the campaigns to settle, then the report"
/usr/bin/python3 scripts/demo_report.py --api "http://127.0.0.1:$API_PORT" --file "$DATA"
echo
echo "Dashboard: http://127.0.0.1:$API_PORT/"

if [ $ONCE = 1 ]; then
  say "stopping (--once)"
  stop_stack
  trap - EXIT
  echo "stopped cleanly"
else
  cat <<EOF

Patron is running:
  dashboard  http://127.0.0.1:$API_PORT/
  API        http://127.0.0.1:$API_PORT/v1/customers/17850/profile, http://127.0.0.1:$API_PORT/v1/campaigns/stats
  metrics    http://127.0.0.1:$API_PORT/metrics, http://127.0.0.1:$INGEST_PORT/metrics$([ $TRIGGER = 1 ] && echo ", http://127.0.0.1:$TRIGGER_PORT/metrics")
  Kafka      $BROKERS (kcat -b $BROKERS -L)
  Redis      redis-cli -p $REDIS_PORT
  logs       $STATE/*.log
Stop it with: scripts/demo.sh --stop
EOF
fi
