#!/usr/bin/env bash
# Coding-agent suite: the official agents, headless, through the real gateway to a scripted mock
# upstream of each vendor (tests/agents/mock_upstream.py, one port, every dialect).
#
# Cells: {claude, codex, gemini} x {openai, anthropic, gemini, responses} ("responses": an OpenAI-vendor
# provider with RESPONSES=true, which takes /v1/responses natively). Each cell runs the agent in its own temp
# working dir with the prompt "Create the file hello.txt containing <MARKER>"; the mock answers with
# one call of the agent's own write/shell tool, then (once it sees the tool result) with the text
# "AGENT-DONE <MARKER>". A cell passes when hello.txt holds MARKER and the agent printed the final
# text. A missing agent is a failure, never a skip. Exit status is non-zero when any cell fails.
#
#   tests/agents/run.sh                       # from anywhere
#   AGENTS="claude" VENDORS="anthropic gemini" tests/agents/run.sh   # a subset
#   AGENTS_NO_BUILD=1     use target/debug/apiproxy as it is (no cargo build)
#   AGENTS_TIMEOUT=120    seconds per cell
#   AGENTS_KEEP=1         keep the temp dir (logs, mock capture of every request) and print its path
#   AGENTS_GEMINI_SIDE_CALLS=1   (the default; 0 turns it off) Gemini CLI also runs its
#                         next-speaker check (a JSON-mode generateContent, pointed at the cell's
#                         model), and a gemini cell fails when the gateway answered any of its
#                         requests with a non-2xx status
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=lib.sh
. "$here/lib.sh"
cd "$agents_root"

agents=${AGENTS:-claude codex gemini}
vendors=${VENDORS:-openai anthropic gemini responses}
timeout=${AGENTS_TIMEOUT:-120}
export GEMINI_SIDE_CALLS=${AGENTS_GEMINI_SIDE_CALLS:-1}

if [ "${AGENTS_NO_BUILD:-0}" != 1 ]; then
  cargo build --quiet --bin apiproxy || { echo "agents: cargo build failed" >&2; exit 1; }
fi
[ -x target/debug/apiproxy ] || { echo "agents: target/debug/apiproxy is missing" >&2; exit 1; }
setup_ok=1
"$here/setup.sh" || { setup_ok=0; echo "agents: setup.sh failed; the agents count as missing" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/apiproxy-agents.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ "${AGENTS_KEEP:-0}" = 1 ]; then echo "agents: kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# gateway_errors LOG FROM_LINE: "METHOD PATH -> STATUS" for every request the gateway answered with a
# non-2xx status after line FROM_LINE of its log (the DEBUG request lines), with the reason the
# gateway logged just before (WARN/INFO/ERROR of the same request id), if any.
gateway_errors() {
  tail -n +"$(($2 + 1))" "$1" | sed 's/\x1b\[[0-9;]*m//g' | python3 -c '
import re, sys
lines = sys.stdin.read().splitlines()
for i, line in enumerate(lines):
    m = re.search(r"request request_id=(\S+) method=(\S+) path=\"([^\"]*)\" status=(\d+)", line)
    if not m or m.group(4).startswith("2"):
        continue
    why = [l for l in lines[:i] if m.group(1) in l and " DEBUG " not in l]
    note = ("  [" + why[-1].split(": ", 1)[-1][:300] + "]") if why else ""
    print("  %s %s -> %s%s" % (m.group(2), m.group(3), m.group(4), note))
'
}

# --- mock upstream ------------------------------------------------------------------------------
: >"$work/mock.jsonl"
python3 "$here/mock_upstream.py" --port 0 --port-file "$work/mock.port" \
  --capture "$work/mock.jsonl" >"$work/mock.log" 2>&1 &
pids+=($!)
wait_for_file "$work/mock.port" || { echo "agents: mock upstream did not start" >&2; cat "$work/mock.log"; exit 1; }
mock="http://127.0.0.1:$(cat "$work/mock.port")"

