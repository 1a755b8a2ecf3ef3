#!/usr/bin/env bash
# An hour of the benchmark mix through the whole stack with memory sampled
# (not run in CI): scripts/soak.py's docstring says what is judged.
#
#   scripts/soak.sh [--minutes 60] [--rate 2000] [--customers 20000] [--items 10000] [--out DIR]
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
"$PATRON_ROOT/scripts/deps.sh"
patron_build_release patron-replay patron-devkafka patron-ingest patron-trigger patron-api
exec "$PATRON_PY" "$PATRON_ROOT/scripts/soak.py" "$PATRON_RELEASE_BUILD" "$@"
