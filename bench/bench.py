"""Drives the load benchmark (see bench/run.sh) and writes bench/RESULTS.md."""

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"
OUT = ROOT / "bench" / "out"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
TOKEN = "dGltZWxpbmU="
HOLD_STREAMS = int(os.environ.get("BENCH_HOLD_STREAMS", "5000"))
BODY = '{"model":"%s","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up")


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, args, env=None):
        p = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def mock(procs, name, words=8):
    port = free_port()
    procs.start([str(REL / "mock-upstream"), "--port", str(port), "--name", name, "--models", f"{name}-model", "--reply-words", str(words)])
    wait_http(f"http://127.0.0.1:{port}/_mock/stats")
    return port


def gateway(procs, fast_port, slow_port, redis_url=None):
    port = free_port()
    models = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([
        {"logical_id": "bench", "upstreams": [{"provider_id": "fast", "model_id": "fast-model"}]},
        {"logical_id": "slow", "upstreams": [{"provider_id": "slow", "model_id": "slow-model"}]},
    ], models)
    models.close()
    env = {
        "PATH": os.environ["PATH"],
        "LOG_LEVEL": "WARNING",
        # mimalloc: commit arena memory on demand and return freed pages at once (what the
        # Dockerfile sets too); it keeps the resident size close to what is in use.
        "MIMALLOC_ARENA_EAGER_COMMIT": "0",
        "MIMALLOC_PURGE_DELAY": "0",
        "LLM_PROVIDERS": "fast,slow",
        "LLM_PROVIDER_fast_NAME": "Fast mock", "LLM_PROVIDER_fast_BASE_URL": f"http://127.0.0.1:{fast_port}", "LLM_PROVIDER_fast_API_KEY": "k",
        "LLM_PROVIDER_slow_NAME": "Slow mock", "LLM_PROVIDER_slow_BASE_URL": f"http://127.0.0.1:{slow_port}", "LLM_PROVIDER_slow_API_KEY": "k",
        "LOGICAL_MODELS_FILE": models.name,
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    p = procs.start([str(REL / "apiproxy"), "serve", "--port", str(port), "--env-file", "/dev/null"], env=env)
    wait_http(f"http://127.0.0.1:{port}/health")
    return port, p


def oha(url, model, concurrency, rate=None, auth=True):
    args = ["oha", "--no-tui", "--output-format", "json", "-z", f"{SECONDS}s", "-c", str(concurrency), "-m", "POST",
            "-T", "application/json", "-d", BODY % model]
    if auth:
        args += ["-H", f"Authorization: Bearer {TOKEN}"]
    if rate:
        args += ["-q", str(rate)]
    result = subprocess.run(args + [url], capture_output=True, text=True, check=True)
    data = json.loads(result.stdout)
    pct = data.get("latencyPercentiles", {})
    codes = data.get("statusCodeDistribution", {})
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) + sum(data.get("errorDistribution", {}).values())
    ms = lambda key: (pct.get(key) or float("nan")) * 1000
    return {
        "rps": data["summary"]["requestsPerSec"],
        "p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"), "p99.9": ms("p99.9"),
        "errors": total - ok, "total": total,
    }


def probe(mode, url, model, n, c):
    args = [str(REL / "examples" / "stream_probe"), mode, url, TOKEN, model, str(n), str(c)]
    return json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)


