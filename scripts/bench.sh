#!/usr/bin/env bash
# Benchmarks of Patron on this machine, with their references measured in the
# same run (a ratio survives a noisy machine; an absolute figure does not).
#
#   scripts/bench.sh ingest|api|trigger|scale|all
#
# Builds a Release tree (no sanitizers) in build-bench, installs what is
# missing (scripts/deps.sh), then runs scripts/bench_ingest.sh and/or
# scripts/bench_api.sh and scripts/bench_trigger.py, and/or
# scripts/bench_scale.sh. Their knobs are environment variables, documented
# at the top of each; the last line each prints is JSON.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PATRON_BENCH_BUILD:-$ROOT/build-bench}"

usage() {
  echo "usage: scripts/bench.sh ingest|api|trigger|scale|all" >&2
  exit 2
}
[ $# -eq 1 ] || usage
case "$1" in ingest | api | trigger | scale | all) ;; *) usage ;; esac

"$ROOT/scripts/deps.sh"
cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPATRON_TESTS=OFF >/dev/null
ninja -C "$BUILD" >/dev/null

export PATRON_BENCH_BUILD="$BUILD"
rc=0
if [ "$1" = ingest ] || [ "$1" = all ]; then
  "$ROOT/scripts/bench_ingest.sh" || rc=1
fi
if [ "$1" = api ] || [ "$1" = all ]; then
  "$ROOT/scripts/bench_api.sh" || rc=1
fi
if [ "$1" = trigger ] || [ "$1" = all ]; then
  /usr/bin/python3 "$ROOT/scripts/bench_trigger.py" || rc=1
fi
if [ "$1" = scale ] || [ "$1" = all ]; then
  "$ROOT/scripts/bench_scale.sh" || rc=1
fi
exit $rc
