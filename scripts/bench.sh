#!/usr/bin/env bash
# Benchmarks of Patron on this machine, with their references measured in the
# same run (a ratio survives a noisy machine; an absolute figure does not).
#
#   scripts/bench.sh ingest|api|trigger|scale|all
#
# Installs what is missing (scripts/deps.sh), builds the Release tree (no
# sanitizers; PATRON_RELEASE_BUILD, default build/, shared with the demo and
# the eval: scripts/lib.sh), then runs scripts/bench_ingest.sh and/or
# scripts/bench_api.sh and scripts/bench_trigger.py, and/or
# scripts/bench_scale.sh. Their knobs are environment variables, documented
# at the top of each; the last line each prints is JSON.
set -euo pipefail

# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ROOT=$PATRON_ROOT

usage() {
  echo "usage: scripts/bench.sh ingest|api|trigger|scale|all" >&2
  exit 2
}
[ $# -eq 1 ] || usage
case "$1" in ingest | api | trigger | scale | all) ;; *) usage ;; esac

"$ROOT/scripts/deps.sh"
patron_build_release
export PATRON_RELEASE_BUILD # the bench_*.sh and bench_trigger.py run its programs
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
