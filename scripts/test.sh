#!/usr/bin/env bash
# Runs every test: installs missing Debian packages, builds with AddressSanitizer
# and UndefinedBehaviorSanitizer, then runs unit and integration tests with ctest.
# The integration tests start their own redis-server and embedded Kafka.
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only the unit tests (any ctest arguments pass through)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

scripts/deps.sh
patron_build_test
BUILD=$PATRON_TEST_BUILD

# LeakSanitizer is on: a leak fails the test like a crash does.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Two at a time (PATRON_TEST_JOBS): most of a test's time is spent waiting
# on its own stack; the few that hold a wall-clock deadline or a memory bound
# run alone (RUN_SERIAL, CMakeLists.txt).
ctest --test-dir "$BUILD" --output-on-failure --timeout 900 -j "${PATRON_TEST_JOBS:-2}" "$@"

# The fuzz targets (tests/fuzz), briefly: the committed seeds plus a few
# thousand inputs each, in their own clang tree. Only on a full run;
# PATRON_TEST_FUZZ=0 skips it. A failure prints the reproducer's path.
if [ $# -eq 0 ] && [ "${PATRON_TEST_FUZZ:-1}" = 1 ]; then
  scripts/fuzz.sh --quick
fi

# The front door (README's first command), from this clone: a fresh Release
# build, the stack, a year of the shop, the report, a clean stop. Only on a
# full run; PATRON_TEST_DEMO=0 skips it.
if [ $# -eq 0 ] && [ "${PATRON_TEST_DEMO:-1}" = 1 ]; then
  start=$(date +%s)
  PATRON_DEMO_DIR="$(mktemp -d /tmp/patron-demo-test.XXXXXX)" scripts/demo.sh --once
  echo "scripts/demo.sh --once: green in $(($(date +%s) - start)) s"
fi
