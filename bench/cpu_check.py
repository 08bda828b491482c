#!/usr/bin/env python3
"""CPU-per-request regression check (CI: .ci/cpu-check): instructions the gateway executes per proxied
chat request, counted by callgrind (bench/instructions.py), against the figure recorded in
bench/cpu-baseline.json. Fails when either mode (non-streaming, streaming) is more than 15% over it.

    bench/cpu_check.py                 # check (what .ci/cpu-check runs after the release build)
    bench/cpu_check.py --record        # re-record the baseline on purpose, then commit the JSON file
    bench/cpu_check.py --bin OTHER --mock target/release/mock-upstream   # check another binary

Why instructions and not time: the count is what the code does, not how fast a shared, loaded or
throttled machine ran it, so the same binary gives the same figure (within about 0.5%) on a busy CI
runner and on a quiet laptop, and a 15% threshold catches real regressions without flapping. What
still moves it besides the code: the Rust toolchain (code generation), Cargo.lock (dependencies),
and the CPU features valgrind reports to the program (glibc and some crates pick SIMD variants at
run time); the baseline records the rustc, valgrind and CPU it was taken with, and the check warns
when they differ.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instructions import free_port, instructions, wait_up  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "bench" / "cpu-baseline.json"
MODES = (("non_streaming", False), ("streaming", True))
# The threshold; the run-to-run spread is about 0.5%, so this leaves room for toolchain and
# CPU-feature drift without hiding a real regression of a sixth or more.
THRESHOLD = 15.0
# Sources whose uncommitted changes make a recording misattributed (the binary is built from them).
SOURCE_PATHS = ("src", "Cargo.toml", "Cargo.lock", "build.rs", "examples")


def run(*args):
    return subprocess.run(args, capture_output=True, text=True, cwd=ROOT).stdout.strip()


def environment():
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    return {"valgrind": run("valgrind", "--version"), "rustc": run("rustc", "--version"), "cpu": cpu}


def measure(binary, mock, n, warmup, runs):
    """{mode: [instructions per request, one figure per run]}: each run a fresh gateway under
    callgrind, `warmup` requests uncounted, then n counted (bench/instructions.py)."""
    port = free_port()
    proc = subprocess.Popen([mock, "--port", str(port), "--name", "fast-mock", "--models", "fast-model"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures = {}
    try:
        wait_up(port, proc, 30, "/v1/models")
        for mode, stream in MODES:
            figures[mode] = []
            for i in range(runs):
                figures[mode].append(instructions(binary, port, n, stream, warmup))
                print(f"  {mode:14} run {i + 1} of {runs}: {figures[mode][-1]:,.0f} instructions per request", flush=True)
    finally:
        proc.terminate()
        proc.wait()
    return figures


def spread(values):
    """Largest over smallest, in per cent: how much the count moved between runs."""
    return (max(values) / min(values) - 1) * 100 if values and min(values) > 0 else 0.0


def record(path, figures, args, commit):
    data = {
        "what": "instructions per proxied chat request (callgrind), mean of the runs; checked by .ci/cpu-check",
        "recorded": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        **environment(),
        "requests": args.n, "warmup": args.warmup, "runs": args.runs,
        "threshold_percent": THRESHOLD,
    }
    for mode, values in figures.items():
        data[mode] = {"per_request": round(sum(values) / len(values)), "runs": [round(v) for v in values],
                      "spread_percent": round(spread(values), 2)}
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"recorded {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} (commit {commit}): "
          + ", ".join(f"{mode} {data[mode]['per_request']:,}" for mode, _ in MODES)
          + "; commit the file to make it the figure CI checks against")


def check(path, figures):
    if not path.exists():
        print(f"cpu-check: no baseline at {path}; record one with .ci/cpu-check --record", flush=True)
        return 1
    base = json.loads(path.read_text())
    print(f"baseline: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}, commit {base.get('commit')}, "
          f"recorded {base.get('recorded')}, {base.get('valgrind')}, {base.get('rustc')}")
    now = environment()
    for key in ("valgrind", "rustc", "cpu"):
        if base.get(key) and base[key] != now[key]:
            print(f"  note: {key} differs from the baseline's ({now[key]!r} here, {base[key]!r} recorded): "
                  "counts may move a few per cent for that reason alone")
    failed = []
    print(f"{'mode':14} {'baseline':>10} {'measured':>10} {'ratio':>7}  (fails above {1 + THRESHOLD / 100:.2f})")
    for mode, _ in MODES:
        recorded = base.get(mode, {}).get("per_request")
        measured = sum(figures[mode]) / len(figures[mode])
        if not recorded:
            print(f"{mode:14} {'missing':>10} {measured:>10,.0f}")
            failed.append(f"{mode}: no recorded figure")
            continue
        ratio = measured / recorded
        verdict = "ok"
        if ratio > 1 + THRESHOLD / 100:
            verdict = "FAIL"
            failed.append(f"{mode}: {measured:,.0f} instructions per request, {(ratio - 1) * 100:+.1f}% over the recorded {recorded:,}")
        elif ratio < 1 - THRESHOLD / 100:
            verdict = f"ok (cheaper by {(1 - ratio) * 100:.0f}%: re-record with --record so the check stays tight)"
        print(f"{mode:14} {recorded:>10,} {measured:>10,.0f} {ratio:>7.3f}  {verdict}; runs "
              + ", ".join(f"{v:,.0f}" for v in figures[mode]) + f" (spread {spread(figures[mode]):.2f}%)")
    if failed:
        print("cpu-check FAILED: the gateway executes more instructions per proxied request than recorded:")
        for what in failed:
            print(f"  - {what}")
        print("If the extra cost is intended (a feature worth it), say so in bench/NOTES.md and re-record:"
              " .ci/cpu-check --record, then commit bench/cpu-baseline.json.")
        return 1
    print(f"cpu-check passed: both modes within {THRESHOLD:g}% of the recorded figures")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="measure and write the baseline instead of checking")
    parser.add_argument("--commit", help="with --record on a tree with uncommitted source changes: the commit the binary was built from")
    parser.add_argument("--bin", default=str(ROOT / "target" / "release" / "apiproxy"))
    parser.add_argument("--mock", default=str(ROOT / "target" / "release" / "mock-upstream"))
    parser.add_argument("--baseline", default=str(BASELINE))
    parser.add_argument("--n", type=int, default=1000, help="requests counted per run (the baseline's own when checking)")
    parser.add_argument("--warmup", type=int, default=50, help="requests before counting starts")
    parser.add_argument("--runs", type=int, default=2, help="fresh gateways per mode; the mean is compared")
    args = parser.parse_args()
    path = Path(args.baseline)
    commit = None
    if args.record:
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *SOURCE_PATHS], capture_output=True,
                               text=True, cwd=ROOT).stdout.rstrip()
        commit = args.commit or run("git", "rev-parse", "--short", "HEAD")
        if dirty and not args.commit:
            print("cpu-check --record: the sources have uncommitted changes, so the binary is not HEAD's:\n"
                  + dirty + "\ncommit them first, or name the commit the binary was built from with --commit")
            return 2
    elif path.exists():
        # The same work as the recording: fixed costs inside the counted window (periodic tasks,
        # switching instrumentation on) spread over a different N would not compare exactly.
        base = json.loads(path.read_text())
        args.n, args.warmup = base.get("requests", args.n), base.get("warmup", args.warmup)
    for binary in (args.bin, args.mock):
        if not os.access(binary, os.X_OK):
            print(f"cpu-check: {binary} not found; build it: cargo build --release --bin apiproxy --bin mock-upstream")
            return 2
    print(f"instructions per proxied request under callgrind: {args.runs} run(s) per mode, "
          f"{args.warmup} requests uncounted then {args.n} counted, binary {args.bin}", flush=True)
    figures = measure(args.bin, args.mock, args.n, args.warmup, args.runs)
    if args.record:
        record(path, figures, args, commit)
        return 0
    return check(path, figures)


if __name__ == "__main__":
    sys.exit(main())
