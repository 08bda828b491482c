# Shared helpers for tests/agents/run.sh and tests/agents/capture.sh (sourced, not run).
# Each agent runs under `env -i` with its own HOME (and CODEX_HOME), so nothing of the caller's
# configuration, credentials or caches is read, and with every update check, telemetry and
# non-essential call turned off: the only traffic is to the base URL given (127.0.0.1).

agents_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
agents_nm="$agents_root/target/agents/node_modules"
claude_bin="$agents_nm/.bin/claude"
codex_bin="$agents_nm/.bin/codex"

agent_version() {  # agent_version claude|codex -> the pinned version installed, or "missing"
  local pkg
  case "$1" in
    claude) pkg=@anthropic-ai/claude-code ;; codex) pkg=@openai/codex ;; gemini) pkg=@google/gemini-cli ;;
    *) echo missing; return ;;
  esac
  node -e 'try{console.log(require(process.argv[1]).version)}catch(e){console.log("missing")}' "$agents_nm/$pkg/package.json"
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_for_file() {  # wait_for_file PATH [tenths]
  local i
  for i in $(seq 1 "${2:-100}"); do [ -s "$1" ] && return 0; sleep 0.1; done
  return 1
}

# run_claude BASE_URL API_KEY MODEL WORKDIR HOMEDIR PROMPT OUTFILE TIMEOUT
# Claude Code headless (-p). As root --dangerously-skip-permissions is refused, so the two tools
# the script uses are allowed by name instead. Every model alias (haiku/sonnet/opus, the small fast
# model, sub-agents) is pointed at MODEL so side calls resolve through the same logical model.
run_claude() {
  local base=$1 key=$2 model=$3 dir=$4 home=$5 prompt=$6 out=$7 timeout=$8
  mkdir -p "$dir" "$home"
  (cd "$dir" && env -i PATH="$PATH" HOME="$home" TERM=dumb LANG=C.UTF-8 \
    ANTHROPIC_BASE_URL="$base" ANTHROPIC_API_KEY="$key" \
    ANTHROPIC_MODEL="$model" ANTHROPIC_SMALL_FAST_MODEL="$model" \
    ANTHROPIC_DEFAULT_HAIKU_MODEL="$model" ANTHROPIC_DEFAULT_SONNET_MODEL="$model" \
    ANTHROPIC_DEFAULT_OPUS_MODEL="$model" CLAUDE_CODE_SUBAGENT_MODEL="$model" \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 \
    DISABLE_ERROR_REPORTING=1 DISABLE_BUG_COMMAND=1 CLAUDE_CODE_DISABLE_TERMINAL_TITLE=1 \
    timeout --kill-after=5 "$timeout" "$claude_bin" -p "$prompt" --model "$model" \
      --allowedTools "Write,Bash" </dev/null >"$out" 2>&1)
}

# run_codex BASE_URL_V1 API_KEY MODEL WORKDIR CODEXHOME PROMPT OUTFILE TIMEOUT
# Codex CLI `exec` with a custom Responses-API provider; no sandbox (the file is written by its
# shell tool in WORKDIR) and no approvals. Retries are kept low so a failing cell ends quickly.
run_codex() {
  local base=$1 key=$2 model=$3 dir=$4 home=$5 prompt=$6 out=$7 timeout=$8
  mkdir -p "$dir" "$home/codex"
  cat >"$home/codex/config.toml" <<TOML
model = "$model"
model_provider = "apiproxy"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[analytics]
enabled = false

[model_providers.apiproxy]
name = "APIProxy"
base_url = "$base"
wire_api = "responses"
env_key = "APIPROXY_API_KEY"
request_max_retries = 1
stream_max_retries = 1
TOML
  (cd "$dir" && env -i PATH="$PATH" HOME="$home" TERM=dumb LANG=C.UTF-8 \
    CODEX_HOME="$home/codex" APIPROXY_API_KEY="$key" \
    timeout --kill-after=5 "$timeout" "$codex_bin" exec --skip-git-repo-check \
      --sandbox danger-full-access "$prompt" </dev/null >"$out" 2>&1)
}
