#!/usr/bin/env bash
# Conformance suite: the official Python SDKs against the real gateway and mock upstreams.
# Creates its own virtual environment (target/sdk-venv), builds the binaries if needed, starts a
# mock upstream and the gateway on free ports, runs pytest, and stops them.
#   tests/sdk/run.sh            # from the repository root
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import openai, anthropic, google.genai, pytest, openapi_spec_validator" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/sdk/requirements.txt
fi
cargo build --quiet --bin apiproxy --bin mock-upstream

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

mock_port=$(free_port)
target/debug/mock-upstream --port "$mock_port" --name openai-mock --models gpt-mock > "$work/mock.log" 2>&1 &
pids+=($!)
claude_port=$(free_port)
target/debug/mock-upstream --port "$claude_port" --name claude-mock --models claude-mock > "$work/claude.log" 2>&1 &
pids+=($!)
gemini_port=$(free_port)
target/debug/mock-upstream --port "$gemini_port" --name gemini-mock --models gemini-mock > "$work/gemini.log" 2>&1 &
pids+=($!)

# chat-model: an OpenAI-vendor upstream; claude-model: an Anthropic-vendor upstream; gemini-model:
# a Gemini-vendor upstream; demo: the README's examples' model.
cat > "$work/models.json" <<JSON
[{"logical_id": "chat-model", "upstreams": [{"provider_id": "mock", "model_id": "gpt-mock"}]},
 {"logical_id": "demo", "upstreams": [{"provider_id": "mock", "model_id": "gpt-mock"}]},
 {"logical_id": "claude-model", "upstreams": [{"provider_id": "claude", "model_id": "claude-mock"}]},
 {"logical_id": "gemini-model", "upstreams": [{"provider_id": "gemini", "model_id": "gemini-mock"}]}]
JSON
gw_port=$(free_port)
env -i PATH="$PATH" HOME="${HOME:-/tmp}" \
  LLM_PROVIDERS=mock,claude,gemini LLM_PROVIDER_mock_NAME=Mock LLM_PROVIDER_mock_BASE_URL="http://127.0.0.1:$mock_port" \
  LLM_PROVIDER_mock_API_KEY=sk-mock LLM_PROVIDER_mock_COST_INPUT=1000 LLM_PROVIDER_mock_COST_OUTPUT=1000 \
  LLM_PROVIDER_claude_NAME=Claude LLM_PROVIDER_claude_VENDOR=anthropic \
  LLM_PROVIDER_claude_BASE_URL="http://127.0.0.1:$claude_port" LLM_PROVIDER_claude_API_KEY=sk-ant-mock \
  LLM_PROVIDER_gemini_NAME=Gemini LLM_PROVIDER_gemini_VENDOR=gemini \
  LLM_PROVIDER_gemini_BASE_URL="http://127.0.0.1:$gemini_port" LLM_PROVIDER_gemini_API_KEY=gemini-mock-key \
  LOGICAL_MODELS_FILE="$work/models.json" \
  target/debug/apiproxy serve --port "$gw_port" --env-file /dev/null > "$work/gateway.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$gw_port/health" >/dev/null 2>&1 && break
  sleep 0.1
done

status=0
APIPROXY_URL="http://127.0.0.1:$gw_port" MOCK_URL="http://127.0.0.1:$mock_port" \
  "$venv/bin/python" -m pytest -q tests/sdk "$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- gateway log ---"; tail -n 50 "$work/gateway.log"
fi
exit "$status"
