#!/usr/bin/env python3
"""CPU per proxied request, counted in instructions: each gateway binary runs under
`valgrind --tool=callgrind` in front of the same mock upstream (run natively); after a warm-up,
instrumentation is switched on for N sequential requests over one keep-alive connection and off
again, and callgrind's total divided by N is the cost of one request (start-up, health polls and
shut-down not counted). Unlike wall-clock throughput on a shared 2-core machine, the count barely
moves between runs of the same binary, so a change of a few percent can be told apart (bench/run.sh
is for speed; this is for "did the code get more expensive").

    bench/instructions.py --bin before=path/to/apiproxy --bin after=target/release/apiproxy \\
        --mock target/release/mock-upstream [--n 500 --warmup 50] [--out bench/out/INSTRUCTIONS.md]
        [--key after]

INSTRUCTIONS_KEEP=<dir> keeps the callgrind files, for `callgrind_annotate --inclusive=yes`.

`--key LABEL` adds a row for that binary where the requests carry a virtual key (sk-apx-..., created with
POST /keys) that has an rpm, a tpm, a max_parallel and a budget: the whole key path (lookup,
limits, reservation, settlement, usage) on the in-memory store, against the gateway token's row.

Each binary is measured twice per mode (non-streaming and streaming chat), so the table shows how
much a count moves between runs of the same binary.
"""

import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

TOKEN = "dGltZWxpbmU="
# INSTRUCTIONS_KEEP=dir keeps each run's callgrind file there (for callgrind_annotate) instead of
# deleting it.
KEEP = os.environ.get("INSTRUCTIONS_KEEP", "")
BODY = {"model": "bench", "messages": [{"role": "user", "content": "Say hello in five words."}]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_up(port, proc, seconds=120, path="/health"):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port} within {seconds} s")


def make_key(port):
    """A virtual key with every limit (high enough never to refuse), created with the gateway token
    (admin when no admin token is set)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    spec = {"name": "bench", "team": "bench", "rpm": 10_000_000, "tpm": 10_000_000_000,
            "max_parallel": 1000, "budget_usd": 1_000_000, "budget_period": "monthly"}
    conn.request("POST", "/keys", json.dumps(spec),
                 {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 201:
        raise RuntimeError(f"POST /keys failed: {response.status} {data[:300]!r}")
    return json.loads(data)["key"]


def drive(port, n, stream, credential=TOKEN):
    """n sequential chat requests over one keep-alive connection; each must succeed."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    body = dict(BODY, stream=stream, max_tokens=64)
    if stream:
        body["stream_options"] = {"include_usage": True}
    payload = json.dumps(body)
    headers = {"Authorization": f"Bearer {credential}", "Content-Type": "application/json"}
    for _ in range(n):
        conn.request("POST", "/v1/chat/completions", payload, headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200 or (stream and b"[DONE]" not in data):
            raise RuntimeError(f"request failed: {response.status} {data[:300]!r}")
    conn.close()


def instructions(binary, mock_port, n, stream, warmup, with_key=False):
    """Instructions the gateway ran for n requests after `warmup` requests: instrumentation is
    switched on only around the n requests (callgrind_control -i), so start-up, health polls and
    shut-down are not counted."""
    models = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([{"logical_id": "bench", "upstreams": [{"provider_id": "fast", "model_id": "fast-model"}]}], models)
    models.close()
    out = tempfile.NamedTemporaryFile(suffix=".callgrind", delete=False)
    out.close()
    port = free_port()
    env = {
        "PATH": os.environ["PATH"], "LOG_LEVEL": "WARNING",
        "LLM_PROVIDERS": "fast", "LLM_PROVIDER_fast_NAME": "Fast mock",
        "LLM_PROVIDER_fast_BASE_URL": f"http://127.0.0.1:{mock_port}", "LLM_PROVIDER_fast_API_KEY": "k",
        "LOGICAL_MODELS_FILE": models.name,
        "LLM_PROVIDER_fast_COST_INPUT": "1", "LLM_PROVIDER_fast_COST_OUTPUT": "2",
    }
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", "--instr-atstart=no",
         binary, "serve", "--port", str(port), "--env-file", "/dev/null"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    control = lambda flag: subprocess.run(["callgrind_control", "-i", flag, str(proc.pid)],
                                          check=True, capture_output=True)
    try:
        wait_up(port, proc)
        credential = make_key(port) if with_key else TOKEN
        drive(port, warmup, stream, credential)
        control("on")
        drive(port, n, stream, credential)
        control("off")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    total = 0
    with open(out.name) as f:
        for line in f:
            m = re.match(r"(?:summary|totals):\s+(\d+)", line)
            if m:
                total = max(total, int(m.group(1)))
    if KEEP:
        os.makedirs(KEEP, exist_ok=True)
        kept = os.path.join(KEEP, f"{'stream' if stream else 'plain'}{'-key' if with_key else ''}-{int(time.time() * 1000)}.callgrind")
        os.replace(out.name, kept)
        print(f"kept {kept} ({binary})", flush=True)
    else:
        os.unlink(out.name)
    os.unlink(models.name)
    if total == 0:
        raise RuntimeError(f"no callgrind totals for {binary}")
    return total / n


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", action="append", required=True, help="label=path of an apiproxy binary")
    parser.add_argument("--mock", required=True, help="the mock-upstream binary (run natively)")
    parser.add_argument("--n", type=int, default=500, help="requests counted")
    parser.add_argument("--warmup", type=int, default=50, help="requests before counting starts")
    parser.add_argument("--out", default="bench/out/INSTRUCTIONS.md")
    parser.add_argument("--key", action="append", default=[], metavar="LABEL",
                        help="also measure the binary LABEL with a virtual key (repeatable)")
    args = parser.parse_args()
    bins = [b.split("=", 1) for b in args.bin]
    mock_port = free_port()
    mock = subprocess.Popen([args.mock, "--port", str(mock_port), "--name", "fast-mock", "--models", "fast-model"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows = []
    try:
        wait_up(mock_port, mock, 30, "/v1/models")
        for mode, stream in [("non-streaming", False), ("streaming", True)]:
            runs = [(label, binary, False) for label, binary in bins]
            runs += [(f"{label} (key)", binary, True) for label, binary in bins if label in args.key]
            for label, binary, with_key in runs:
                per_request = []
                for _ in range(2):
                    per_request.append(instructions(binary, mock_port, args.n, stream, args.warmup, with_key))
                rows.append((mode, label, per_request))
                print(f"{mode:14} {label:10} " + "  ".join(f"{x:,.0f}" for x in per_request), flush=True)
    finally:
        mock.terminate()
        mock.wait()
    lines = ["# Instructions per proxied request (callgrind)", "",
             f"Sequential chat requests over one keep-alive connection: {args.warmup} uncounted, then {args.n} "
             "counted (callgrind instrumentation on only around them); total / N, measured twice per binary "
             "(a fresh gateway each time). Generated by bench/instructions.py on "
             + time.strftime("%Y-%m-%d") + ".", "",
             "| mode | binary | instructions per request (run 1) | (run 2) | mean | change vs first binary |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    base = {}
    for mode, label, values in rows:
        mean = sum(values) / len(values)
        base.setdefault(mode, mean)
        change = (mean / base[mode] - 1) * 100
        lines.append(f"| {mode} | {label} | {values[0]:,.0f} | {values[1]:,.0f} | {mean:,.0f} | {change:+.1f}% |")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
