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

The bare nginx reverse proxy (BENCH_NGINX, set by bench/run.sh; else `nginx` on PATH or
/usr/sbin/nginx) runs in front of the same mock upstreams as a reference: every scenario that
measures the gateway measures it too, and the report gives the gateway's figures as ratios to it
(issue 21's targets). Its configuration is written to bench/out/nginx/ (see nginx_config).

BENCH_MEMORY_ONLY=1 (e.g. `BENCH_MEMORY_ONLY=1 python3 bench/bench.py` after a release build): only
the held-streams scenario, through the gateway and through nginx, on a fresh gateway (about a minute
for 5,000 streams). Prints the figures and writes them to bench/out/memory.json; never touches
bench/RESULTS.md or bench/out/SMOKE.md. For measuring memory changes one at a time.
"""

import statistics

import json
import math
import os
import platform
import resource
import shutil
import signal
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
MEMORY_ONLY = os.environ.get("BENCH_MEMORY_ONLY", "") not in ("", "0")
SECONDS = int(os.environ.get("BENCH_SECONDS", "1" if SMOKE else "10"))
TOKEN = "dGltZWxpbmU="
# The paired in-memory/Redis throughput rounds (paired_store_rounds).
PAIRED_ROUNDS = 2 if SMOKE else 3
PAIRED_SECONDS = 1 if SMOKE else 5
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
NGINX = os.environ.get("BENCH_NGINX") or shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else "")
# Process ids of the mocks by port, for their CPU time in the "direct" rows.
MOCK_PIDS = {}


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


def family(pid):
    """The process and its children: nginx's master and its workers (one process for the others)."""
    pids = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            pids += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
    except (OSError, ValueError):
        pass
    return pids


def cpu_seconds(pids):
    """CPU seconds (user + system) these processes used so far: the sum of their threads' run times
    from /proc/<pid>/task/<tid>/schedstat, in nanoseconds (/proc/<pid>/stat counts 10 ms clock ticks,
    too coarse for the short streaming steps). A thread that ends within a step takes its time with
    it; the servers measured keep their threads (tokio workers, nginx's single-threaded workers).
    NaN when a process is gone or the kernel has no schedstat."""
    total = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return NAN
        for tid in tids:
            try:
                total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
            except FileNotFoundError:
                continue  # the thread ended between the listing and the read
            except (OSError, IndexError, ValueError):
                return NAN
    return total / 1e9


def rss_sum_mib(pids):
    """Resident memory of a process, or of nginx's master and workers together: their proportional
    set sizes summed (each shared page counted once over all of them), not their RSS summed."""
    if len(pids) == 1:
        return rss_mib(pids[0])
    total = 0.0
    for pid in pids:
        try:
            pss = next(l for l in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines() if l.startswith("Pss:"))
            total += int(pss.split()[1]) / 1024
        except (OSError, StopIteration, ValueError):
            return NAN
    return total


def nginx_config(workdir, port, upstream_port, slow_port, upstream_slow_port):
    """A bare reverse proxy, tuned the way one would put nginx in front of an LLM upstream: a pool of
    keep-alive upstream connections (HTTP/1.1, Connection header cleared), no response buffering (so
    streamed answers go out chunk by chunk, as through the gateway), no access log, one worker per
    core, limits high enough for the held streams. Every path is under workdir, so no root is needed."""
    # The descriptors this run may open (bench/run.sh raises the limit): as root, nginx's workers run
    # as nobody and cannot raise it further themselves.
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    nofile = 65536 if nofile == resource.RLIM_INFINITY else nofile
    temp = "\n".join(f"    {kind}_temp_path {workdir}/{kind}_temp;" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    server = lambda listen, upstream: f"""
    server {{
        listen 127.0.0.1:{listen};
        keepalive_requests 10000000;
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}"""
    return f"""# Written by bench/bench.py for one run: the bare nginx reverse proxy of the benchmark.
worker_processes auto;
worker_rlimit_nofile {nofile};
daemon off;
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{
    worker_connections {min(nofile, 30000)};
}}
http {{
    access_log off;
{temp}
    upstream fast {{
        server 127.0.0.1:{upstream_port};
        keepalive 128;
        keepalive_requests 10000000;
    }}
    upstream slow {{
        server 127.0.0.1:{upstream_slow_port};
        keepalive 128;
        keepalive_requests 10000000;
    }}{server(port, "fast")}{server(slow_port, "slow")}
}}
"""


class Nginx:
    """The bare nginx reverse proxy in front of the fast mock (port) and the slow one (slow_port)."""

    def __init__(self, procs, fast, slow):
        workdir = OUT / "nginx"
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.slow_port = free_port(), free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(nginx_config(workdir, self.port, fast, self.slow_port, slow))
        (workdir / "error.log").write_text("")
        # -e: the error log before the configuration is read (nginx otherwise tries /var/log/nginx).
        self.proc = procs.start("nginx", [NGINX, "-p", str(workdir), "-c", str(conf), "-e", str(workdir / "error.log")])
        wait_http(f"http://127.0.0.1:{self.port}/_mock/stats", self.proc, "nginx")
        wait_http(f"http://127.0.0.1:{self.slow_port}/_mock/stats", self.proc, "nginx")
        self.url = f"http://127.0.0.1:{self.port}/v1/chat/completions"
        self.slow_url = f"http://127.0.0.1:{self.slow_port}/v1/chat/completions"
        CHECK(self.proc.poll() is None and len(self.pids()) > 1,
              f"nginx {nginx_version()} came up on ports {self.port} and {self.slow_port} with {len(self.pids()) - 1} workers (config {rel(conf)})")

    def pids(self):
        return family(self.proc.pid)


def nginx_version():
    result = subprocess.run([NGINX, "-v"], capture_output=True, text=True)
    return (result.stderr or result.stdout).strip().split("/")[-1] or "?"


def start_nginx(procs, fast, slow):
    """The reference proxy, or None (and a failed check: the smoke run needs it) when nginx is missing."""
    if not NGINX:
        CHECK(False, "nginx not found (bench/run.sh installs Debian's nginx-light): the nginx rows are missing")
        return None
    return Nginx(procs, fast, slow)


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
    MOCK_PIDS[port] = p.pid
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
        # The held-streams scenario keeps HOLD_STREAMS requests in progress; the default limit (1,024
        # per core) would refuse the rest with 503 on a 2-core machine.
        "MAX_IN_FLIGHT": str(HOLD_STREAMS + 1024),
    }
    if redis_url:
        env["REDIS_URL"] = redis_url
    p = procs.start(name, [str(binary or CURRENT_BIN), "serve", "--port", str(port), "--env-file", "/dev/null"], env=env)
    wait_http(f"http://127.0.0.1:{port}/health", p, name)
    health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).read())
    CHECK(p.poll() is None and health.get("status") == "ok",
          f"{name} came up on port {port} and reports {health}")
    return port, p


