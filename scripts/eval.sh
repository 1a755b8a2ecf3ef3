#!/usr/bin/env bash
# Offline evaluation of Patron (docs/eval.md): section 1, recommendations on
# data sets x protocols against popularity, item-kNN and SAR computed in the
# same run, Patron measured through Kafka -> patron-ingest -> Redis ->
# patron-api; section 2, churn and lifetime value against BG/NBD +
# Gamma-Gamma, recency and spend. Prints one table per section.
#
#   scripts/eval.sh [all|reco|churn] [--online-retail PATH] [--complete-journey PATH]
#                   [--synthetic] [--json OUT] [--seed N] [--no-patron] [--include-non-products]
#   scripts/eval.sh --self-test
#
# Without --online-retail, the repository's subset (data/); without
# --complete-journey, that data set is skipped. Exit status 0 when Patron
# beats the best baseline on P@10 and nDCG@10 on every row of section 1,
# 1 when not, 2 on a usage error.
#
# It builds and runs the Release tree of scripts/lib.sh (PATRON_RELEASE_BUILD).
# Any PATRON_* variable the services read (e.g. PATRON_GRAPH_HISTORY) passes
# through to them.
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
patron_build_release patron-replay patron-devkafka patron-ingest patron-api
exec "$PATRON_PY" "$PATRON_ROOT/scripts/eval.py" "$PATRON_RELEASE_BUILD" "$@"
