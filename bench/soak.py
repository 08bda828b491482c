"""Soak run (see bench/soak.sh): mixed load for SOAK_MINUTES (30) against the release gateway, with
failures injected on one upstream, sampling the gateway's RSS, open file descriptors, threads, live
tokio tasks and requests in progress every SOAK_SAMPLE_SECONDS (60). Writes the curve to the "Soak"
section of bench/RESULTS.md (other sections untouched) and the raw samples to bench/out/soak.json.

Load, all at once:
- `SOAK_RATE` (1000) non-streaming chat requests a second (oha, 64 connections) on the logical model
  `bench`, over two mocks of equal weight: `fast`, and `flaky`, which alternates 10 s healthy with
  10 s of injected failures (503s, then connections reset before the headers, in turn), so
  failover, cool-downs and probes run all the time;
- `SOAK_STREAMS` (500) streams held open at all times on the logical model `slow` (10 words, one
  event every 500 ms, so each stream lives about 5 s and is replaced at once: about 100 streams
  are set up and torn down a second).

Verdict (printed and written): after the warm-up (the first SOAK_WARMUP_MINUTES, 5), RSS, open
descriptors and live tasks do not grow by more than 5% (the median of the last five samples against
the first five: "flat"; the spread of all samples is reported beside it), every oha request got a
2xx (failover hides the injected failures) and the stream workers saw no failed stream. It reports; it does not fail on
the figures unless SOAK_STRICT=1.
"""

import json
import os
import statistics
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import bench
from bench import Procs, free_port, mock, wait_http, rss_mib, fmt, TOKEN, BODY, TOOLS, CURRENT_BIN, OUT, ROOT

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE_SECONDS", "60"))
WARMUP = float(os.environ.get("SOAK_WARMUP_MINUTES", "5"))
RATE = int(os.environ.get("SOAK_RATE", "1000"))
STREAMS = int(os.environ.get("SOAK_STREAMS", "500"))
STRICT = os.environ.get("SOAK_STRICT", "") not in ("", "0")
RESULTS = ROOT / "bench" / "RESULTS.md"
RAW = OUT / "soak.json"
BEGIN, END = "<!-- soak:begin -->", "<!-- soak:end -->"


def put_fault(port, fault):
    method, data = ("DELETE", None) if fault is None else ("PUT", json.dumps(fault).encode())
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_mock/fault", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=5).read()


def inject_failures(port, stop):
    """10 s healthy, 10 s failing (503s, then resets), until `stop`."""
    faults = [{"status": 503}, {"reset_before_headers": True}]
    turn = 0
    while not stop.wait(10):
        put_fault(port, faults[turn % len(faults)])
        turn += 1
        if stop.wait(10):
            break
        put_fault(port, None)
    put_fault(port, None)


def metric(port, name):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    text = urllib.request.urlopen(request, timeout=5).read().decode()
    match = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(match.group(1)) if match else float("nan")


def sample(pid, port, started):
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    return {
        "minute": round((time.time() - started) / 60, 2),
        "rss_mib": round(rss_mib(pid), 1),
        "fds": len(os.listdir(f"/proc/{pid}/fd")),
        "threads": threads,
        "tasks": metric(port, "apiproxy_runtime_alive_tasks"),
        "in_flight": metric(port, "apiproxy_in_flight_requests"),
        "open_streams": metric(port, "apiproxy_open_streams"),
    }


def after_warmup(samples, key):
    return [s[key] for s in samples if s["minute"] >= WARMUP and s[key] == s[key]]


def flatness(samples, key):
    """Largest over smallest after the warm-up, as a percentage above 100 (the spread)."""
    values = after_warmup(samples, key)
    if len(values) < 2 or min(values) <= 0:
        return float("nan")
    return (max(values) / min(values) - 1) * 100