def oha(url, model, concurrency, rate=None, auth=True, seconds=None, pids=None):
    """One oha load step. With `pids` (a function giving the process ids of the server measured), also
    its CPU time per successful request ("cpu_ms")."""
    args = ["oha", "--no-tui", "--output-format", "json", "-z", f"{seconds or SECONDS}s", "-c", str(concurrency), "-m", "POST",
            "-T", "application/json", "-d", BODY % model]
    if auth:
        args += ["-H", f"Authorization: Bearer {TOKEN}"]
    if rate:
        args += ["-q", str(rate)]
    before = cpu_seconds(pids()) if pids else NAN
    result = subprocess.run(args + [url], capture_output=True, text=True)
    used = cpu_seconds(pids()) - before if pids else NAN
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
        "cpu_ms": used * 1000 / ok if ok else NAN,
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


def probe(mode, url, model, n, c, pids=None):
    """stream_probe; with `pids` (as for oha), also the server's CPU time per stream ("cpu_ms")."""
    args = [str(TOOLS / "examples" / "stream_probe"), mode, url, TOKEN, model, str(n), str(c)]
    before = cpu_seconds(pids()) if pids else NAN
    result = subprocess.run(args, capture_output=True, text=True)
    used = cpu_seconds(pids()) - before if pids else NAN
    if result.returncode != 0:
        raise RuntimeError(f"stream_probe {mode} exited with status {result.returncode}: {result.stderr.strip()[-2000:]}")
    x = json.loads(result.stdout)
    x["cpu_ms"] = used * 1000 / x["streams"] if x.get("streams") else NAN
    return x


def check_probe(name, x, n):
    CHECK(x.get("streams", 0) > 0 and finite(x.get("ttfb_p50_ms")),
          f"{name}: {x.get('streams', 0)} streams read to [DONE], TTFB p50 {fmt(x.get('ttfb_p50_ms', NAN), 3)} ms")
    CHECK(x.get("errors", 1) == 0 and x.get("streams", 0) == n, f"{name}: all {n} streams complete, {x.get('errors')} errors")


def check_alive(name, proc):
    CHECK(proc.poll() is None, f"{name} still running" + ("" if proc.poll() is None else f" (exited with status {proc.returncode}; log: {log_path(name)})"))


# Fixed rates: 20 and 100 req/s are "at rest" (issue 21's added-latency targets, with 500); 2,000 is busy.
RATES = (20, 100, 500, 2000)
STEP_LABELS = {"max": "max throughput, 32 connections", **{f"rate{r}": f"{r:,} req/s" for r in RATES}}


def rate_connections(rate):
    """Connections for a fixed-rate step: oha opens each on its first request, so at 20 req/s 64 of
    them would put a TCP handshake into a third of the samples; 8 keep that under 5% at rest."""
    return 8 if rate <= 100 else 64


def paths(direct_port, gw_port, gw_pid, ng):
    """What each scenario measures side by side: (name, url, model, auth, pids). The direct rows' CPU
    is the mock's, the others' the proxy's own (the mock behind them not counted)."""
    out = [("direct", f"http://127.0.0.1:{direct_port}/v1/chat/completions", "fast-model", False, lambda: [MOCK_PIDS[direct_port]])]
    if ng:
        # The same request bytes as the gateway's clients send (the token passes through to the mock).
        out.append(("nginx", ng.url, "fast-model", True, ng.pids))
    out.append(("gateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions", "bench", True, lambda: [gw_pid]))
    return out


