#!/usr/bin/env bash
# Installs the pinned coding agents (tests/agents/package.json + package-lock.json) into
# target/agents/node_modules with the machine's npm (`npm ci`, not global), then runs Claude Code's
# install.cjs once so its native binary is in place. Idempotent: does nothing when the installed
# versions already match the pins.
#   tests/agents/setup.sh           # from anywhere; prints the agents' paths and versions
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
src="$root/tests/agents"
dest="$root/target/agents"
nm="$dest/node_modules"

pin() { node -e 'const p=require(process.argv[1]); console.log(p.dependencies[process.argv[2]])' "$src/package.json" "$1"; }
installed() { node -e 'try{console.log(require(process.argv[1]).version)}catch(e){console.log("none")}' "$nm/$1/package.json"; }

claude_pin=$(pin @anthropic-ai/claude-code)
codex_pin=$(pin @openai/codex)
gemini_pin=$(pin @google/gemini-cli)

up_to_date() {
  [ "$(installed @anthropic-ai/claude-code)" = "$claude_pin" ] &&
  [ "$(installed @openai/codex)" = "$codex_pin" ] &&
  [ "$(installed @google/gemini-cli)" = "$gemini_pin" ] &&
  cmp -s "$src/package-lock.json" "$dest/package-lock.json" &&
  [ -f "$nm/@anthropic-ai/claude-code/.apiproxy-installed" ]
}

if ! up_to_date; then
  echo "setup: installing claude-code $claude_pin, codex $codex_pin, gemini-cli $gemini_pin into $dest" >&2
  mkdir -p "$dest"
  cp "$src/package.json" "$src/package-lock.json" "$dest/"
  # --ignore-scripts: the optional native add-ons of gemini-cli (keytar, node-pty) would try to
  # compile; Claude Code's only script (install.cjs) is run by hand below.
  (cd "$dest" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >&2
  (cd "$nm/@anthropic-ai/claude-code" && node install.cjs) >&2
  touch "$nm/@anthropic-ai/claude-code/.apiproxy-installed"
fi

# Sanity: each agent answers --version (Gemini CLI is optional for now: a warning only).
"$nm/.bin/claude" --version >&2
"$nm/.bin/codex" --version >&2
"$nm/.bin/gemini" --version >&2 2>/dev/null || echo "setup: warning: gemini --version failed" >&2
