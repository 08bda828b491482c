"""Drives the load benchmark (see bench/run.sh) and writes bench/RESULTS.md.

BENCH_SMOKE=1: the same scenarios with short runs and small counts, for CI. Writes bench/out/SMOKE.md
(never bench/RESULTS.md) and exits non-zero when the machinery is broken (a process that did not
come up or died, no successful requests, non-2xx answers, a scenario without figures, held streams
that did not all open and complete). Performance figures are printed, never judged.

BENCH_BASELINE_BIN (set by bench/run.sh from BENCH_BASELINE=<rev>, with BENCH_BASELINE_REV naming
it): after the usual scenarios, the throughput and added-latency scenarios run again for that binary
and the current one, alternating, and the report gets a "Before and after" section. BENCH_CURRENT_BIN
and BENCH_TOOLS_DIR (testing aid, see bench/run.sh) replace target/release/apiproxy and the directory
of the mock and the stream probe.
"""

import statistics

import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REL = ROOT / "target" / "release"
OUT = ROOT / "bench" / "out"
LOGS = OUT / "logs"
SMOKE = os.environ.get("BENCH_SMOKE", "") not in ("", "0")
SECONDS = int(os.environ.get("BENCH_SECONDS", "1" if SMOKE else "10"))
TOKEN = "dGltZWxpbmU="
HOLD_STREAMS = int(os.environ.get("BENCH_HOLD_STREAMS", "300" if SMOKE else "5000"))
# Held streams: the full run holds never-ending streams (400 words, one event a second) for 25 s;
# the smoke run uses short ones (8 words, an event every 200 ms) and checks that every one of them
# reached the mock and was proxied to its end.
HOLD_SECONDS = 6 if SMOKE else 25
HOLD_WORDS = 8 if SMOKE else 400
HOLD_EVENT_DELAY_MS = 200 if SMOKE else 1000
REPORT = OUT / "SMOKE.md" if SMOKE else ROOT / "bench" / "RESULTS.md"
RAW = OUT / ("smoke.json" if SMOKE else "results.json")
BODY = '{"model":"%s","messages":[{"role":"user","content":"Say hello to the benchmark."}]}'
NAN = float("nan")
# Before/after comparison (off unless bench/run.sh got BENCH_BASELINE).
BASELINE_BIN = os.environ.get("BENCH_BASELINE_BIN", "")
BASELINE_REV = os.environ.get("BENCH_BASELINE_REV", "") or "baseline"
CURRENT_BIN = Path(os.environ.get("BENCH_CURRENT_BIN") or REL / "apiproxy")
TOOLS = Path(os.environ.get("BENCH_TOOLS_DIR") or REL)
ROUNDS = max(1, int(os.environ.get("BENCH_BASELINE_ROUNDS", "2" if SMOKE else "3")))
WITHIN = 3.0  # per cent


class Checks:
    """Machinery checks: recorded and printed in both modes; they fail the run only in smoke mode."""

    def __init__(self):
        self.items = []

    def __call__(self, ok, what):
        self.items.append((bool(ok), what))
        print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
        return ok

    def failed(self):
        return [what for ok, what in self.items if not ok]


CHECK = Checks()


def finite(x):
    return isinstance(x, (int, float)) and math.isfinite(x)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc=None, name="process", timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode} before {url} answered (log: {log_path(name)})")
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except Exception:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not come up: {url} did not answer within {timeout} s (log: {log_path(name)})")


def wait_redis(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with status {proc.returncode} (log: {log_path('redis')})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"redis-server did not come up on port {port} within {timeout} s")


def rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return NAN


def note_rss(results, label, pid):
    """Records and prints the gateway's RSS after a scenario (nobody reads /metrics in the run, so
    anything kept per request until a scrape shows here as growth)."""
    rss = rss_mib(pid)
    results.setdefault("rss.after", []).append([label, rss])
    print(f"  RSS after {label}: {fmt(rss, 1)} MiB", flush=True)


def log_path(name):
    return LOGS / f"{name}.log"