def drift(samples, key):
    """Growth from the start to the end of the run after the warm-up: the median of the last five
    samples against the median of the first five, in per cent (a leak shows here; one busy
    moment does not)."""
    values = after_warmup(samples, key)
    if len(values) < 2:
        return float("nan")
    n = min(5, len(values) // 2)
    first, last = statistics.median(values[:n]), statistics.median(values[-n:])
    return (last / first - 1) * 100 if first > 0 else float("nan")


def gateway(procs, fast, flaky, slow):
    port = free_port()
    models = OUT / "soak-models.json"
    models.write_text(json.dumps([
        {"logical_id": "bench", "upstreams": [{"provider_id": "fast", "model_id": "fast-model"},
                                              {"provider_id": "flaky", "model_id": "flaky-model"}]},
        {"logical_id": "slow", "upstreams": [{"provider_id": "slow", "model_id": "slow-model"}]},
    ]))
    env = {"PATH": os.environ["PATH"], "LOG_LEVEL": "ERROR", "LOGICAL_MODELS_FILE": str(models),
           "MIMALLOC_ARENA_EAGER_COMMIT": "0", "MIMALLOC_PURGE_DELAY": "0",
           "LLM_PROVIDERS": "fast,flaky,slow", "PROVIDER_COOLDOWN_SECONDS": "5"}
    for name, mock_port in (("fast", fast), ("flaky", flaky), ("slow", slow)):
        env |= {f"LLM_PROVIDER_{name}_NAME": name, f"LLM_PROVIDER_{name}_API_KEY": "k",
                f"LLM_PROVIDER_{name}_BASE_URL": f"http://127.0.0.1:{mock_port}"}
    p = procs.start("soak-gateway", [str(CURRENT_BIN), "serve", "--port", str(port), "--env-file", "/dev/null"], env=env)
    wait_http(f"http://127.0.0.1:{port}/health", p, "soak-gateway")
    return port, p


def markdown(samples, summary):
    lines = [BEGIN, "## Soak", "",
             f"`bench/soak.sh`, {summary['when']}, {summary['machine']}.",
             f"{fmt(MINUTES, 0)} minutes: {RATE} req/s non-streaming over `fast` + `flaky` (failures injected on `flaky`, "
             f"10 s on, 10 s off) and {STREAMS} streams held open at all times (each about 5 s, replaced at once).", "",
             "| minute | RSS MiB | open fds | threads | tokio tasks | in flight | open streams |",
             "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in samples:
        lines.append(f"| {s['minute']:.1f} | {s['rss_mib']:.1f} | {s['fds']} | {s['threads']} | {s['tasks']:.0f} | {s['in_flight']:.0f} | {s['open_streams']:.0f} |")
    lines += ["",
              f"After the {fmt(WARMUP, 0)}-minute warm-up, growth (median of the last five samples against the first five): "
              f"RSS {summary['growth']['rss_mib']:+.1f}%, fds {summary['growth']['fds']:+.1f}%, tasks {summary['growth']['tasks']:+.1f}% "
              f"(flat means within 5%); spread (largest over smallest sample): RSS +{fmt(summary['flat']['rss_mib'], 1)}%, "
              f"fds +{fmt(summary['flat']['fds'], 1)}%, tasks +{fmt(summary['flat']['tasks'], 1)}%.",
              f"Requests: {summary['oha']['ok']} answered 2xx of {summary['oha']['total']} "
              f"({fmt(summary['oha']['rps'], 0)} req/s, p50 {fmt(summary['oha']['p50'], 2)} ms, p99 {fmt(summary['oha']['p99'], 2)} ms); "
              f"streams: {summary['streams']['completed']} completed, {summary['streams']['failed']} failed; "
              f"upstream `flaky` answered {summary['flaky_requests']} chat requests.",
              f"Verdict: {summary['verdict']}.", END]
    return "\n".join(lines)


def write_section(text):
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + text + "\n"
    RESULTS.write_text(new)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    stop = threading.Event()
    try:
        fast = mock(procs, "fast")
        flaky = mock(procs, "flaky")
        slow = mock(procs, "slow", words=10)
        put_fault(slow, {"event_delay_ms": 500})
        port, gw = gateway(procs, fast, flaky, slow)
        seconds = int(MINUTES * 60)
        print(f"soak: {fmt(MINUTES, 1)} minutes, {RATE} req/s + {STREAMS} held streams; gateway pid {gw.pid} on port {port}", flush=True)
        started = time.time()
        injector = threading.Thread(target=inject_failures, args=(flaky, stop), daemon=True)
        injector.start()
        streams = subprocess.Popen([str(TOOLS / "examples" / "stream_probe"), "churn", f"http://127.0.0.1:{port}/v1/chat/completions",
                                    TOKEN, "slow", str(STREAMS), str(seconds)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        load = {}
        loader = threading.Thread(target=lambda: load.update(bench.oha(f"http://127.0.0.1:{port}/v1/chat/completions", "bench", 64, rate=RATE, seconds=seconds)), daemon=True)
        loader.start()
        samples = []
        # Samples while the load runs at full strength: none in the last moments, when the load
        # generators wind down and the counts fall.
        k = 1
        while k * SAMPLE < seconds - 1:
            time.sleep(max(0.0, started + k * SAMPLE - time.time()))
            k += 1
            if gw.poll() is not None:
                raise RuntimeError(f"the gateway exited with status {gw.returncode} (log: {bench.log_path('soak-gateway')})")
            s = sample(gw.pid, port, started)
            samples.append(s)
            print(f"  minute {s['minute']:5.1f}: RSS {s['rss_mib']:.1f} MiB, {s['fds']} fds, {s['threads']} threads, "
                  f"{s['tasks']:.0f} tasks, {s['in_flight']:.0f} in flight, {s['open_streams']:.0f} open streams", flush=True)
        stop.set()
        loader.join(120)
        out, _ = streams.communicate(timeout=120)
        stream_counts = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"completed": 0, "failed": -1}
        flaky_requests = bench.mock_stats(flaky)["chat_requests"]
        flat = {key: flatness(samples, key) for key in ("rss_mib", "fds", "tasks")}
        growth = {key: drift(samples, key) for key in ("rss_mib", "fds", "tasks")}
        is_flat = all(v == v and abs(v) <= 5.0 for v in growth.values())
        clean = load.get("ok", 0) > 0 and not load.get("non2xx") and not load.get("failures") and stream_counts["failed"] == 0
        verdict = ("flat within 5% after the warm-up" if is_flat else "NOT flat within 5% after the warm-up") + \
                  (", every request and stream answered" if clean else ", with failed requests or streams")
        summary = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)), "machine": bench.machine(),
                   "oha": {k: load.get(k) for k in ("ok", "total", "rps", "p50", "p99", "non2xx", "failures")},
                   "streams": stream_counts, "flaky_requests": flaky_requests, "flat": flat, "growth": growth,
                   "verdict": verdict}
        RAW.write_text(json.dumps({"samples": samples, "summary": summary}, indent=2))
        text = markdown(samples, summary)
        write_section(text)
        print(text)
        return 1 if STRICT and not (is_flat and clean) else 0
    finally:
        stop.set()
        procs.stop()


if __name__ == "__main__":
    sys.exit(main())
