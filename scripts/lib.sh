# shellcheck shell=bash
# What the scripts share (sourced by test.sh, demo.sh, bench.sh and the
# bench_*.sh): where the repository is, its two build trees, and the one way
# to start the stack.
#
# One build tree per purpose, named here only:
#   PATRON_TEST_BUILD     Debug, ASan + UBSan, with the tests: scripts/test.sh
#                         (default build-test)
#   PATRON_RELEASE_BUILD  Release, no tests: the demo, the benchmarks, the
#                         eval (default build)
# Either can be set in the environment to build elsewhere.

PATRON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATRON_TEST_BUILD="${PATRON_TEST_BUILD:-$PATRON_ROOT/build-test}"
PATRON_RELEASE_BUILD="${PATRON_RELEASE_BUILD:-$PATRON_ROOT/build}"
PATRON_PY=/usr/bin/python3 # Debian's, with python3-redis, -confluent-kafka, -protobuf

# patron_build_release [TARGET...]: configures and builds the Release tree
# (every program, or only the TARGETs); quiet unless something fails.
patron_build_release() {
  cmake -S "$PATRON_ROOT" -B "$PATRON_RELEASE_BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DPATRON_TESTS=OFF >/dev/null
  nice ninja -j "$(nproc)" -C "$PATRON_RELEASE_BUILD" "$@" >/dev/null
}

# patron_build_test: configures and builds the sanitizer tree with its tests.
patron_build_test() {
  cmake -S "$PATRON_ROOT" -B "$PATRON_TEST_BUILD" -G Ninja -DPATRON_SANITIZE=ON \
    -DCMAKE_BUILD_TYPE=Debug >/dev/null
  nice ninja -j "$(nproc)" -C "$PATRON_TEST_BUILD"
}

# patron_stack up|down --dir DIR ...: tests/support/harness.py's command line
# (redis-server or a Redis Cluster, patron-devkafka, the services, in the
# background; `. DIR/stack.env` gives their ports, pids and brokers), with
# the programs of the Release tree.
patron_stack() {
  PATRON_BIN_DIR="$PATRON_RELEASE_BUILD" "$PATRON_PY" "$PATRON_ROOT/tests/support/harness.py" "$@"
}