class Procs:
    def __init__(self):
        self.procs = []

    def start(self, name, args, env=None):
        """Starts a background process; its output goes to bench/out/logs/<name>.log."""
        LOGS.mkdir(parents=True, exist_ok=True)
        with open(log_path(name), "wb") as log:
            p = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def mock(procs, name, words=8):
    port = free_port()
    p = procs.start(f"mock-{name}", [str(TOOLS / "mock-upstream"), "--port", str(port), "--name", name, "--models", f"{name}-model", "--reply-words", str(words)])
    wait_http(f"http://127.0.0.1:{port}/_mock/stats", p, f"mock-{name}")
    return port


def mock_stats(port):
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/_mock/stats", timeout=5).read())


def gateway(procs, fast_port, slow_port, redis_url=None, name="gateway", binary=None):
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
    p = procs.start(name, [str(binary or CURRENT_BIN), "serve", "--port", str(port), "--env-file", "/dev/null"], env=env)
    wait_http(f"http://127.0.0.1:{port}/health", p, name)
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    CHECK(p.poll() is None and health.get("status") == "ok",
          f"{name} came up on port {port} and reports {health}")
    return port, p


def oha(url, model, concurrency, rate=None, auth=True, seconds=None):
    args = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds or SECONDS}s", "-c", str(concurrency), "-m", "POST",
            "-T", "application/json", "-d", BODY % model]
    if auth:
        args += ["-H", f"Authorization: Bearer {TOKEN}"]
    if rate:
        args += ["-q", str(rate)]
    result = subprocess.run(args + [url], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"oha exited with status {result.returncode}: {result.stderr.strip()[-2000:]}")
    data = json.loads(result.stdout)
    pct = data.get("latencyPercentiles") or {}
    codes = data.get("statusCodeDistribution") or {}
    failures = data.get("errorDistribution") or {}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values()) + sum(failures.values())
    ms = lambda key: (pct.get(key) or NAN) * 1000
    return {
        "rps": data["summary"].get("requestsPerSec") or NAN,
        "p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"), "p99.9": ms("p99.9"),
        "errors": total - ok, "total": total,
        # For the checks: what was not a 2xx, and what failed other than the requests in flight
        # when the time was up (oha cuts those off: "aborted due to deadline").
        "ok": ok,
        "non2xx": {k: v for k, v in codes.items() if not k.startswith("2")},
        "failures": {k: v for k, v in failures.items() if "deadline" not in k.lower()},
    }


def check_load(name, x):
    CHECK(x["ok"] > 0 and finite(x["rps"]) and x["rps"] > 0 and finite(x["p50"]),
          f"{name}: {x['ok']} successful requests, {fmt(x['rps'], 0)} req/s, p50 {fmt(x['p50'], 3)} ms")
    CHECK(not x["non2xx"] and not x["failures"],
          f"{name}: no non-2xx answers and no failed requests" + (f" (got {x['non2xx']} {x['failures']})" if x["non2xx"] or x["failures"] else ""))