# --- gateway ------------------------------------------------------------------------------------
# Three providers, one per vendor, all on the mock (base URLs without /v1: the gateway appends each
# vendor's own path), and one logical model per vendor.
cat >"$work/models.json" <<JSON
[{"logical_id": "agent-openai", "upstreams": [{"provider_id": "mockopenai", "model_id": "mock-gpt"}], "enabled": true},
 {"logical_id": "agent-anthropic", "upstreams": [{"provider_id": "mockanthropic", "model_id": "mock-claude"}], "enabled": true},
 {"logical_id": "agent-gemini", "upstreams": [{"provider_id": "mockgemini", "model_id": "mock-gemini"}], "enabled": true},
 {"logical_id": "agent-responses", "upstreams": [{"provider_id": "mockresponses", "model_id": "mock-gpt-responses"}], "enabled": true}]
JSON
token=agent-suite-token
token_b64=$(printf '%s' "$token" | base64)
gw_port=$(free_port)
env -i PATH="$PATH" HOME="$work" NO_COLOR=1 LOG_LEVEL="${AGENTS_LOG_LEVEL:-DEBUG}" APIPROXY_AUTH_TOKEN="$token" \
  LLM_PROVIDERS=mockopenai,mockanthropic,mockgemini,mockresponses \
  LLM_PROVIDER_mockopenai_NAME="Mock OpenAI" LLM_PROVIDER_mockopenai_VENDOR=openai \
  LLM_PROVIDER_mockopenai_BASE_URL="$mock" LLM_PROVIDER_mockopenai_API_KEY=sk-mock-openai \
  LLM_PROVIDER_mockanthropic_NAME="Mock Anthropic" LLM_PROVIDER_mockanthropic_VENDOR=anthropic \
  LLM_PROVIDER_mockanthropic_BASE_URL="$mock" LLM_PROVIDER_mockanthropic_API_KEY=sk-ant-mock \
  LLM_PROVIDER_mockgemini_NAME="Mock Gemini" LLM_PROVIDER_mockgemini_VENDOR=gemini \
  LLM_PROVIDER_mockgemini_BASE_URL="$mock" LLM_PROVIDER_mockgemini_API_KEY=mock-gemini-key \
  LLM_PROVIDER_mockresponses_NAME="Mock OpenAI Responses" LLM_PROVIDER_mockresponses_VENDOR=openai \
  LLM_PROVIDER_mockresponses_BASE_URL="$mock" LLM_PROVIDER_mockresponses_API_KEY=sk-mock-openai \
  LLM_PROVIDER_mockresponses_RESPONSES=true \
  LOGICAL_MODELS_FILE="$work/models.json" \
  target/debug/apiproxy serve --port "$gw_port" --env-file /dev/null >"$work/gateway.log" 2>&1 &
pids+=($!)
gw="http://127.0.0.1:$gw_port"
for _ in $(seq 1 100); do
  curl -fsS "$gw/health" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -fsS "$gw/health" >/dev/null 2>&1; then
  echo "agents: the gateway did not start"; sed 's/\x1b\[[0-9;]*m//g' "$work/gateway.log" | tail -n 40; exit 1
fi

