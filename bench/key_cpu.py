#!/usr/bin/env python3
"""CPU time the gateway spends per request with the gateway token and with a virtual key that has
every limit (rpm, tpm, max_parallel, budget), on the in-memory store: the cost of the key check,
limits, reservation, settlement and usage (issue 18's budget: at most 0.02 ms per request).

    bench/key_cpu.py --bin target/release/apiproxy --mock target/release/mock-upstream [--n 5000 --rounds 5]
    bench/key_cpu.py ... --oha 10     # load with oha (32 connections, 10 s a round) instead

Sequential requests measure the CPU of a gateway that wakes for every request (latency-bound,
noisy); with `--oha` the gateway is busy, the way bench/run.sh's "CPU per request" rows are.

The gateway runs natively; its CPU time (user + system, and user alone, from /proc/<pid>/stat) is read before and
after N sequential requests over one keep-alive connection, alternating token and key rounds so
that drift on a shared machine hits both. The medians and their difference are printed.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from instructions import TOKEN, drive, free_port, make_key, wait_up  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """(user, system) CPU seconds of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def load(port, credential, seconds):
    """oha at 32 connections for `seconds`; the number of successful requests."""
    oha = shutil.which("oha") or os.path.expanduser("~/.cargo/bin/oha")
    body = json.dumps({"model": "bench", "max_tokens": 64,
                       "messages": [{"role": "user", "content": "Say hello in five words."}]})
    out = subprocess.run([oha, "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-c", "32",
                          "-m", "POST", "-T", "application/json", "-d", body,
                          "-H", f"Authorization: Bearer {credential}",
                          f"http://127.0.0.1:{port}/v1/chat/completions"],
                         capture_output=True, text=True, check=True)
    codes = json.loads(out.stdout).get("statusCodeDistribution") or {}
    bad = {k: v for k, v in codes.items() if k != "200"}
    if bad:
        raise RuntimeError(f"non-200 answers under load: {bad}")
    return codes.get("200", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True)
    parser.add_argument("--mock", required=True)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--oha", type=int, default=0, metavar="SECONDS",
                        help="load each round with oha -c 32 for SECONDS instead of sequential requests")
    args = parser.parse_args()
    mock_port, port = free_port(), free_port()
    models = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump([{"logical_id": "bench", "upstreams": [{"provider_id": "fast", "model_id": "fast-model"}]}], models)
    models.close()
    env = {"PATH": os.environ["PATH"], "LOG_LEVEL": "WARNING", "LLM_PROVIDERS": "fast",
           "LLM_PROVIDER_fast_NAME": "Fast mock", "LLM_PROVIDER_fast_BASE_URL": f"http://127.0.0.1:{mock_port}",
           "LLM_PROVIDER_fast_API_KEY": "k", "LOGICAL_MODELS_FILE": models.name,
           "LLM_PROVIDER_fast_COST_INPUT": "1", "LLM_PROVIDER_fast_COST_OUTPUT": "2"}
    mock = subprocess.Popen([args.mock, "--port", str(mock_port), "--name", "fast-mock", "--models", "fast-model"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway = subprocess.Popen([args.bin, "serve", "--port", str(port), "--env-file", "/dev/null"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_up(mock_port, mock, 30, "/v1/models")
        wait_up(port, gateway)
        key = make_key(port)
        per = {"token": [], "key": []}
        user = {"token": [], "key": []}
        for credential in (TOKEN, key):
            drive(port, 500, False, credential)  # warm-up
        for _ in range(args.rounds):
            for label, credential in (("token", TOKEN), ("key", key)):
                (u0, s0) = cpu_seconds(gateway.pid)
                if args.oha:
                    n = load(port, credential, args.oha)
                else:
                    drive(port, args.n, False, credential)
                    n = args.n
                (u1, s1) = cpu_seconds(gateway.pid)
                per[label].append((u1 - u0 + s1 - s0) / n * 1000)
                user[label].append((u1 - u0) / n * 1000)
        token, keyed = statistics.median(per["token"]), statistics.median(per["key"])
        how = f"oha -c 32 for {args.oha} s" if args.oha else f"{args.n} sequential requests"
        print(f"CPU ms per request, non-streaming, in-memory store, {args.rounds} rounds of {how} "
              "(median; all rounds):")
        print(f"  gateway token: {token:.4f}  {['%.4f' % x for x in per['token']]}")
        print(f"  virtual key:   {keyed:.4f}  {['%.4f' % x for x in per['key']]}")
        print(f"  key path costs {keyed - token:+.4f} ms per request")
        ut, uk = statistics.median(user["token"]), statistics.median(user["key"])
        print(f"  user CPU only: token {ut:.4f}, key {uk:.4f}, key path {uk - ut:+.4f} ms per request")
    finally:
        for p in (gateway, mock):
            p.terminate()
            p.wait()
        os.unlink(models.name)


if __name__ == "__main__":
    sys.exit(main())
