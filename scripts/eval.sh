#!/usr/bin/env bash
# Offline evaluation of Patron (docs/eval.md): section 1, recommendations on
# data sets x protocols against popularity, item-kNN and SAR computed in the
# same run, Patron measured through Kafka -> patron-ingest -> Redis ->
# patron-api; section 2, churn and lifetime value against BG/NBD +
# Gamma-Gamma, recency and spend. Prints one table per section.
#
#   scripts/eval.sh [all|reco|churn] [--online-retail PATH] [--complete-journey PATH]
#                   [--json OUT] [--seed N] [--no-patron] [--include-non-products]
#   scripts/eval.sh --self-test
#
# Without --online-retail, the repository's subset (data/); without
# --complete-journey, that data set is skipped. Exit status 0 when Patron
# beats the best baseline on P@10 and nDCG@10 on every row of section 1,
# 1 when not, 2 on a usage error.
#
# Knobs (environment):
#   PATRON_EVAL_BUILD=   build tree (default build-eval in the repository, no sanitizers)
#   PATRON_EVAL_BUILD_TYPE=Release
# Any PATRON_* variable the services read (e.g. PATRON_GRAPH_HISTORY) passes
# through to them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${PATRON_EVAL_BUILD:-$ROOT/build-eval}"

cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="${PATRON_EVAL_BUILD_TYPE:-Release}" \
  -DPATRON_TESTS=OFF >/dev/null
nice ninja -j2 -C "$BUILD" patron-replay patron-devkafka patron-ingest patron-api >/dev/null
exec /usr/bin/python3 "$ROOT/scripts/eval.py" "$BUILD" "$@"
