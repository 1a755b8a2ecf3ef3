#!/usr/bin/env bash
# Offline evaluation of the recommendations on UCI Online Retail, through the
# real path (patron-replay -> Kafka -> patron-ingest -> Redis -> patron-api),
# with the protocol and SAR's reference figures of
# shared/data/online-retail/README.md. Prints P@10, R@10 and nDCG@10 next to
# SAR's; exit status 0 when all three beat SAR.
#
#   scripts/eval.sh [--json OUT]
#
# Knobs (environment):
#   PATRON_EVAL_DATA=    the full online_retail.csv.gz (default: ../shared/data/
#                        online-retail/ beside the repository)
#   PATRON_EVAL_BUILD=   build tree (default build-eval, no sanitizers)
#   PATRON_EVAL_BUILD_TYPE=Release
# Any PATRON_* variable the services read (e.g. PATRON_GRAPH_HISTORY) passes
# through to them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PATRON_EVAL_BUILD:-$ROOT/build-eval}"
DATA="${PATRON_EVAL_DATA:-}"
if [ -z "$DATA" ]; then
  for d in "$ROOT/../shared/data/online-retail" "$ROOT/../../shared/data/online-retail" \
    /work/shared/data/online-retail; do
    if [ -f "$d/online_retail.csv.gz" ]; then
      DATA="$d/online_retail.csv.gz"
      break
    fi
  done
fi
if [ -z "$DATA" ] || [ ! -f "$DATA" ]; then
  echo "eval: online_retail.csv.gz not found; set PATRON_EVAL_DATA" >&2
  exit 2
fi

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="${PATRON_EVAL_BUILD_TYPE:-Release}" \
  -DPATRON_TESTS=OFF >/dev/null
ninja -C "$BUILD" patron-replay patron-devkafka patron-ingest patron-api >/dev/null
exec /usr/bin/python3 "$ROOT/scripts/eval.py" "$BUILD" "$DATA" "$@"
