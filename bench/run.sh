#!/usr/bin/env bash
# Load benchmark: the mock upstream direct vs through the gateway, in one run, on this machine.
# Builds in release mode, installs oha if missing, writes bench/RESULTS.md (and raw JSON in bench/out/).
#   bench/run.sh                    # full run (about 3 minutes)
#   BENCH_SECONDS=5 bench/run.sh    # shorter runs
#   BENCH_SMOKE=1 bench/run.sh      # CI smoke run: every scenario, short (under a minute after the
#                                   # build); writes bench/out/SMOKE.md, not bench/RESULTS.md, and
#                                   # exits non-zero if the machinery is broken (never on the figures)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v oha >/dev/null; then
  echo "installing the oha load generator from crates.io (once)..."
  started=$SECONDS
  cargo install oha --locked --quiet
  echo "oha installed in $((SECONDS - started)) s"
fi
if ! command -v redis-server >/dev/null; then
  echo "redis-server not found: the Redis rows will be skipped (apt-get install redis-server)"
fi
started=$SECONDS
cargo build --release --locked --quiet --bin apiproxy --bin mock-upstream --example stream_probe
echo "release build: $((SECONDS - started)) s"
# 5,000 client streams and 5,000 upstream streams need file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 bench/bench.py "$@"
