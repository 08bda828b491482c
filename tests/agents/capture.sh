#!/usr/bin/env bash
# Captures golden request fixtures of the coding agents, each pointed DIRECTLY at the scripted mock
# upstream (no gateway), into tests/fixtures/agents/:
#   claude_code_messages_first.json, claude_code_messages_followup.json   (POST /v1/messages)
#   codex_responses_first.json,      codex_responses_followup.json        (POST /v1/responses)
#   gemini_cli_generate_first.json,  gemini_cli_generate_followup.json
#                                   (POST /v1beta/models/agent-gemini:streamGenerateContent?alt=sse)
# "first" is the request that gets the tool call, "followup" the one carrying the tool result.
# Each file: {"source", "method", "path" (with query), "headers" (API key value "REDACTED"), "body"}.
# The agents get the logical model names the suite uses (agent-anthropic, agent-openai,
# agent-gemini), so the requests are what the gateway receives from them. Claude Code shapes its
# request by the model name (an unknown name gets adaptive thinking, output_config.effort and a
# role "system" message inside messages; a known one gets thinking.budget_tokens and none of
# these), so it is captured a second time with a known name:
# claude_code_known_model_messages_{first,followup}.json.
#   tests/agents/capture.sh              # from anywhere; needs only node/npm and python3
#   CAPTURE_AGENTS=gemini tests/agents/capture.sh   # only some of claude, codex, gemini
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
out_dir="$agents_root/tests/fixtures/agents"
capture_agents=" ${CAPTURE_AGENTS:-claude codex gemini} "
wants() { [[ "$capture_agents" == *" $1 "* ]]; }

"$here/setup.sh"

# Fixed paths (they appear in the prompts the agents build), emptied on every run.
work=${TMPDIR:-/tmp}/apiproxy-agents-capture
rm -rf "$work"
mkdir -p "$work" "$out_dir"
mock_pid=
cleanup() { [ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null || true; }
trap cleanup EXIT

python3 "$here/mock_upstream.py" --port 0 --port-file "$work/port" --quiet \
  --capture "$work/capture.jsonl" >"$work/mock.log" 2>&1 &
mock_pid=$!
wait_for_file "$work/port" || { echo "capture: mock upstream did not start" >&2; cat "$work/mock.log" >&2; exit 1; }
port=$(cat "$work/port")

if wants claude; then
  status=0
  : >"$work/capture.jsonl"
  run_claude "http://127.0.0.1:$port" sk-ant-capture-key agent-anthropic "$work/claude/work" \
    "$work/claude/home" "Create the file hello.txt containing AGENT-OK-capture" "$work/claude.out" 120 || status=$?
  mv "$work/capture.jsonl" "$work/claude.jsonl"
  echo "claude-code exit $status: $(tail -n 1 "$work/claude.out")"

  kstatus=0
  : >"$work/capture.jsonl"
  run_claude "http://127.0.0.1:$port" sk-ant-capture-key claude-sonnet-4-5 "$work/claude-known/work" \
    "$work/claude-known/home" "Create the file hello.txt containing AGENT-OK-capture" "$work/claude-known.out" 120 || kstatus=$?
  mv "$work/capture.jsonl" "$work/claude-known.jsonl"
  echo "claude-code (claude-sonnet-4-5) exit $kstatus: $(tail -n 1 "$work/claude-known.out")"
fi

if wants codex; then
  cstatus=0
  : >"$work/capture.jsonl"
  run_codex "http://127.0.0.1:$port/v1" sk-codex-capture-key agent-openai "$work/codex/work" \
    "$work/codex/home" "Create the file hello.txt containing AGENT-OK-capture" "$work/codex.out" 120 || cstatus=$?
  mv "$work/capture.jsonl" "$work/codex.jsonl"
  echo "codex exit $cstatus: $(tail -n 1 "$work/codex.out")"
fi

if wants gemini; then
  gstatus=0
  : >"$work/capture.jsonl"
  run_gemini "http://127.0.0.1:$port" gemini-capture-key agent-gemini "$work/gemini/work" \
    "$work/gemini/home" "Create the file hello.txt containing AGENT-OK-capture" "$work/gemini.out" 120 || gstatus=$?
  mv "$work/capture.jsonl" "$work/gemini.jsonl"
  echo "gemini-cli exit $gstatus: $(tail -n 1 "$work/gemini.out")"
fi

python3 - "$work" "$out_dir" "$(agent_version claude)" "$(agent_version codex)" "$(agent_version gemini)" \
  "$capture_agents" <<'PY'
import datetime, json, re, sys
work, out_dir, claude_v, codex_v, gemini_v, agents = sys.argv[1:7]
agents = agents.split()
date = datetime.date.today().isoformat()
SECRET_HEADERS = {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization"}

def redact(headers):
    out = {}
    for k, v in headers.items():
        if k in SECRET_HEADERS:
            v = "Bearer REDACTED" if v.lower().startswith("bearer ") else "REDACTED"
        out[k] = v
    return out

def pick(capture, agent, version, prefix):
    entries = [json.loads(l) for l in open(capture, encoding="utf-8") if l.strip()]
    first = next((e for e in entries if e["mock_answer"].get("kind") == "tool"), None)
    follow = next((e for e in entries if (e["mock_answer"].get("text") or "").startswith("AGENT-DONE")), None)
    ok = True
    for name, e in (("first", first), ("followup", follow)):
        if e is None:
            print(f"capture: no {name} request from {agent} in {capture}", file=sys.stderr)
            ok = False
            continue
        fixture = {"source": f"{agent} {version}, captured {date} by tests/agents/capture.sh",
                   "method": e["method"], "path": re.sub(r"([?&]key=)[^&]*", r"\1REDACTED", e["path"]),
                   "headers": redact(e["headers"]),
                   "body": e["body"]}
        path = f"{out_dir}/{prefix}_{name}.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(fixture, f, indent=2, ensure_ascii=False)
            f.write("\n")
        print(f"wrote {path} ({e['method']} {e['path']})")
    others = [e for e in entries if e is not first and e is not follow]
    if others:
        print(f"{agent}: {len(others)} other request(s): " +
              ", ".join(f"{e['method']} {e['path']} -> {e['mock_answer']}" for e in others))
    return ok

ok = True
if "claude" in agents:
    ok = pick(f"{work}/claude.jsonl", "claude-code", claude_v, "claude_code_messages") and ok
    ok = pick(f"{work}/claude-known.jsonl", "claude-code", claude_v, "claude_code_known_model_messages") and ok
if "codex" in agents:
    ok = pick(f"{work}/codex.jsonl", "codex-cli", codex_v, "codex_responses") and ok
if "gemini" in agents:
    ok = pick(f"{work}/gemini.jsonl", "gemini-cli", gemini_v, "gemini_cli_generate") and ok
sys.exit(0 if ok else 1)
PY