def run_suite(label, gw_port, direct_port, results):
    direct = f"http://127.0.0.1:{direct_port}/v1/chat/completions"
    via = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    print(f"[{label}] max throughput at 32 connections", flush=True)
    results[f"{label}.max.direct"] = oha(direct, "fast-model", 32, auth=False)
    results[f"{label}.max.gateway"] = oha(via, "bench", 32)
    for rate in (500, 2000):
        print(f"[{label}] fixed rate {rate}/s", flush=True)
        results[f"{label}.rate{rate}.direct"] = oha(direct, "fast-model", 64, rate=rate, auth=False)
        results[f"{label}.rate{rate}.gateway"] = oha(via, "bench", 64, rate=rate)


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return f"{os.cpu_count()} vCPU ({cpu}), {int(mem) // 1024} MiB RAM, {platform.system()} {platform.release()}; {rustc}; {oha_v}; commit {commit}"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    results = {}
    try:
        fast = mock(procs, "fast")
        slow = mock(procs, "slow", words=400)
        gw_port, gw = gateway(procs, fast, slow)
        time.sleep(0.5)
        results["rss.idle"] = rss_mib(gw.pid)

        peak = {"rss": 0.0}
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                peak["rss"] = max(peak["rss"], rss_mib(gw.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample)
        sampler.start()
        run_suite("memory", gw_port, fast, results)
        sampling.set()
        sampler.join()
        results["rss.load"] = peak["rss"]

        print("[memory] streaming: time to first byte (one stream at a time) and throughput (16 at a time)", flush=True)
        n = max(500, SECONDS * 100)
        for path, url, model in (("direct", f"http://127.0.0.1:{fast}/v1/chat/completions", "fast-model"),
                                 ("gateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions", "bench")):
            results[f"stream.{path}"] = probe("ttfb", url, model, n, 1)
            results[f"stream.{path}.busy"] = probe("ttfb", url, model, n * 4, 16)

        print(f"[memory] holding {HOLD_STREAMS} slow streams", flush=True)
        urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{slow}/_mock/fault", data=b'{"event_delay_ms":1000}', method="PUT", headers={"Content-Type": "application/json"})).read()
        hold_seconds = 25
        holder = subprocess.Popen([str(REL / "examples" / "stream_probe"), "hold", f"http://127.0.0.1:{gw_port}/v1/chat/completions", TOKEN, "slow", str(HOLD_STREAMS), str(hold_seconds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = holder.stdout.readline()
        time.sleep(2)
        held = json.loads(line) if line.strip() else {"open": 0, "failed": HOLD_STREAMS}
        held["rss"] = rss_mib(gw.pid)
        results["hold"] = held
        holder.kill()
        holder.wait()

        if shutil.which("redis-server"):
            redis_port = free_port()
            procs.start(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            time.sleep(0.5)
            rgw_port, _ = gateway(procs, fast, slow, redis_url=f"redis://127.0.0.1:{redis_port}/0")
            run_suite("redis", rgw_port, fast, results)
    finally:
        procs.stop()

    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    write_markdown(results, machine())
    print((ROOT / "bench" / "RESULTS.md").read_text())


def fmt(x, digits=2):
    return "n/a" if x != x else f"{x:,.{digits}f}"


def write_markdown(r, machine_line):
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine_line}. Run: `bench/run.sh` ({SECONDS} s per load step; mock upstream, gateway and load",
        "generator share the machine, so absolute figures are lower than on separate hosts; ratios are what count).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        "",
        "Latencies in milliseconds. *Added* is gateway minus direct at the same percentile.",
        "",
    ]
    for store in ("memory", "redis"):
        if f"{store}.max.direct" not in r:
            continue
        d, g = r[f"{store}.max.direct"], r[f"{store}.max.gateway"]
        lines += [f"## Store: {store}", "", "| load | path | req/s | p50 | p90 | p99 | p99.9 | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for step, label in (("max", "max throughput, 32 connections"), ("rate500", "500 req/s"), ("rate2000", "2,000 req/s")):
            for path in ("direct", "gateway"):
                x = r[f"{store}.{step}.{path}"]
                lines.append(f"| {label} | {path} | {fmt(x['rps'], 0)} | {fmt(x['p50'], 3)} | {fmt(x['p90'], 3)} | {fmt(x['p99'], 3)} | {fmt(x['p99.9'], 3)} | {x['errors']} of {x['total']} |")
        lines += [""]
        rd, rg = r[f"{store}.rate500.direct"], r[f"{store}.rate500.gateway"]
        added50, added99 = rg["p50"] - rd["p50"], rg["p99"] - rd["p99"]
        ratio = g["rps"] / d["rps"] if d["rps"] else float("nan")
        lines += [
            "| target | measured | met |",
            "| --- | ---: | --- |",
            f"| added latency p50 at 500 req/s ≤ 0.15 ms | {fmt(added50, 3)} ms | {'yes' if added50 <= 0.15 else 'no'} |",
            f"| added latency p99 at 500 req/s ≤ 1 ms | {fmt(added99, 3)} ms | {'yes' if added99 <= 1.0 else 'no'} |",
            f"| throughput through the gateway ≥ 50% of direct | {fmt(ratio * 100, 1)}% | {'yes' if ratio >= 0.5 else 'no'} |",
            "",
        ]
    if "stream.direct" in r:
        sd, sg = r["stream.direct"], r["stream.gateway"]
        added = sg["ttfb_p50_ms"] - sd["ttfb_p50_ms"]
        lines += [
            "## Streaming (in-memory store)",
            "",
            "| path | concurrent streams | streams/s | TTFB p50 | TTFB p90 | TTFB p99 | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for concurrency, suffix in ((1, ""), (16, ".busy")):
            for path in ("direct", "gateway"):
                x = r[f"stream.{path}{suffix}"]
                lines.append(f"| {path} | {concurrency} | {fmt(x['streams_per_sec'], 0)} | {fmt(x['ttfb_p50_ms'], 3)} | {fmt(x['ttfb_p90_ms'], 3)} | {fmt(x['ttfb_p99_ms'], 3)} | {x['errors']} |")
        lines += [
            "",
            f"Added first-byte latency p50, one stream at a time: {fmt(added, 3)} ms (target ≤ 0.5 ms: {'met' if added <= 0.5 else 'not met'}).",
            "",
        ]
    h = r.get("hold", {})
    lines += [
        "## Memory (gateway resident set size)",
        "",
        "| state | RSS MiB | target |",
        "| --- | ---: | --- |",
        f"| idle after start | {fmt(r.get('rss.idle', float('nan')), 1)} | ≤ 20 MiB: {'met' if r.get('rss.idle', 99) <= 20 else 'not met'} |",
        f"| peak under the max-throughput and fixed-rate loads | {fmt(r.get('rss.load', float('nan')), 1)} | |",
        f"| holding {h.get('open', 0)} open slow streams ({h.get('failed', 0)} failed to open) | {fmt(h.get('rss', float('nan')), 1)} | ≤ 150 MiB: {'met' if h.get('rss', 999) <= 150 and h.get('open', 0) >= HOLD_STREAMS else 'not met'} |",
        "",
    ]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += ["", notes.read_text()]
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