# --- cells --------------------------------------------------------------------------------------
results=()
passed=0
failed=0
for agent in $agents; do
  version=missing
  [ "$setup_ok" = 1 ] && version=$(agent_version "$agent")
  for vendor in $vendors; do
    cell="$work/$agent-$vendor"
    mkdir -p "$cell"
    marker="AGENT-OK-$agent-$vendor-$RANDOM$RANDOM"
    prompt="Create the file hello.txt containing $marker"
    gw_lines=$(wc -l <"$work/gateway.log")
    mock_lines=$(wc -l <"$work/mock.jsonl")
    start=$(date +%s.%N)
    rc=0
    reason=""
    if [ "$version" = missing ] || { [ "$agent" = claude ] && [ ! -x "$claude_bin" ]; } ||
       { [ "$agent" = codex ] && [ ! -x "$codex_bin" ]; } ||
       { [ "$agent" = gemini ] && [ ! -x "$gemini_bin" ]; }; then
      rc=127
      reason="agent missing"
      echo "agent $agent is not installed (tests/agents/setup.sh)" >"$cell/out.txt"
    elif [ "$agent" = claude ]; then
      run_claude "$gw" "$token_b64" "agent-$vendor" "$cell/work" "$cell/home" "$prompt" "$cell/out.txt" "$timeout" || rc=$?
    elif [ "$agent" = codex ]; then
      run_codex "$gw/v1" "$token_b64" "agent-$vendor" "$cell/work" "$cell/home" "$prompt" "$cell/out.txt" "$timeout" || rc=$?
    elif [ "$agent" = gemini ]; then
      # The gateway's own Gemini API: {gw}/v1beta/models/agent-VENDOR:streamGenerateContent?alt=sse
      run_gemini "$gw" "$token_b64" "agent-$vendor" "$cell/work" "$cell/home" "$prompt" "$cell/out.txt" "$timeout" || rc=$?
    else
      rc=127
      reason="unknown agent"
      : >"$cell/out.txt"
    fi
    secs=$(python3 -c "import sys; print('%.1f' % (float(sys.argv[2]) - float(sys.argv[1])))" "$start" "$(date +%s.%N)")
    got=$(cat "$cell/work/hello.txt" 2>/dev/null || true)
    if [ -z "$reason" ]; then
      if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then reason="timeout after ${timeout}s"
      elif [ ! -f "$cell/work/hello.txt" ]; then reason="hello.txt not written (exit $rc)"
      elif [ "$(printf '%s' "$got" | tr -d '\r' | sed -e 's/[[:space:]]*$//')" != "$marker" ]; then reason="hello.txt holds '$got'"
      elif ! grep -qF "AGENT-DONE $marker" "$cell/out.txt"; then reason="no final text marker (exit $rc)"
      elif [ "$agent" = gemini ] && [ "$GEMINI_SIDE_CALLS" = 1 ] &&
           [ -n "$(gateway_errors "$work/gateway.log" "$gw_lines")" ]; then
        reason="gateway error answer: $(gateway_errors "$work/gateway.log" "$gw_lines" | head -n 1 | sed 's/^ *//; s/  \[.*//')"
      elif [ "$agent-$vendor" = codex-responses ] &&
           ! tail -n +"$((mock_lines + 1))" "$work/mock.jsonl" | python3 -c '
import json, sys
sys.exit(0 if any(e["path"].startswith("/v1/responses") and (e.get("body") or {}).get("model") == "mock-gpt-responses"
                  for e in map(json.loads, sys.stdin)) else 1)'; then
        reason="the Responses request did not reach the upstream as it was (native pass-through)"
      fi
    fi
    if [ -z "$reason" ]; then
      results+=("$(printf '%-8s %-10s %-5s %6ss  %s' "$agent" "$vendor" PASS "$secs" "$version")")
      passed=$((passed + 1))
    else
      results+=("$(printf '%-8s %-10s %-5s %6ss  %s: %s' "$agent" "$vendor" FAIL "$secs" "$version" "$reason")")
      failed=$((failed + 1))
      echo "=== FAIL $agent x $vendor: $reason"
      echo "--- agent output (last 30 lines) ---"
      tail -n 30 "$cell/out.txt"
      echo "--- gateway answers other than 2xx in this cell ---"
      gateway_errors "$work/gateway.log" "$gw_lines"
      for report in "$cell"/home/tmp/gemini-client-error-*.json; do
        [ -f "$report" ] || continue
        echo "--- Gemini CLI error report ${report##*/} (first 40 lines) ---"
        head -n 40 "$report"
      done
      echo "--- gateway log of this cell (last 40 lines) ---"
      tail -n +"$((gw_lines + 1))" "$work/gateway.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -n 40
      echo "--- upstream requests the mock got in this cell ---"
      tail -n +"$((mock_lines + 1))" "$work/mock.jsonl" 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    e = json.loads(line)
    print(" ", e["method"], e["path"], "->", e["mock_answer"])
'
      echo
    fi
  done
done

echo
printf '%-8s %-10s %-5s %7s  %s\n' agent vendor result time "version / reason"
for r in "${results[@]}"; do echo "$r"; done
echo
echo "agents: $passed passed, $failed failed"
[ "$failed" = 0 ]
