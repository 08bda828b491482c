# Shared helpers for tests/agents/run.sh and tests/agents/capture.sh (sourced, not run).
# Each agent runs under `env -i` with its own HOME (and CODEX_HOME, ~/.gemini), so nothing of the caller's
# configuration, credentials or caches is read, and with every update check, telemetry and
# non-essential call turned off: the only traffic is to the base URL given (127.0.0.1).

agents_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
agents_nm="$agents_root/target/agents/node_modules"
claude_bin="$agents_nm/.bin/claude"
codex_bin="$agents_nm/.bin/codex"
gemini_bin="$agents_nm/.bin/gemini"

agent_version() {  # agent_version claude|codex|gemini -> the pinned version installed, or "missing"
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

# run_gemini BASE_URL API_KEY MODEL WORKDIR HOMEDIR PROMPT OUTFILE TIMEOUT
# Gemini CLI headless (-p) with a Gemini API key against a custom endpoint: GOOGLE_GEMINI_BASE_URL
# is the host only (the bundled @google/genai SDK appends /v1beta/models/MODEL:streamGenerateContent
# ?alt=sse), the key goes out as `x-goog-api-key`. The auth type is pinned to "gemini-api-key" in
# settings: with GOOGLE_GEMINI_BASE_URL alone 0.61.0 picks its "gateway" auth type, which its
# non-interactive auth check rejects ("Invalid auth method selected."). --yolo approves every tool;
# the workspace is trusted (GEMINI_CLI_TRUST_WORKSPACE, folder trust off); usage statistics
# (Clearcut), telemetry, auto-update checks and IDE integration are off, so the only traffic is to
# BASE_URL. TMPDIR is HOMEDIR/tmp, so its error reports (gemini-client-error-*.json) stay there.
# Side calls (next-speaker check, loop detection, edit correction, routing classifier) use Gemini
# CLI's own model aliases (flash-lite, gemini-3-flash-preview...); with its defaults none is sent
# for this prompt. GEMINI_SIDE_CALLS=1 turns the next-speaker check on (a JSON-mode
# generateContent with responseJsonSchema after the final answer) with its alias pointed at MODEL.
run_gemini() {
  local base=$1 key=$2 model=$3 dir=$4 home=$5 prompt=$6 out=$7 timeout=$8 side=""
  mkdir -p "$dir" "$home/.gemini" "$home/tmp"
  if [ "${GEMINI_SIDE_CALLS:-0}" = 1 ]; then
    side=',
  "modelConfigs": {"customAliases": {"next-speaker-checker": {"extends": "base", "modelConfig": {"model": "'"$model"'"}}}}'
  fi
  cat >"$home/.gemini/settings.json" <<JSON
{
  "general": {"enableAutoUpdate": false, "enableAutoUpdateNotification": false},
  "privacy": {"usageStatisticsEnabled": false},
  "telemetry": {"enabled": false, "logPrompts": false},
  "ide": {"enabled": false, "hasSeenNudge": true},
  "security": {"auth": {"selectedType": "gemini-api-key"}, "folderTrust": {"enabled": false}},
  "model": {"name": "$model", "skipNextSpeakerCheck": $([ -n "$side" ] && echo false || echo true)}$side
}
JSON
  (cd "$dir" && env -i PATH="$PATH" HOME="$home" TMPDIR="$home/tmp" TERM=dumb LANG=C.UTF-8 \
    GOOGLE_GEMINI_BASE_URL="$base" GEMINI_API_KEY="$key" GEMINI_CLI_TRUST_WORKSPACE=true \
    timeout --kill-after=5 "$timeout" "$gemini_bin" -p "$prompt" -m "$model" --yolo \
      --output-format text </dev/null >"$out" 2>&1)
}