def probe(mode, url, model, n, c):
    args = [str(TOOLS / "examples" / "stream_probe"), mode, url, TOKEN, model, str(n), str(c)]
    result = subprocess.run(args, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"stream_probe {mode} exited with status {result.returncode}: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout)


def check_probe(name, x, n):
    CHECK(x.get("streams", 0) > 0 and finite(x.get("ttfb_p50_ms")),
          f"{name}: {x.get('streams', 0)} streams read to [DONE], TTFB p50 {fmt(x.get('ttfb_p50_ms', NAN), 3)} ms")
    CHECK(x.get("errors", 1) == 0 and x.get("streams", 0) == n, f"{name}: all {n} streams complete, {x.get('errors')} errors")


def check_alive(name, proc):
    CHECK(proc.poll() is None, f"{name} still running" + ("" if proc.poll() is None else f" (exited with status {proc.returncode}; log: {log_path(name)})"))


def run_suite(label, gw_port, gw_pid, direct_port, results):
    direct = f"http://127.0.0.1:{direct_port}/v1/chat/completions"
    via = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    print(f"[{label}] max throughput at 32 connections", flush=True)
    results[f"{label}.max.direct"] = oha(direct, "fast-model", 32, auth=False)
    results[f"{label}.max.gateway"] = oha(via, "bench", 32)
    note_rss(results, f"{label}: max throughput", gw_pid)
    for rate in (500, 2000):
        print(f"[{label}] fixed rate {rate}/s", flush=True)
        results[f"{label}.rate{rate}.direct"] = oha(direct, "fast-model", 64, rate=rate, auth=False)
        results[f"{label}.rate{rate}.gateway"] = oha(via, "bench", 64, rate=rate)
        note_rss(results, f"{label}: {rate} req/s", gw_pid)
    for step in ("max", "rate500", "rate2000"):
        for path in ("direct", "gateway"):
            check_load(f"{label}.{step}.{path}", results[f"{label}.{step}.{path}"])


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return f"{os.cpu_count()} vCPU ({cpu}), {int(mem) // 1024} MiB RAM, {platform.system()} {platform.release()}; {rustc}; {oha_v}; commit {commit}"


def hold_streams(procs, gw_port, gw, slow, results):
    print(f"[memory] holding {HOLD_STREAMS} slow streams", flush=True)
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{slow}/_mock/fault", data=json.dumps({"event_delay_ms": HOLD_EVENT_DELAY_MS}).encode(), method="PUT", headers={"Content-Type": "application/json"})).read()
    holder = subprocess.Popen([str(TOOLS / "examples" / "stream_probe"), "hold", f"http://127.0.0.1:{gw_port}/v1/chat/completions", TOKEN, "slow", str(HOLD_STREAMS), str(HOLD_SECONDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = holder.stdout.readline()
    time.sleep(0.5 if SMOKE else 2)
    held = json.loads(line) if line.strip() else {"open": 0, "failed": HOLD_STREAMS}
    held["rss"] = rss_mib(gw.pid)
    results["hold"] = held
    CHECK(held["open"] == HOLD_STREAMS and held["failed"] == 0,
          f"held streams: {held['open']} of {HOLD_STREAMS} open, {held['failed']} failed to open, gateway RSS {fmt(held['rss'], 1)} MiB")
    if not SMOKE:
        holder.kill()
        holder.wait()
        return
    # Smoke: every held stream must reach the mock and be proxied to its end, and the holder must
    # finish on its own.
    stats = {}
    deadline = time.time() + HOLD_SECONDS + 10
    while time.time() < deadline:
        stats = mock_stats(slow)
        if stats["streams_completed"] + stats["streams_cancelled"] >= HOLD_STREAMS:
            break
        time.sleep(0.2)
    held["upstream"] = {k: stats.get(k) for k in ("chat_requests", "streams_completed", "streams_cancelled")}
    CHECK(stats.get("chat_requests") == HOLD_STREAMS and stats.get("streams_completed") == HOLD_STREAMS,
          f"held streams: the slow mock got {stats.get('chat_requests')} of {HOLD_STREAMS} and sent {stats.get('streams_completed')} to their end ({stats.get('streams_cancelled')} cut off)")
    try:
        rc = holder.wait(HOLD_SECONDS + 10)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()
        rc = "timeout"
    CHECK(rc == 0, f"held streams: the holding client finished (status {rc})")


def run(procs, results):
    fast = mock(procs, "fast")
    slow = mock(procs, "slow", words=HOLD_WORDS)
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
    try:
        run_suite("memory", gw_port, gw.pid, fast, results)
    finally:
        sampling.set()
        sampler.join()
    results["rss.load"] = peak["rss"]
    CHECK(finite(results["rss.idle"]) and results["rss.load"] > 0,
          f"gateway RSS measured: idle {fmt(results['rss.idle'], 1)} MiB, peak under load {fmt(results['rss.load'], 1)} MiB")
    check_alive("gateway", gw)

    print("[memory] streaming: time to first byte (one stream at a time) and throughput (16 at a time)", flush=True)
    n = max(100 if SMOKE else 500, SECONDS * 100)
    for path, url, model in (("direct", f"http://127.0.0.1:{fast}/v1/chat/completions", "fast-model"),
                             ("gateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions", "bench")):
        results[f"stream.{path}"] = probe("ttfb", url, model, n, 1)
        check_probe(f"stream.{path} (1 at a time)", results[f"stream.{path}"], n)
        results[f"stream.{path}.busy"] = probe("ttfb", url, model, n * 4, 16)
        check_probe(f"stream.{path} (16 at a time)", results[f"stream.{path}.busy"], n * 4)
        if path == "gateway":
            note_rss(results, "memory: streaming", gw.pid)

    hold_streams(procs, gw_port, gw, slow, results)
    check_alive("gateway", gw)
    time.sleep(2)
    note_rss(results, "memory: after the held streams ended", gw.pid)

    redis_port, gateways = None, [gw]
    if shutil.which("redis-server"):
        redis_port = free_port()
        rp = procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        wait_redis(redis_port, rp)
        rgw_port, rgw = gateway(procs, fast, slow, redis_url=f"redis://127.0.0.1:{redis_port}/0", name="gateway-redis")
        run_suite("redis", rgw_port, rgw.pid, fast, results)
        check_alive("gateway-redis", rgw)
        gateways.append(rgw)
    else:
        print("[redis] redis-server not found: Redis rows skipped", flush=True)

    if BASELINE_BIN:
        # The usual scenarios are done: their gateways stop, the comparison starts fresh ones.
        for p in gateways:
            stop_proc(p)
        compare(procs, results, fast, slow, redis_port)


def stop_proc(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


# ---- Before/after: the baseline binary vs the current one (BENCH_BASELINE=<rev> bench/run.sh) ----

SIDES = ("baseline", "current")
STEPS = (("max", "max throughput, 32 connections", None, 32), ("rate500", "500 req/s", 500, 64), ("rate2000", "2,000 req/s", 2000, 64))


def current_label():
    if os.environ.get("BENCH_CURRENT_BIN"):
        return f"binary {rel(CURRENT_BIN)}"
    git = lambda *args: subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = git("status", "--porcelain", "--", ".", ":(exclude)bench")
    return git("rev-parse", "--short", "HEAD") + (" with uncommitted changes" if dirty else "")


def rel(path):
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def alternate(k):
    """The order of the two binaries in round k (from 0): baseline first, then flipped every round,
    so neither always runs first (warm caches, drift during the pair)."""
    return SIDES if k % 2 == 0 else SIDES[::-1]


def compare(procs, results, fast, slow, redis_port):
    cmp = results["baseline"] = {"rev": BASELINE_REV, "binary": BASELINE_BIN, "current": current_label(),
                                 "current_binary": str(CURRENT_BIN), "rounds": ROUNDS, "runs": {}}
    try:
        if not Path(BASELINE_BIN).is_file():
            raise RuntimeError(f"baseline binary {BASELINE_BIN} not found")
        compare_store(procs, cmp["runs"], "memory", fast, slow, None)
        if redis_port:
            compare_store(procs, cmp["runs"], "redis", fast, slow, redis_port)
    except Exception as e:
        traceback.print_exc()
        cmp["error"] = f"{type(e).__name__}: {e}"
        CHECK(False, f"before/after comparison aborted: {cmp['error']}")


def compare_store(procs, runs, store, fast, slow, redis_port):
    gws = {}
    for i, side in enumerate(SIDES):
        name = f"gateway{'-redis' if redis_port else ''}-{side}"
        # With Redis, each gateway on its own database, both empty at the start.
        url = f"redis://127.0.0.1:{redis_port}/{i + 1}" if redis_port else None
        port, p = gateway(procs, fast, slow, redis_url=url, name=name, binary=Path(BASELINE_BIN) if side == "baseline" else CURRENT_BIN)
        gws[side] = (f"http://127.0.0.1:{port}/v1/chat/completions", p, name)
    direct = f"http://127.0.0.1:{fast}/v1/chat/completions"
    tag = f"before/after {store}"
    print(f"[{tag}] warm-up: 1 s at 32 connections per gateway (not counted)", flush=True)
    for side in SIDES:
        oha(gws[side][0], "bench", 32, seconds=1)
    for step, label, rate, connections in STEPS:
        rounds = runs[f"{store}.{step}"] = []
        for k in range(ROUNDS):
            order = alternate(k)
            print(f"[{tag}] {label}, round {k + 1} of {ROUNDS}: {'direct, ' if rate else ''}{', '.join(order)}", flush=True)
            rnd = {"order": list(order)}
            if rate:  # *added* latency: gateway minus the direct run of the same round
                rnd["direct"] = oha(direct, "fast-model", connections, rate=rate, auth=False)
                check_load(f"{tag}.{step} round {k + 1} direct", rnd["direct"])
            for side in order:
                rnd[side] = oha(gws[side][0], "bench", connections, rate=rate)
                check_load(f"{tag}.{step} round {k + 1} {side}", rnd[side])
            rounds.append(rnd)
    if store == "memory":
        n = max(100 if SMOKE else 500, SECONDS * 100)
        for concurrency, key in ((1, "stream.1"), (16, "stream.16")):
            rounds = runs[key] = []
            count = n if concurrency == 1 else n * 4
            for k in range(ROUNDS):
                order = alternate(k)
                print(f"[{tag}] streaming, {concurrency} at a time, round {k + 1} of {ROUNDS}: {'direct, ' if concurrency == 1 else ''}{', '.join(order)}", flush=True)
                rnd = {"order": list(order)}
                if concurrency == 1:  # added first-byte latency, as in the streaming section
                    rnd["direct"] = probe("ttfb", direct, "fast-model", count, 1)
                    check_probe(f"{tag} streaming round {k + 1} direct (1 at a time)", rnd["direct"], count)
                for side in order:
                    rnd[side] = probe("ttfb", gws[side][0], "bench", count, concurrency)
                    check_probe(f"{tag} streaming round {k + 1} {side} ({concurrency} at a time)", rnd[side], count)
                rounds.append(rnd)
    for side in SIDES:
        check_alive(gws[side][2], gws[side][1])
        stop_proc(gws[side][1])


def added(key):
    return lambda rnd, side: rnd[side][key] - rnd["direct"][key]


def comparison_rows():
    """(run key, scenario, metric, kind, value of one round for one side); kind "more" when higher is
    better (throughput), "less" when lower is better (added latency)."""
    rows = []
    for store in ("memory", "redis"):
        rows += [
            (f"{store}.max", f"{store}: max throughput, 32 connections", "req/s", "more", lambda rnd, side: rnd[side]["rps"]),
            (f"{store}.rate500", f"{store}: 500 req/s", "added p50 ms", "less", added("p50")),
            (f"{store}.rate500", f"{store}: 500 req/s", "added p99 ms", "less", added("p99")),
            (f"{store}.rate2000", f"{store}: 2,000 req/s", "added p50 ms", "less", added("p50")),
            (f"{store}.rate2000", f"{store}: 2,000 req/s", "added p99 ms", "less", added("p99")),
        ]
        if store == "memory":
            rows += [
                ("stream.1", "memory: streaming, 1 at a time", "added TTFB p50 ms", "less", added("ttfb_p50_ms")),
                ("stream.1", "memory: streaming, 1 at a time", "added TTFB p99 ms", "less", added("ttfb_p99_ms")),
                ("stream.16", "memory: streaming, 16 at a time", "streams/s", "more", lambda rnd, side: rnd[side]["streams_per_sec"]),
            ]
    return rows


def median(values):
    values = [v for v in values if finite(v)]
    return statistics.median(values) if values else NAN


def judge(kind, base, cur):
    """Change in per cent and whether it is within WITHIN%: a throughput no more than WITHIN% lower,
    an added latency no more than WITHIN% higher; a change for the better is always within."""
    if not (finite(base) and finite(cur)):
        return NAN, "n/a"
    if kind == "less" and cur <= base:
        return ((cur - base) / base * 100 if base > 0 else NAN), "yes"
    if base <= 0:
        return NAN, "n/a (baseline ≤ 0)"
    change = (cur - base) / base * 100
    within = change >= -WITHIN if kind == "more" else change <= WITHIN
    return change, "yes" if within else "no"


def comparison_markdown(cmp):
    lines = [
        f"## Before and after (baseline {cmp['rev']} vs current {cmp['current']})",
        "",
        f"Same run, same machine, same mock upstream: the baseline binary `{rel(cmp['binary'])}` and the",
        f"current one `{rel(cmp['current_binary'])}`, each a fresh gateway (with Redis, each on its own empty",
        f"database) after the scenarios above. Per scenario {cmp['rounds']} round(s); in each round the two run back to",
        "back, the order flipping every round (baseline first in the first round), and the fixed-rate and",
        "one-at-a-time streaming rounds first measure the mock direct, so *added* is gateway minus direct of",
        f"the same round. Figures are medians over the rounds (every round is in {rel(RAW)}). Change is",
        f"(current − baseline) / baseline; within {WITHIN:g}%: throughput at most {WITHIN:g}% lower, added latency at most {WITHIN:g}%",
        "higher (a change for the better is always within). Latencies in milliseconds.",
        "",
    ]
    if SMOKE:
        lines += [f"Smoke run ({SECONDS} s steps): the comparison is for information only and never fails the run.", ""]
    if cmp.get("error"):
        lines += [f"**The comparison was aborted:** {cmp['error']} (logs in {rel(LOGS)}).", ""]
    lines += ["| scenario | metric | baseline | current | change | within 3% |", "| --- | --- | ---: | ---: | ---: | --- |"]
    counted = within = 0
    for key, scenario, metric, kind, value in comparison_rows():
        rounds = cmp["runs"].get(key)
        if not rounds:
            continue
        base = median([value(rnd, "baseline") for rnd in rounds if "baseline" in rnd])
        cur = median([value(rnd, "current") for rnd in rounds if "current" in rnd])
        change, ok = judge(kind, base, cur)
        digits = 0 if kind == "more" else 3
        counted += 1
        within += ok == "yes"
        lines.append(f"| {scenario} | {metric} | {fmt(base, digits)} | {fmt(cur, digits)} | {'n/a' if not finite(change) else f'{change:+.1f}%'} | {ok} |")
    lines += ["", f"Within {WITHIN:g}%: {within} of {counted} rows.", ""]
    return lines


def main():
    started = time.time()
    OUT.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    results = {}
    error = None
    try:
        run(procs, results)
    except Exception as e:
        if not SMOKE:
            raise
        traceback.print_exc()
        error = f"{type(e).__name__}: {e}"
        CHECK(False, f"benchmark aborted: {error}")
    finally:
        procs.stop()

    RAW.write_text(json.dumps(results, indent=2))
    write_markdown(results, machine())
    print(REPORT.read_text())
    failed = CHECK.failed()
    elapsed = time.time() - started
    if SMOKE:
        if failed:
            print(f"SMOKE FAILED: {len(failed)} of {len(CHECK.items)} checks failed ({elapsed:.0f} s; logs in {LOGS}):", flush=True)
            for what in failed:
                print(f"  - {what}")
            return 1
        print(f"SMOKE PASSED: {len(CHECK.items)} checks in {elapsed:.0f} s; report in {REPORT.relative_to(ROOT)}", flush=True)
    elif failed:
        print(f"warning: {len(failed)} machinery checks failed; the figures above are suspect:", flush=True)
        for what in failed:
            print(f"  - {what}")
    if results.get("baseline", {}).get("error"):
        print(f"the before/after comparison was aborted: {results['baseline']['error']}", flush=True)
        return 1
    return 0


def fmt(x, digits=2):
    return "n/a" if not finite(x) else f"{x:,.{digits}f}"


def write_markdown(r, machine_line):
    baseline_run = f"BENCH_BASELINE={os.environ.get('BENCH_BASELINE') or BASELINE_REV} " if BASELINE_BIN else ""
    if SMOKE:
        lines = [
            "# Benchmark smoke run",
            "",
            f"Machine: {machine_line}. Run: `BENCH_SMOKE=1 {baseline_run}bench/run.sh` ({SECONDS} s per load step, {HOLD_STREAMS} held streams).",
            "A check that the benchmark machinery works, not a measurement: the runs are too short for the",
            "figures to mean much, and the targets below are shown for information only. The recorded run is",
            "bench/RESULTS.md.",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
        ]
    else:
        lines = [
            "# Benchmark results",
            "",
            f"Machine: {machine_line}. Run: `{baseline_run}bench/run.sh` ({SECONDS} s per load step; mock upstream, gateway and load",
            "generator share the machine, so absolute figures are lower than on separate hosts; ratios are what count).",
            f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
            "",
        ]
    lines += ["Latencies in milliseconds. *Added* is gateway minus direct at the same percentile.", ""]
    empty = {"rps": NAN, "p50": NAN, "p90": NAN, "p99": NAN, "p99.9": NAN, "errors": "n/a", "total": "n/a"}
    for store in ("memory", "redis"):
        if f"{store}.max.direct" not in r:
            continue
        get = lambda key: r.get(key, empty)
        d, g = get(f"{store}.max.direct"), get(f"{store}.max.gateway")
        lines += [f"## Store: {store}", "", "| load | path | req/s | p50 | p90 | p99 | p99.9 | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for step, label in (("max", "max throughput, 32 connections"), ("rate500", "500 req/s"), ("rate2000", "2,000 req/s")):
            for path in ("direct", "gateway"):
                x = get(f"{store}.{step}.{path}")
                lines.append(f"| {label} | {path} | {fmt(x['rps'], 0)} | {fmt(x['p50'], 3)} | {fmt(x['p90'], 3)} | {fmt(x['p99'], 3)} | {fmt(x['p99.9'], 3)} | {x['errors']} of {x['total']} |")
        lines += [""]
        rd, rg = get(f"{store}.rate500.direct"), get(f"{store}.rate500.gateway")
        added50, added99 = rg["p50"] - rd["p50"], rg["p99"] - rd["p99"]
        ratio = g["rps"] / d["rps"] if finite(d["rps"]) and d["rps"] else NAN
        lines += [
            "| target | measured | met |",
            "| --- | ---: | --- |",
            f"| added latency p50 at 500 req/s ≤ 0.15 ms | {fmt(added50, 3)} ms | {'yes' if added50 <= 0.15 else 'no'} |",
            f"| added latency p99 at 500 req/s ≤ 1 ms | {fmt(added99, 3)} ms | {'yes' if added99 <= 1.0 else 'no'} |",
            f"| throughput through the gateway ≥ 50% of direct | {fmt(ratio * 100, 1)}% | {'yes' if ratio >= 0.5 else 'no'} |",
            "",
        ]
    if "stream.direct" in r and "stream.gateway" in r:
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
                x = r.get(f"stream.{path}{suffix}")
                if x is None:
                    continue
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
        f"| idle after start | {fmt(r.get('rss.idle', NAN), 1)} | ≤ 20 MiB: {'met' if r.get('rss.idle', 99) <= 20 else 'not met'} |",
        f"| peak under the max-throughput and fixed-rate loads | {fmt(r.get('rss.load', NAN), 1)} | |",
        f"| holding {h.get('open', 0)} open slow streams ({h.get('failed', 0)} failed to open) | {fmt(h.get('rss', NAN), 1)} | ≤ 150 MiB{' (for 5,000)' if SMOKE else ''}: {'met' if h.get('rss', 999) <= 150 and h.get('open', 0) >= HOLD_STREAMS else 'not met'} |",
        "",
    ]
    after = r.get("rss.after", [])
    if after:
        lines += [
            "RSS after each scenario, with nobody reading `/metrics` (per-request state kept until a",
            "scrape would show as growth from row to row):",
            "",
            "| after | RSS MiB |",
            "| --- | ---: |",
        ] + [f"| {label} | {fmt(rss, 1)} |" for label, rss in after] + [""]
    if "baseline" in r:
        lines += comparison_markdown(r["baseline"])
    if SMOKE:
        failed = CHECK.failed()
        lines += [
            "## Machinery checks",
            "",
            f"{len(CHECK.items) - len(failed)} of {len(CHECK.items)} passed.",
            "",
        ] + [f"- {'ok' if ok else '**FAILED**'}: {what}" for ok, what in CHECK.items] + [""]
    else:
        notes = ROOT / "bench" / "NOTES.md"
        if notes.exists():
            lines += ["", notes.read_text()]
    text = "\n".join(lines)
    # The soak run (bench/soak.sh) keeps its own section of the same file: carry it over.
    old = REPORT.read_text() if REPORT.exists() else ""
    begin, end = "<!-- soak:begin -->", "<!-- soak:end -->"
    if begin in old and end in old:
        text = text.rstrip("\n") + "\n\n" + old[old.index(begin):old.index(end) + len(end)] + "\n"
    REPORT.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
