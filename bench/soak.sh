#!/usr/bin/env bash
# Soak run: 30 minutes of mixed load (1,000 req/s plus 500 streams held open at all times, failures
# injected on one upstream) against the release gateway; samples RSS, open file descriptors,
# threads and live tokio tasks every minute and writes the curve to the "Soak" section of
# bench/RESULTS.md (raw samples in bench/out/soak.json). See bench/soak.py for the knobs:
#   bench/soak.sh                                   # the full 30-minute run
#   SOAK_MINUTES=3 SOAK_SAMPLE_SECONDS=20 SOAK_WARMUP_MINUTES=1 bench/soak.sh   # a quick look
#   SOAK_STRICT=1 bench/soak.sh                     # exit non-zero unless flat and clean
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v oha >/dev/null; then
  echo "installing the oha load generator from crates.io (once)..."
  cargo install oha --locked --quiet
fi
cargo build --release --locked --quiet --bin apiproxy --bin mock-upstream --example stream_probe
# 500 client streams and 500 upstream streams, plus the load's connections.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 bench/soak.py "$@"