def run_suite(label, gw_port, gw_pid, direct_port, results, ng):
    measured = paths(direct_port, gw_port, gw_pid, ng)
    print(f"[{label}] max throughput at 32 connections", flush=True)
    for path, url, model, auth, pids in measured:
        results[f"{label}.max.{path}"] = oha(url, model, 32, auth=auth, pids=pids)
    note_rss(results, f"{label}: max throughput", gw_pid)
    for rate in RATES:
        print(f"[{label}] fixed rate {rate}/s", flush=True)
        for path, url, model, auth, pids in measured:
            results[f"{label}.rate{rate}.{path}"] = oha(url, model, rate_connections(rate), rate=rate, auth=auth, pids=pids)
        note_rss(results, f"{label}: {rate} req/s", gw_pid)
    for step in STEP_LABELS:
        for path, *_ in measured:
            check_load(f"{label}.{step}.{path}", results[f"{label}.{step}.{path}"])


def paired_store_rounds(memory_port, redis_port, results):
    """The Redis store's throughput against the in-memory store's, taken in PAIRED_ROUNDS pairs of
    back-to-back max-throughput steps (in-memory, then Redis, each PAIRED_SECONDS long). The two
    suites' own max steps are minutes apart, and this box's throughput moves 10-20% between runs
    minutes apart, more than the 90% target allows; a pair shares the machine's state, and the
    median of the pairs' ratios is what the target row reads."""
    print(f"[redis] paired max-throughput rounds against the in-memory store ({PAIRED_ROUNDS} x {PAIRED_SECONDS} s each)", flush=True)
    rounds = []
    for _ in range(PAIRED_ROUNDS):
        memory = oha(f"http://127.0.0.1:{memory_port}/v1/chat/completions", "bench", 32, seconds=PAIRED_SECONDS)
        redis = oha(f"http://127.0.0.1:{redis_port}/v1/chat/completions", "bench", 32, seconds=PAIRED_SECONDS)
        check_load("redis.paired.memory", memory)
        check_load("redis.paired.redis", redis)
        rounds.append({"memory_rps": memory["rps"], "redis_rps": redis["rps"], "ratio": redis["rps"] / memory["rps"] if memory["rps"] > 0 else NAN})
    results["redis.paired"] = rounds


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    oha_v = subprocess.run(["oha", "--version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    nginx_v = f"; nginx {nginx_version()}" if NGINX else ""
    # With BENCH_CURRENT_BIN the gateway measured is that binary, not necessarily this commit's.
    binary = f"; gateway binary {rel(CURRENT_BIN)}" if os.environ.get("BENCH_CURRENT_BIN") else ""
    return f"{os.cpu_count()} vCPU ({cpu}), {int(mem) // 1024} MiB RAM, {platform.system()} {platform.release()}; {rustc}; {oha_v}{nginx_v}; commit {commit}{binary}"


def hold_streams(name, url, model, pids, slow, results, key):
    """Holds HOLD_STREAMS slow streams open through one proxy and reads its resident size (summed
    over its processes) before and while they are open; results[key] gets the figures."""
    print(f"[memory] holding {HOLD_STREAMS} slow streams through {name}", flush=True)
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{slow}/_mock/fault", data=json.dumps({"event_delay_ms": HOLD_EVENT_DELAY_MS}).encode(), method="PUT", headers={"Content-Type": "application/json"})).read()
    base = mock_stats(slow)
    rss_before = rss_sum_mib(pids())
    holder = subprocess.Popen([str(TOOLS / "examples" / "stream_probe"), "hold", url, TOKEN, model, str(HOLD_STREAMS), str(HOLD_SECONDS)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = holder.stdout.readline()
    time.sleep(0.5 if SMOKE else 2)
    held = json.loads(line) if line.strip() else {"open": 0, "failed": HOLD_STREAMS}
    held["rss"] = rss_sum_mib(pids())
    held["rss_before"] = rss_before
    # What each open stream adds to the resident size (the "memory per held stream").
    held["kib_per_stream"] = (held["rss"] - rss_before) * 1024 / held["open"] if held["open"] else NAN
    results[key] = held
    CHECK(held["open"] == HOLD_STREAMS and held["failed"] == 0,
          f"held streams through {name}: {held['open']} of {HOLD_STREAMS} open, {held['failed']} failed to open, "
          f"RSS {fmt(rss_before, 1)} -> {fmt(held['rss'], 1)} MiB ({fmt(held['kib_per_stream'], 1)} KiB per stream)")
    delta = lambda stats, k: stats.get(k, 0) - base.get(k, 0)
    settled = lambda stats: delta(stats, "streams_completed") + delta(stats, "streams_cancelled") >= delta(stats, "chat_requests")
    if not SMOKE:
        holder.kill()
        holder.wait()
        # Let the upstream side of the cut streams wind down before the next scenario.
        deadline = time.time() + 15
        while time.time() < deadline and not settled(mock_stats(slow)):
            time.sleep(0.2)
        return
    # Smoke: every held stream must reach the mock and be proxied to its end, and the holder must
    # finish on its own.
    stats = {}
    deadline = time.time() + HOLD_SECONDS + 10
    while time.time() < deadline:
        stats = mock_stats(slow)
        if delta(stats, "streams_completed") + delta(stats, "streams_cancelled") >= HOLD_STREAMS:
            break
        time.sleep(0.2)
    held["upstream"] = {k: delta(stats, k) for k in ("chat_requests", "streams_completed", "streams_cancelled")}
    up = held["upstream"]
    CHECK(up["chat_requests"] == HOLD_STREAMS and up["streams_completed"] == HOLD_STREAMS,
          f"held streams through {name}: the slow mock got {up['chat_requests']} of {HOLD_STREAMS} and sent {up['streams_completed']} to their end ({up['streams_cancelled']} cut off)")
    try:
        rc = holder.wait(HOLD_SECONDS + 10)
    except subprocess.TimeoutExpired:
        holder.kill()
        holder.wait()
        rc = "timeout"
    CHECK(rc == 0, f"held streams through {name}: the holding client finished (status {rc})")


def stop_on_signal(signum, frame):
    """SIGTERM/SIGHUP end the run through main's `finally`, which stops every process started
    (mocks, gateways, nginx, Redis) instead of leaving them behind."""
    raise SystemExit(128 + signum)


def run(procs, results):
    fast = mock(procs, "fast")
    slow = mock(procs, "slow", words=HOLD_WORDS)
    ng = start_nginx(procs, fast, slow)
    gw_port, gw = gateway(procs, fast, slow)
    time.sleep(0.5)
    results["rss.idle"] = rss_mib(gw.pid)
    if ng:
        results["rss.nginx.idle"] = rss_sum_mib(ng.pids())
    if MEMORY_ONLY:
        hold_streams("the gateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions", "slow", lambda: [gw.pid], slow, results, "hold")
        check_alive("gateway", gw)
        if ng:
            hold_streams("nginx", ng.slow_url, "slow-model", ng.pids, slow, results, "hold.nginx")
            check_alive("nginx", ng.proc)
        return

    peak = {"rss": 0.0}
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak["rss"] = max(peak["rss"], rss_mib(gw.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        run_suite("memory", gw_port, gw.pid, fast, results, ng)
    finally:
        sampling.set()
        sampler.join()
    results["rss.load"] = peak["rss"]
    CHECK(finite(results["rss.idle"]) and results["rss.load"] > 0,
          f"gateway RSS measured: idle {fmt(results['rss.idle'], 1)} MiB, peak under load {fmt(results['rss.load'], 1)} MiB")
    check_alive("gateway", gw)
    if ng:
        check_alive("nginx", ng.proc)

    print("[memory] streaming: time to first byte (one stream at a time) and throughput (16 at a time)", flush=True)
    n = max(100 if SMOKE else 500, SECONDS * 100)
    for path, url, model, _auth, pids in paths(fast, gw_port, gw.pid, ng):
        results[f"stream.{path}"] = probe("ttfb", url, model, n, 1, pids=pids)
        check_probe(f"stream.{path} (1 at a time)", results[f"stream.{path}"], n)
        results[f"stream.{path}.busy"] = probe("ttfb", url, model, n * 4, 16, pids=pids)
        check_probe(f"stream.{path} (16 at a time)", results[f"stream.{path}.busy"], n * 4)
        if path == "gateway":
            note_rss(results, "memory: streaming", gw.pid)

    hold_streams("the gateway", f"http://127.0.0.1:{gw_port}/v1/chat/completions", "slow", lambda: [gw.pid], slow, results, "hold")
    check_alive("gateway", gw)
    time.sleep(2)
    note_rss(results, "memory: after the held streams ended", gw.pid)
    if ng:
        hold_streams("nginx", ng.slow_url, "slow-model", ng.pids, slow, results, "hold.nginx")
        check_alive("nginx", ng.proc)

    redis_port, gateways = None, [gw]
    if shutil.which("redis-server"):
        redis_port = free_port()
        rp = procs.start("redis", ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        wait_redis(redis_port, rp)
        rgw_port, rgw = gateway(procs, fast, slow, redis_url=f"redis://127.0.0.1:{redis_port}/0", name="gateway-redis")
        run_suite("redis", rgw_port, rgw.pid, fast, results, ng)
        paired_store_rounds(gw_port, rgw_port, results)
        check_alive("gateway-redis", rgw)
        gateways.append(rgw)
    else:
        print("[redis] redis-server not found: Redis rows skipped", flush=True)

    if BASELINE_BIN:
        # The usual scenarios are done: their gateways stop, the comparison starts fresh ones.
        for p in gateways:
            stop_proc(p)
        compare(procs, results, fast, slow, redis_port, ng)


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
STEPS = (("max", "max throughput, 32 connections", None, 32),) + tuple((f"rate{r}", f"{r:,} req/s", r, rate_connections(r)) for r in RATES)


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


def compare(procs, results, fast, slow, redis_port, ng):
    cmp = results["baseline"] = {"rev": BASELINE_REV, "binary": BASELINE_BIN, "current": current_label(),
                                 "current_binary": str(CURRENT_BIN), "rounds": ROUNDS, "runs": {}}
    try:
        if not Path(BASELINE_BIN).is_file():
            raise RuntimeError(f"baseline binary {BASELINE_BIN} not found")
        compare_store(procs, cmp["runs"], "memory", fast, slow, None, ng)
        if redis_port:
            compare_store(procs, cmp["runs"], "redis", fast, slow, redis_port, ng)
    except Exception as e:
        traceback.print_exc()
        cmp["error"] = f"{type(e).__name__}: {e}"
        CHECK(False, f"before/after comparison aborted: {cmp['error']}")


def compare_store(procs, runs, store, fast, slow, redis_port, ng):
    gws = {}
    for i, side in enumerate(SIDES):
        name = f"gateway{'-redis' if redis_port else ''}-{side}"
        # With Redis, each gateway on its own database, both empty at the start.
        url = f"redis://127.0.0.1:{redis_port}/{i + 1}" if redis_port else None
        port, p = gateway(procs, fast, slow, redis_url=url, name=name, binary=Path(BASELINE_BIN) if side == "baseline" else CURRENT_BIN)
        gws[side] = (f"http://127.0.0.1:{port}/v1/chat/completions", p, name)
    cpu_of = {side: (lambda pid=gws[side][1].pid: [pid]) for side in SIDES}
    direct = f"http://127.0.0.1:{fast}/v1/chat/completions"
    tag = f"before/after {store}"
    print(f"[{tag}] warm-up: 1 s at 32 connections per gateway (not counted)", flush=True)
    for side in SIDES:
        oha(gws[side][0], "bench", 32, seconds=1)
    for step, label, rate, connections in STEPS:
        rounds = runs[f"{store}.{step}"] = []
        for k in range(ROUNDS):
            order = alternate(k)
            print(f"[{tag}] {label}, round {k + 1} of {ROUNDS}: {'direct, ' if rate else ''}{'nginx, ' if ng else ''}{', '.join(order)}", flush=True)
            rnd = {"order": list(order)}
            if rate:  # *added* latency: gateway minus the direct run of the same round
                rnd["direct"] = oha(direct, "fast-model", connections, rate=rate, auth=False)
                check_load(f"{tag}.{step} round {k + 1} direct", rnd["direct"])
            if ng:  # the reference of the same round, for the ratios to nginx
                rnd["nginx"] = oha(ng.url, "fast-model", connections, rate=rate, pids=ng.pids)
                check_load(f"{tag}.{step} round {k + 1} nginx", rnd["nginx"])
            for side in order:
                rnd[side] = oha(gws[side][0], "bench", connections, rate=rate, pids=cpu_of[side])
                check_load(f"{tag}.{step} round {k + 1} {side}", rnd[side])
            rounds.append(rnd)
    if store == "memory":
        n = max(100 if SMOKE else 500, SECONDS * 100)
        for concurrency, key in ((1, "stream.1"), (16, "stream.16")):
            rounds = runs[key] = []
            count = n if concurrency == 1 else n * 4
            for k in range(ROUNDS):
                order = alternate(k)
                print(f"[{tag}] streaming, {concurrency} at a time, round {k + 1} of {ROUNDS}: {'direct, ' if concurrency == 1 else ''}{'nginx, ' if ng else ''}{', '.join(order)}", flush=True)
                rnd = {"order": list(order)}
                if concurrency == 1:  # added first-byte latency, as in the streaming section
                    rnd["direct"] = probe("ttfb", direct, "fast-model", count, 1)
                    check_probe(f"{tag} streaming round {k + 1} direct (1 at a time)", rnd["direct"], count)
                if ng:
                    rnd["nginx"] = probe("ttfb", ng.url, "fast-model", count, concurrency, pids=ng.pids)
                    check_probe(f"{tag} streaming round {k + 1} nginx ({concurrency} at a time)", rnd["nginx"], count)
                for side in order:
                    rnd[side] = probe("ttfb", gws[side][0], "bench", count, concurrency, pids=cpu_of[side])
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
            (f"{store}.max", f"{store}: max throughput, 32 connections", "CPU ms/req", "less", lambda rnd, side: rnd[side].get("cpu_ms", NAN)),
        ]
        for rate in RATES:
            rows += [
                (f"{store}.rate{rate}", f"{store}: {rate:,} req/s", "added p50 ms", "less", added("p50")),
                (f"{store}.rate{rate}", f"{store}: {rate:,} req/s", "added p99 ms", "less", added("p99")),
            ]
        if store == "memory":
            rows += [
                ("stream.1", "memory: streaming, 1 at a time", "added TTFB p50 ms", "less", added("ttfb_p50_ms")),
                ("stream.1", "memory: streaming, 1 at a time", "added TTFB p99 ms", "less", added("ttfb_p99_ms")),
                ("stream.16", "memory: streaming, 16 at a time", "streams/s", "more", lambda rnd, side: rnd[side]["streams_per_sec"]),
                ("stream.16", "memory: streaming, 16 at a time", "CPU ms/stream", "less", lambda rnd, side: rnd[side].get("cpu_ms", NAN)),
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
        "the same round (every round also measures the bare nginx proxy before the two, for the ratios below);",
        f"CPU is the gateway's own per request or stream. Figures are medians over the rounds (every round is in {rel(RAW)}). Change is",
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
        digits = 0 if kind == "more" else 4 if "CPU" in metric else 3
        counted += 1
        within += ok == "yes"
        lines.append(f"| {scenario} | {metric} | {fmt(base, digits)} | {fmt(cur, digits)} | {'n/a' if not finite(change) else f'{change:+.1f}%'} | {ok} |")
    lines += ["", f"Within {WITHIN:g}%: {within} of {counted} rows.", ""]
    lines += comparison_targets(cmp["runs"])
    return lines


def comparison_targets(runs):
    """Issue 21's targets for both binaries, from the same rounds: every ratio to nginx is taken within
    a round (the nginx run of that round) and the median over the rounds is shown."""
    if not any("nginx" in rnd for rounds in runs.values() for rnd in rounds):
        return []
    med = lambda key, f: median([f(rnd) for rnd in runs.get(key, [])])
    ratio = lambda a, b: a / b if finite(a) and finite(b) and b > 0 else NAN
    figures = {}
    for side in SIDES:
        f = figures[side] = {"added_p50": {}, "added_p99": {}, "nginx_added_p50": {}, "nginx_added_p99": {}}
        for rate in AT_REST:
            key = f"memory.rate{rate}"
            f["added_p50"][rate] = med(key, lambda rnd: rnd[side]["p50"] - rnd["direct"]["p50"])
            f["added_p99"][rate] = med(key, lambda rnd: rnd[side]["p99"] - rnd["direct"]["p99"])
            f["nginx_added_p50"][rate] = med(key, lambda rnd: rnd["nginx"]["p50"] - rnd["direct"]["p50"])
            f["nginx_added_p99"][rate] = med(key, lambda rnd: rnd["nginx"]["p99"] - rnd["direct"]["p99"])
        f["cpu"], f["nginx_cpu"] = med("memory.max", lambda rnd: rnd[side]["cpu_ms"]), med("memory.max", lambda rnd: rnd["nginx"]["cpu_ms"])
        f["cpu_ratio"] = med("memory.max", lambda rnd: ratio(rnd[side]["cpu_ms"], rnd["nginx"]["cpu_ms"]))
        f["stream_cpu"], f["nginx_stream_cpu"] = med("stream.16", lambda rnd: rnd[side]["cpu_ms"]), med("stream.16", lambda rnd: rnd["nginx"]["cpu_ms"])
        f["stream_cpu_ratio"] = med("stream.16", lambda rnd: ratio(rnd[side]["cpu_ms"], rnd["nginx"]["cpu_ms"]))
        f["rps"], f["nginx_rps"] = med("memory.max", lambda rnd: rnd[side]["rps"]), med("memory.max", lambda rnd: rnd["nginx"]["rps"])
        f["rps_ratio"] = med("memory.max", lambda rnd: ratio(rnd[side]["rps"], rnd["nginx"]["rps"]))
        if runs.get("redis.max"):
            f["redis_rps_ratio"] = ratio(med("redis.max", lambda rnd: rnd[side]["rps"]), f["rps"])
            f["redis_added_diff"] = (med("redis.rate500", lambda rnd: rnd[side]["p50"] - rnd["direct"]["p50"])
                                     - f["added_p50"][500])
    rows_by_side = {side: target_rows(figures[side]) for side in SIDES}
    lines = [
        "### Issue 21's targets, before and after",
        "",
        "From the rounds above; each ratio to nginx is taken against the nginx run of the same round, then",
        "the median over the rounds. Memory per held stream is measured in the main scenarios only.",
        "",
        "| target | nginx (reference) | baseline | current | met before | met after |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for (target, ref, base, met_base), (_t, _r, cur, met_cur) in zip(rows_by_side["baseline"], rows_by_side["current"]):
        lines.append(f"| {target} | {ref} | {base} | {cur} | {met_base} | {met_cur} |")
    return lines + [""]


# The "at rest" rates of issue 21's added-latency target.
AT_REST = (20, 100, 500)


def target_rows(f):
    """Issue 21's targets from one gateway's figures f (added latencies by rate, CPU per request and
    throughput with nginx's beside them, their ratios, memory per held stream, the Redis ratios):
    (target, nginx's figure, the gateway's figure, met)."""
    met = lambda ok, *values: "n/a" if not all(finite(v) for v in values) else ("yes" if ok else "no")
    signed = lambda x: "n/a" if not finite(x) else f"{x:+.3f} ms"
    rows = []
    for rate in AT_REST:
        a50, a99 = f["added_p50"].get(rate, NAN), f["added_p99"].get(rate, NAN)
        rows.append((f"added p50 at {rate} req/s ≤ 0.20 ms", signed(f["nginx_added_p50"].get(rate, NAN)), signed(a50), met(finite(a50) and a50 <= 0.20, a50)))
        rows.append((f"added p99 at {rate} req/s ≤ 0.5 ms", signed(f["nginx_added_p99"].get(rate, NAN)), signed(a99), met(finite(a99) and a99 <= 0.5, a99)))
    times = lambda x: "n/a" if not finite(x) else f"{x:.2f}×"
    for label, cpu, ref, r in (("CPU per request, non-streaming, ≤ 2× nginx's", "cpu", "nginx_cpu", "cpu_ratio"),
                               ("CPU per request, streaming (16 at a time), ≤ 2× nginx's", "stream_cpu", "nginx_stream_cpu", "stream_cpu_ratio")):
        x = f.get(r, NAN)
        rows.append((label, f"{fmt(f.get(ref, NAN), 4)} ms", f"{fmt(f.get(cpu, NAN), 4)} ms ({times(x)})", met(finite(x) and x <= 2.0, x)))
    x = f.get("rps_ratio", NAN)
    rows.append(("max throughput (32 connections) ≥ 70% of nginx's", f"{fmt(f.get('nginx_rps', NAN), 0)} req/s",
                 f"{fmt(f.get('rps', NAN), 0)} req/s ({fmt(x * 100, 1)}%)", met(finite(x) and x >= 0.7, x)))
    if "kib_per_stream" in f:
        x = f["kib_per_stream"]
        rows.append(("memory per held stream ≤ 20 KiB", f"{fmt(f.get('nginx_kib_per_stream', NAN), 1)} KiB", f"{fmt(x, 1)} KiB", met(finite(x) and x <= 20, x)))
    if "redis_rps_ratio" in f:
        x, d = f["redis_rps_ratio"], f["redis_added_diff"]
        shown = f"{fmt(x * 100, 1)}%"
        if "redis_rps_ratio_single" in f:
            shown += f" (median of {PAIRED_ROUNDS} paired rounds; the suites' own max steps: {fmt(f['redis_rps_ratio_single'] * 100, 1)}%)"
        rows.append(("Redis store: max throughput ≥ 90% of the in-memory store's", "", shown, met(finite(x) and x >= 0.9, x)))
        rows.append(("Redis store: added p50 at 500 req/s within 0.1 ms of the in-memory store's", "", signed(d), met(finite(d) and d <= 0.1, d)))
    return rows


def main():
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop_on_signal)
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

    if MEMORY_ONLY:
        (OUT / "memory.json").write_text(json.dumps(results, indent=2))
        for key, name in (("hold", "gateway"), ("hold.nginx", "nginx")):
            h = results.get(key, {})
            print(f"{name}: {h.get('open', 0)} held streams, RSS {fmt(h.get('rss_before', NAN), 1)} -> {fmt(h.get('rss', NAN), 1)} MiB, "
                  f"{fmt(h.get('kib_per_stream', NAN), 1)} KiB per stream", flush=True)
        failed = CHECK.failed()
        for what in failed:
            print(f"  - check failed: {what}")
        return 1 if failed else 0

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


def run_targets(r):
    """Issue 21's targets for the main scenarios of this run, against the bare nginx proxy measured in
    the same run (the same mock, the same load right before or after)."""
    if "memory.max.nginx" not in r:
        return ["## Against the bare nginx proxy (issue 21)", "", "nginx was not measured in this run (not installed?): no ratios.", ""]
    get = lambda key, field: r.get(key, {}).get(field, NAN)
    ratio = lambda a, b: a / b if finite(a) and finite(b) and b > 0 else NAN
    f = {"added_p50": {}, "added_p99": {}, "nginx_added_p50": {}, "nginx_added_p99": {}}
    for rate in AT_REST:
        for pct in ("p50", "p99"):
            direct = get(f"memory.rate{rate}.direct", pct)
            f[f"added_{pct}"][rate] = get(f"memory.rate{rate}.gateway", pct) - direct
            f[f"nginx_added_{pct}"][rate] = get(f"memory.rate{rate}.nginx", pct) - direct
    f["cpu"], f["nginx_cpu"] = get("memory.max.gateway", "cpu_ms"), get("memory.max.nginx", "cpu_ms")
    f["cpu_ratio"] = ratio(f["cpu"], f["nginx_cpu"])
    f["stream_cpu"], f["nginx_stream_cpu"] = get("stream.gateway.busy", "cpu_ms"), get("stream.nginx.busy", "cpu_ms")
    f["stream_cpu_ratio"] = ratio(f["stream_cpu"], f["nginx_stream_cpu"])
    f["rps"], f["nginx_rps"] = get("memory.max.gateway", "rps"), get("memory.max.nginx", "rps")
    f["rps_ratio"] = ratio(f["rps"], f["nginx_rps"])
    f["kib_per_stream"] = get("hold", "kib_per_stream")
    f["nginx_kib_per_stream"] = get("hold.nginx", "kib_per_stream")
    if "redis.max.gateway" in r:
        f["redis_rps_ratio_single"] = ratio(get("redis.max.gateway", "rps"), f["rps"])
        paired = [x["ratio"] for x in r.get("redis.paired", []) if finite(x["ratio"])]
        f["redis_rps_ratio"] = median(paired) if paired else f["redis_rps_ratio_single"]
        f["redis_added_diff"] = (get("redis.rate500.gateway", "p50") - get("redis.rate500.direct", "p50")) - f["added_p50"][500]
    rows = target_rows(f)
    met = sum(row[3] == "yes" for row in rows)
    lines = [
        "## Against the bare nginx proxy (issue 21)",
        "",
        "The floor one HTTP proxy hop pays: nginx as a bare reverse proxy in front of the same mock",
        "(configuration in bench/out/nginx/nginx.conf: keep-alive upstream pool, HTTP/1.1, no response",
        "buffering, no access log, one worker per core), measured in every scenario right after direct",
        "and before the gateway. Added latency is the proxy's percentile minus direct's in the same step;",
        "CPU per request is under the 32-connection max-throughput load (non-streaming) and the 16-at-a-time",
        "streaming load, the proxy's own CPU only.",
    ]
    if SMOKE:
        lines += ["Smoke run: the figures are for information only and never fail the run."]
    lines += [
        "",
        "| target | nginx (reference) | gateway | met |",
        "| --- | ---: | ---: | --- |",
    ] + [f"| {target} | {ref} | {value} | {ok} |" for target, ref, value, ok in rows]
    return lines + ["", f"Met: {met} of {len(rows)}.", ""]


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
    lines += ["Latencies in milliseconds. *Added* is gateway (or nginx) minus direct at the same percentile.", ""]
    lines += run_targets(r)
    empty = {"rps": NAN, "p50": NAN, "p90": NAN, "p99": NAN, "p99.9": NAN, "cpu_ms": NAN, "errors": "n/a", "total": "n/a"}
    for store in ("memory", "redis"):
        if f"{store}.max.direct" not in r:
            continue
        get = lambda key: r.get(key, empty)
        d, g = get(f"{store}.max.direct"), get(f"{store}.max.gateway")
        lines += [f"## Store: {store}", "",
                  "CPU ms/req: CPU time (user + system, from the threads' schedstat) of the server measured per",
                  "successful request: the mock's for *direct*, nginx's master and workers' or the gateway's own",
                  "for the others (the mock behind them not counted). At the low rates it includes what the",
                  "server does while idle (timers, the metrics upkeep) and the cost of waking up per request.", "",
                  "| load | path | req/s | p50 | p90 | p99 | p99.9 | CPU ms/req | errors |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for step, label in STEP_LABELS.items():
            for path in ("direct", "nginx", "gateway"):
                if path == "nginx" and f"{store}.{step}.nginx" not in r:
                    continue
                x = get(f"{store}.{step}.{path}")
                cpu = fmt(x.get("cpu_ms", NAN), 4)
                lines.append(f"| {label} | {path} | {fmt(x['rps'], 0)} | {fmt(x['p50'], 3)} | {fmt(x['p90'], 3)} | {fmt(x['p99'], 3)} | {fmt(x['p99.9'], 3)} | {cpu} | {x['errors']} of {x['total']} |")
        lines += ["", "Earlier targets (against direct):", ""]
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
        if store == "redis" and r.get("redis.paired"):
            lines += ["Paired max-throughput rounds (32 connections, in-memory then Redis, back to back; the",
                      "Redis target reads the median ratio):", "",
                      "| round | in-memory req/s | Redis req/s | Redis / in-memory |", "| ---: | ---: | ---: | ---: |"]
            lines += [f"| {i + 1} | {fmt(x['memory_rps'], 0)} | {fmt(x['redis_rps'], 0)} | {fmt(x['ratio'] * 100, 1)}% |"
                      for i, x in enumerate(r["redis.paired"])]
            lines.append("")
    if "stream.direct" in r and "stream.gateway" in r:
        sd, sg = r["stream.direct"], r["stream.gateway"]
        added = sg["ttfb_p50_ms"] - sd["ttfb_p50_ms"]
        lines += [
            "## Streaming (in-memory store)",
            "",
            "| path | concurrent streams | streams/s | TTFB p50 | TTFB p90 | TTFB p99 | CPU ms/stream | errors |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for concurrency, suffix in ((1, ""), (16, ".busy")):
            for path in ("direct", "nginx", "gateway"):
                x = r.get(f"stream.{path}{suffix}")
                if x is None:
                    continue
                cpu = fmt(x.get("cpu_ms", NAN), 4)
                lines.append(f"| {path} | {concurrency} | {fmt(x['streams_per_sec'], 0)} | {fmt(x['ttfb_p50_ms'], 3)} | {fmt(x['ttfb_p90_ms'], 3)} | {fmt(x['ttfb_p99_ms'], 3)} | {cpu} | {x['errors']} |")
        sn = r.get("stream.nginx")
        nginx_added = f"; nginx {fmt(sn['ttfb_p50_ms'] - sd['ttfb_p50_ms'], 3)} ms" if sn else ""
        lines += [
            "",
            f"Added first-byte latency p50, one stream at a time: {fmt(added, 3)} ms (target ≤ 0.5 ms: {'met' if added <= 0.5 else 'not met'}){nginx_added}.",
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
        f"| per held stream: (RSS holding − RSS just before, {fmt(h.get('rss_before', NAN), 1)} MiB) / streams | {fmt(h.get('kib_per_stream', NAN), 1)} KiB | ≤ 20 KiB (issue 21) |",
        "",
    ]
    hn = r.get("hold.nginx")
    if hn:
        lines += [
            "The bare nginx proxy (master and workers: their proportional set sizes summed, so shared pages count once):",
            "",
            "| state | RSS MiB |",
            "| --- | ---: |",
            f"| idle after start | {fmt(r.get('rss.nginx.idle', NAN), 1)} |",
            f"| just before holding streams | {fmt(hn.get('rss_before', NAN), 1)} |",
            f"| holding {hn.get('open', 0)} open slow streams ({hn.get('failed', 0)} failed to open) | {fmt(hn.get('rss', NAN), 1)} |",
            f"| per held stream | {fmt(hn.get('kib_per_stream', NAN), 1)} KiB |",
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
