#!/usr/bin/env bash
# Load benchmark: the mock upstream direct vs through the gateway, in one run, on this machine.
# The bare nginx reverse proxy in front of the same mock is measured in every scenario too, as the
# floor one proxy hop pays, and the report gives the gateway's figures as ratios to it (issue 21).
# Builds in release mode, installs oha (crates.io) and nginx (Debian's nginx-light) if missing, writes
# bench/RESULTS.md (and raw JSON, process logs and the generated nginx.conf in bench/out/).
#   bench/run.sh                    # full run (about 6 minutes)
#   BENCH_SECONDS=5 bench/run.sh    # shorter runs
#   BENCH_SMOKE=1 bench/run.sh      # CI smoke run: every scenario, short (under a minute after the
#                                   # build); writes bench/out/SMOKE.md, not bench/RESULTS.md, and
#                                   # exits non-zero if the machinery is broken (never on the figures)
#   BENCH_BASELINE=4b537d8 bench/run.sh
#                                   # before/after: also builds that git revision's apiproxy (release,
#                                   # in the worktree target/bench-baseline/src with its own target dir
#                                   # target/bench-baseline/target, both reused by later runs) and runs
#                                   # the throughput and added-latency scenarios for both binaries,
#                                   # alternating, against the same mock; adds the section "Before and
#                                   # after" (medians, change %, within 3%). BENCH_BASELINE_ROUNDS sets
#                                   # the rounds per scenario (3; 2 in smoke runs). About 8 more minutes
#                                   # for a full run, ~40 s for a smoke run (informational there).
#   BENCH_CURRENT_BIN=<path>        # testing aid, only with BENCH_BASELINE: use that apiproxy binary as
#                                   # "current" and skip building this tree (the mock and stream probe
#                                   # then come from the baseline worktree); for checking the comparison
#                                   # machinery while this tree does not compile.
set -euo pipefail
current_bin=""
if [[ -n "${BENCH_CURRENT_BIN:-}" ]]; then
  if [[ -z "${BENCH_BASELINE:-}" ]]; then
    echo "BENCH_CURRENT_BIN is a testing aid for the before/after comparison: set BENCH_BASELINE too" >&2
    exit 2
  fi
  current_bin=$(realpath -e -- "$BENCH_CURRENT_BIN" 2>/dev/null) && [[ -x "$current_bin" ]] \
    || { echo "BENCH_CURRENT_BIN=$BENCH_CURRENT_BIN: no such executable" >&2; exit 2; }
fi
cd "$(dirname "$0")/.."

baseline_sha=""
if [[ -n "${BENCH_BASELINE:-}" ]]; then
  # Fail before any build if the revision does not exist.
  if ! baseline_sha=$(git rev-parse --verify --quiet "${BENCH_BASELINE}^{commit}"); then
    echo "BENCH_BASELINE=$BENCH_BASELINE: no such git revision (commit, tag or branch) in this repository" >&2
    exit 2
  fi
fi

if ! command -v oha >/dev/null; then
  echo "installing the oha load generator from crates.io (once)..."
  started=$SECONDS
  cargo install oha --locked --quiet
  echo "oha installed in $((SECONDS - started)) s"
fi
# The reference proxy. bench/bench.py writes its configuration (bench/out/nginx/nginx.conf), runs it as
# a child process on free ports on 127.0.0.1 and stops it when the run ends (also on SIGTERM/SIGHUP).
nginx_bin=$(command -v nginx || true)
if [[ -z "$nginx_bin" && -x /usr/sbin/nginx ]]; then nginx_bin=/usr/sbin/nginx; fi
if [[ -z "$nginx_bin" ]]; then
  echo "installing nginx from Debian's packages (nginx-light, once)..."
  # RUNLEVEL=1: the package's scripts do not start a system-wide nginx on port 80.
  if (apt-get update -qq && RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light); then
    nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  else
    echo "could not install nginx-light: the nginx rows will be missing (a smoke run then fails)"
  fi
fi
export BENCH_NGINX="$nginx_bin"
if ! command -v redis-server >/dev/null; then
  echo "redis-server not found: the Redis rows will be skipped (apt-get install redis-server)"
fi

if [[ -n "$baseline_sha" ]]; then
  # The baseline's own git worktree and target dir: target/release/apiproxy is never overwritten, and
  # both stay warm between runs (a later run only checks out the revision and rebuilds what changed).
  wt=target/bench-baseline/src
  btarget="$PWD/target/bench-baseline/target"
  if [[ -e "$wt/.git" ]]; then
    git -C "$wt" checkout --quiet --force --detach "$baseline_sha"
  else
    if [[ -e "$wt" ]]; then
      echo "$wt exists but is not a git worktree: remove it and run again" >&2
      exit 2
    fi
    git worktree prune
    mkdir -p "$(dirname "$wt")"
    git worktree add --quiet --detach "$wt" "$baseline_sha"
  fi
  short=$(git rev-parse --short "$baseline_sha")
  label=$short
  [[ "$baseline_sha" == "$BENCH_BASELINE"* ]] || label="$BENCH_BASELINE ($short)"
  echo "baseline $label: release build in $wt (the first one takes a few minutes)..."
  started=$SECONDS
  (cd "$wt" && CARGO_TARGET_DIR="$btarget" cargo build --release --locked --quiet --bin apiproxy)
  echo "baseline release build: $((SECONDS - started)) s"
  if [[ -n "$current_bin" ]]; then
    # Testing aid: this tree is not built, so the mock and the stream probe come from the baseline.
    (cd "$wt" && CARGO_TARGET_DIR="$btarget" cargo build --release --locked --quiet --bin mock-upstream --example stream_probe)
    export BENCH_TOOLS_DIR="$btarget/release"
    export BENCH_CURRENT_BIN="$current_bin"
    echo "testing aid: current binary is $current_bin (this tree not built)"
  fi
  export BENCH_BASELINE_BIN="$btarget/release/apiproxy"
  export BENCH_BASELINE_REV="$label"
fi
if [[ -z "$current_bin" ]]; then
  started=$SECONDS
  cargo build --release --locked --quiet --bin apiproxy --bin mock-upstream --example stream_probe
  echo "release build: $((SECONDS - started)) s"
fi
# 5,000 client streams and 5,000 upstream streams need file descriptors.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
exec python3 bench/bench.py "$@"
