#!/usr/bin/env python3
"""Scripted mock LLM upstream for the coding-agent suite (tests/agents/run.sh, capture.sh).

One port, four dialects (python3 stdlib only):
  OpenAI Chat Completions  POST /v1/chat/completions, /chat/completions   (stream and not)
  OpenAI Responses         POST /v1/responses, /responses                 (stream and not)
  Anthropic Messages       POST /v1/messages (+ /v1/messages/count_tokens) (stream and not)
  Gemini                   POST /v1beta/models/{m}:generateContent, :streamGenerateContent[?alt=sse],
                           :countTokens
  Model lists              GET /v1/models (OpenAI/Anthropic list), GET /v1beta/models (Gemini list)

Script (the same in every dialect):
  * the conversation already holds a tool result (OpenAI role "tool", Anthropic tool_result block,
    Responses function_call_output / custom_tool_call_output / local_shell_call_output item, Gemini
    functionResponse part)  ->  final text "AGENT-DONE <content>";
  * else the user's text says "create the file NAME containing CONTENT" and the request offers a
    file-writing or shell tool  ->  ONE call of that tool writing CONTENT to NAME (a relative NAME is
    made absolute with the working directory found in the request, when the tool needs it);
  * a request for structured output (Gemini generationConfig.responseMimeType "application/json" /
    responseJsonSchema / responseSchema, OpenAI response_format, Responses text.format, Anthropic
    output_config.format)  ->  a JSON object roughly satisfying the schema (Gemini CLI's next-speaker
    check gets {"reasoning": ..., "next_speaker": "user"}); this is checked first, as such side calls
    carry the whole conversation, tool results included;
  * anything else (title generation, quota checks, small side calls)  ->  plain text "OK".

Every request (method, path with query, headers, body) is appended as one JSON line to --capture.
  python3 tests/agents/mock_upstream.py --port 0 --port-file /tmp/p --capture /tmp/c.jsonl
"""

import argparse
import gzip
import json
import re
import shlex
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MODELS = ["mock-gpt", "mock-claude", "mock-gemini", "gpt-5", "claude-sonnet-4-5", "gemini-2.5-pro"]
PROMPT_RE = re.compile(r"create the file\s+[`'\"]?([^\s`'\"]+?)[`'\"]?\s+containing\s+[`'\"]?([^\s`'\"]+?)[`'\"]?(?=[\s.,;:!]|$)",
                       re.IGNORECASE)
CWD_RES = [
    re.compile(r"<cwd>\s*([^<\s][^<]*?)\s*</cwd>"),                      # Codex environment_context
    re.compile(r"working directory:\s*(/\S+)", re.I),                    # Claude Code env block
    re.compile(r"current working directory(?: is)?:?\s*(/\S+)", re.I),  # Gemini CLI and others
    re.compile(r"working in the directory:?\s*(/\S+)", re.I),
    re.compile(r"Workspace Directories:?\**:?\s*\n\s*-\s*(/\S+)", re.I),  # Gemini CLI 0.61 session_context
]
# Tools the script knows how to use, best first.
TOOL_PREFERENCE = ["Write", "write_file", "shell_command", "shell", "exec_command", "Bash",
                   "run_shell_command", "apply_patch", "local_shell"]

_capture_lock = threading.Lock()
CAPTURE_PATH = None
QUIET = False


def new_id(prefix):
    return prefix + uuid.uuid4().hex[:24]


# ---------------------------------------------------------------------------------------------
# Reading a request in any dialect


def texts_of(value):
    """All strings under `text`/`content`/`input`-ish keys (and plain strings) of a JSON value."""
    out = []

    def walk(v):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for k, x in v.items():
                if k in ("text", "content", "input", "parts", "instructions", "system",
                         "messages", "contents", "systemInstruction", "system_instruction"):
                    walk(x)

    walk(value)
    return out


def user_texts(dialect, body):
    """Texts the user said (the prompt lives there), newest last."""
    out = []
    if dialect in ("chat", "anthropic"):
        for m in body.get("messages") or []:
            if isinstance(m, dict) and m.get("role") == "user":
                out += texts_of(m.get("content"))
    elif dialect == "responses":
        inp = body.get("input")
        if isinstance(inp, str):
            out.append(inp)
        for item in inp if isinstance(inp, list) else []:
            if isinstance(item, dict) and item.get("role") == "user":
                out += texts_of(item.get("content"))
    elif dialect == "gemini":
        for c in body.get("contents") or []:
            if isinstance(c, dict) and c.get("role", "user") == "user":
                for p in c.get("parts") or []:
                    if isinstance(p, dict) and isinstance(p.get("text"), str):
                        out.append(p["text"])
    return out


def all_texts(body):
    return texts_of(body)


def has_tool_result(dialect, body):
    if dialect == "chat":
        return any(isinstance(m, dict) and m.get("role") in ("tool", "function")
                   for m in body.get("messages") or [])
    if dialect == "anthropic":
        for m in body.get("messages") or []:
            content = m.get("content") if isinstance(m, dict) else None
            if isinstance(content, list) and any(
                    isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
                return True
        return False
    if dialect == "responses":
        inp = body.get("input")
        return isinstance(inp, list) and any(
            isinstance(i, dict) and i.get("type") in (
                "function_call_output", "custom_tool_call_output", "local_shell_call_output")
            for i in inp)
    if dialect == "gemini":
        for c in body.get("contents") or []:
            for p in (c.get("parts") or []) if isinstance(c, dict) else []:
                if isinstance(p, dict) and ("functionResponse" in p or "function_response" in p):
                    return True
        return False
    return False


def offered_tools(dialect, body):
    """{name: kind} where kind is function, custom or local_shell."""
    tools = {}
    if dialect == "gemini":
        for t in body.get("tools") or []:
            for d in (t.get("functionDeclarations") or t.get("function_declarations") or []) if isinstance(t, dict) else []:
                if isinstance(d, dict) and d.get("name"):
                    tools[d["name"]] = "function"
        return tools
    for t in body.get("tools") or []:
        if not isinstance(t, dict):
            continue
        kind = t.get("type") or "function"
        if dialect == "chat":
            fn = t.get("function") or {}
            name = fn.get("name") or t.get("name")
        else:
            name = t.get("name")
        if kind == "local_shell":
            tools["local_shell"] = "local_shell"
        elif kind in ("function", "custom") and name:
            tools[name] = kind
        elif dialect == "anthropic" and name and "input_schema" in t:
            tools[name] = "function"
    return tools


def find_cwd(body):
    for text in all_texts(body):
        for rx in CWD_RES:
            m = rx.search(text)
            if m:
                return m.group(1).strip()
    return None


def json_request(dialect, body):
    """(True, schema-or-None) when the request asks for a JSON answer (structured output)."""
    if dialect == "gemini":
        cfg = body.get("generationConfig") or body.get("generation_config") or {}
        schema = (cfg.get("responseJsonSchema") or cfg.get("responseSchema")
                  or cfg.get("response_json_schema") or cfg.get("response_schema"))
        mime = cfg.get("responseMimeType") or cfg.get("response_mime_type") or ""
        return (mime == "application/json" or schema is not None), schema
    if dialect == "chat":
        rf = body.get("response_format") or {}
        if isinstance(rf, dict) and rf.get("type") in ("json_object", "json_schema"):
            return True, (rf.get("json_schema") or {}).get("schema")
        return False, None
    if dialect == "responses":
        fmt = ((body.get("text") or {}).get("format") or {}) if isinstance(body.get("text"), dict) else {}
        if fmt.get("type") in ("json_object", "json_schema"):
            return True, fmt.get("schema")
        return False, None
    if dialect == "anthropic":
        for fmt in ((body.get("output_config") or {}).get("format"), body.get("output_format")):
            if isinstance(fmt, dict) and fmt.get("type") in ("json_schema", "json"):
                return True, fmt.get("schema")
        # The gateway asks Anthropic models for JSON with a system instruction quoting the schema
        # (specs/002 §2: Anthropic has no JSON mode every model takes).
        system = body.get("system")
        text = system if isinstance(system, str) else " ".join(
            b.get("text", "") for b in (system or []) if isinstance(b, dict))
        marker = "Answer with one JSON object"
        if marker in text:
            schema = None
            at = text.find("JSON schema: ")
            if at >= 0:
                try:
                    schema = json.loads(text[at + len("JSON schema: "):].strip())
                except ValueError:
                    schema = None
            return True, schema
        return False, None
    return False, None


def sample_of(schema, key=None):
    """A value that satisfies a JSON/OpenAPI (Gemini `Type.OBJECT`-style) schema roughly."""
    if not isinstance(schema, dict):
        return "OK"
    if key == "next_speaker":  # Gemini CLI's next-speaker check: hand the turn back to the user
        return "user"
    if "enum" in schema and schema["enum"]:
        return schema["enum"][0]
    for alt in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(alt), list) and schema[alt]:
            return sample_of(schema[alt][0], key)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if str(k).lower() != "null"), "string")
    kind = str(kind or ("object" if "properties" in schema else "string")).lower()
    if kind == "object":
        props = schema.get("properties") or {}
        return {k: sample_of(v, k) for k, v in props.items()}
    if kind == "array":
        return []
    if kind in ("number", "integer"):
        return 0
    if kind == "boolean":
        return False
    if key in ("reasoning", "explanation", "analysis", "unproductive_state_analysis"):
        return "mock: nothing to add"
    return "OK"


def plan(dialect, body):
    """What to answer: ("text", str) or ("tool", name, kind, args-dict-or-str)."""
    wants_json, schema = json_request(dialect, body)
    if wants_json:  # side calls with structured output (next-speaker check, loop detection, ...)
        return ("text", json.dumps(sample_of(schema) if schema is not None else {"result": "OK"}))
    if has_tool_result(dialect, body):
        match = find_prompt(dialect, body)
        return ("text", "AGENT-DONE " + (match[1] if match else "unknown"))
    match = find_prompt(dialect, body)
    tools = offered_tools(dialect, body)
    if match:
        for name in TOOL_PREFERENCE:
            if name in tools:
                call = tool_call(name, tools[name], match[0], match[1], find_cwd(body))
                if call:
                    return call
    return ("text", "OK")


def find_prompt(dialect, body):
    found = None
    for text in user_texts(dialect, body) or []:
        for m in PROMPT_RE.finditer(text):
            found = (m.group(1), m.group(2))
    return found


def tool_call(name, kind, path, content, cwd):
    abs_path = path if path.startswith("/") or not cwd else cwd.rstrip("/") + "/" + path
    sh = "printf '%s\\n' " + shlex.quote(content) + " > " + shlex.quote(abs_path)
    if name in ("Write", "write_file"):
        if not abs_path.startswith("/"):
            return None
        key = "file_path"
        return ("tool", name, kind, {key: abs_path, "content": content + "\n"})
    if name == "Bash":
        return ("tool", name, kind, {"command": sh, "description": "Write the file"})
    if name == "run_shell_command":
        return ("tool", name, kind, {"command": sh, "description": "Write the file"})
    if name == "shell_command":
        args = {"command": sh}
        if cwd:
            args["workdir"] = cwd
        return ("tool", name, kind, args)
    if name == "shell":
        args = {"command": ["bash", "-lc", sh]}
        if cwd:
            args["workdir"] = cwd
        return ("tool", name, kind, args)
    if name == "exec_command":
        args = {"cmd": sh}
        if cwd:
            args["workdir"] = cwd
        return ("tool", name, kind, args)
    if name == "apply_patch":
        patch = "*** Begin Patch\n*** Add File: " + abs_path + "\n+" + content + "\n*** End Patch\n"
        return ("tool", name, kind, patch if kind == "custom" else {"input": patch})
    if name == "local_shell":
        return ("tool", name, kind, {"type": "exec", "command": ["bash", "-lc", sh],
                                      "working_directory": cwd})
    return None


def approx_tokens(body):
    return max(1, len(json.dumps(body)) // 4)


def chunks_of(text, n=3):
    step = max(1, (len(text) + n - 1) // n)
    return [text[i:i + step] for i in range(0, len(text), step)] or [""]


# ---------------------------------------------------------------------------------------------
# The server


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1"

    def log_message(self, fmt, *args):
        if not QUIET:
            sys.stderr.write("mock: " + (fmt % args) + "\n")

    # -- plumbing ------------------------------------------------------------------------------

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                raw += self.rfile.read(size)
                self.rfile.readline()
        else:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        enc = self.headers.get("Content-Encoding", "").lower()
        try:
            if enc == "gzip":
                raw = gzip.decompress(raw)
            elif enc == "deflate":
                raw = zlib.decompress(raw)
        except Exception:  # noqa: BLE001 - keep the raw bytes for the capture
            pass
        if not raw:
            return None, raw
        try:
            return json.loads(raw), raw
        except ValueError:
            return None, raw

    def capture(self, body, raw, answer):
        if not CAPTURE_PATH:
            return
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body if body is not None else (raw.decode("utf-8", "replace") if raw else None),
            "mock_answer": answer,
        }
        with _capture_lock, open(CAPTURE_PATH, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_"))
        self.end_headers()
        self.wfile.write(data)

    def start_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def sse(self, data, event=None):
        out = ""
        if event:
            out += "event: " + event + "\n"
        out += "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
        self.wfile.write(out.encode())
        self.wfile.flush()

    # -- routing -------------------------------------------------------------------------------

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        body, raw = None, b""
        path = urlsplit(self.path).path
        now = int(time.time())
        if path in ("/v1/models", "/models"):
            answer = {"object": "list", "has_more": False,
                      "first_id": MODELS[0], "last_id": MODELS[-1],
                      "data": [{"id": m, "object": "model", "type": "model", "created": now,
                                "created_at": "2025-01-01T00:00:00Z", "display_name": m,
                                "owned_by": "mock"} for m in MODELS]}
        elif path in ("/v1beta/models", "/v1/models/gemini"):
            answer = {"models": [{"name": "models/" + m, "displayName": m, "version": "001",
                                  "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                                  "supportedGenerationMethods": ["generateContent", "countTokens"]}
                                 for m in MODELS]}
        elif path.startswith("/v1beta/models/") or path.startswith("/v1/models/"):
            m = path.rsplit("/", 1)[1]
            answer = {"id": m, "object": "model", "created": now, "owned_by": "mock",
                      "name": "models/" + m, "type": "model", "display_name": m}
        elif path in ("/", "/health"):
            answer = {"status": "ok"}
        else:
            self.capture(body, raw, {"status": 404})
            return self.send_json(404, {"error": {"message": "mock: no route " + path,
                                                  "type": "not_found"}})
        self.capture(body, raw, {"status": 200})
        self.send_json(200, answer)

    def do_POST(self):
        body, raw = self.read_body()
        split = urlsplit(self.path)
        path, query = split.path, split.query
        if not isinstance(body, dict):
            self.capture(body, raw, {"status": 400})
            return self.send_json(400, {"error": {"message": "mock: body is not a JSON object",
                                                  "type": "invalid_request_error"}})
        if path.endswith("/messages/count_tokens"):
            self.capture(body, raw, {"status": 200, "count_tokens": True})
            return self.send_json(200, {"input_tokens": approx_tokens(body)})
        if path.endswith(":countTokens"):
            self.capture(body, raw, {"status": 200, "count_tokens": True})
            return self.send_json(200, {"totalTokens": approx_tokens(body)})
        if path.endswith("/chat/completions"):
            dialect = "chat"
        elif path.endswith("/responses"):
            dialect = "responses"
        elif path.endswith("/messages"):
            dialect = "anthropic"
        elif ":generateContent" in path or ":streamGenerateContent" in path:
            dialect = "gemini"
        else:
            self.capture(body, raw, {"status": 404})
            return self.send_json(404, {"error": {"message": "mock: no route " + path,
                                                  "type": "not_found"}})
        decision = plan(dialect, body)
        self.capture(body, raw, {"status": 200, "dialect": dialect, "kind": decision[0],
                                 "tool": decision[1] if decision[0] == "tool" else None,
                                 "text": decision[1] if decision[0] == "text" else None})
        if dialect == "gemini":
            model = path.split("/models/", 1)[1].split(":", 1)[0]
            stream = ":streamGenerateContent" in path
            return self.reply_gemini(body, decision, model, stream, "alt=sse" in query)
        model = body.get("model") or "mock"
        stream = body.get("stream") is True
        getattr(self, "reply_" + dialect)(body, decision, model, stream)

    # -- OpenAI Chat Completions ---------------------------------------------------------------

    def reply_chat(self, body, decision, model, stream):
        cid, created = new_id("chatcmpl-"), int(time.time())
        usage = {"prompt_tokens": approx_tokens(body), "completion_tokens": 12,
                 "total_tokens": approx_tokens(body) + 12}
        if decision[0] == "tool":
            _, name, _, args = decision
            arguments = args if isinstance(args, str) else json.dumps(args)
            call_id = new_id("call_")
            message = {"role": "assistant", "content": None, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": decision[1]}
            finish = "stop"
        if not stream:
            return self.send_json(200, {"id": cid, "object": "chat.completion", "created": created,
                                        "model": model, "choices": [{"index": 0, "message": message,
                                                                     "finish_reason": finish}],
                                        "usage": usage})
        self.start_sse()

        def chunk(delta, finish_reason=None, **extra):
            return dict({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]}, **extra)

        self.sse(chunk({"role": "assistant", "content": ""}))
        if decision[0] == "tool":
            call = message["tool_calls"][0]
            self.sse(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                            "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            for part in chunks_of(call["function"]["arguments"]):
                self.sse(chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}))
        else:
            for part in chunks_of(decision[1]):
                self.sse(chunk({"content": part}))
        self.sse(chunk({}, finish, usage=usage))
        self.sse("[DONE]")

    # -- OpenAI Responses ----------------------------------------------------------------------

    def reply_responses(self, body, decision, model, stream):
        rid, created = new_id("resp_"), int(time.time())
        in_tok = approx_tokens(body)
        usage = {"input_tokens": in_tok, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": in_tok + 12}
        if decision[0] == "tool":
            _, name, kind, args = decision
            call_id = new_id("call_")
            if kind == "custom":
                item = {"type": "custom_tool_call", "id": new_id("ctc_"), "status": "completed",
                        "call_id": call_id, "name": name, "input": args}
            elif kind == "local_shell":
                item = {"type": "local_shell_call", "id": new_id("lsh_"), "status": "completed",
                        "call_id": call_id, "action": args}
            else:
                item = {"type": "function_call", "id": new_id("fc_"), "status": "completed",
                        "call_id": call_id, "name": name, "arguments": json.dumps(args)}
        else:
            item = {"type": "message", "id": new_id("msg_"), "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": decision[1], "annotations": []}]}

        def response(status, output, with_usage):
            r = {"id": rid, "object": "response", "created_at": created, "status": status,
                 "model": model, "output": output, "parallel_tool_calls": True,
                 "tool_choice": body.get("tool_choice", "auto"), "tools": body.get("tools", []),
                 "error": None, "incomplete_details": None, "instructions": None,
                 "metadata": {}, "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}},
                 "usage": usage if with_usage else None}
            return r

        if not stream:
            return self.send_json(200, response("completed", [item], True))
        self.start_sse()
        seq = [0]

        def ev(kind, **fields):
            fields = dict({"type": kind, "sequence_number": seq[0]}, **fields)
            seq[0] += 1
            self.sse(fields, event=kind)

        ev("response.created", response=response("in_progress", [], False))
        ev("response.in_progress", response=response("in_progress", [], False))
        if item["type"] == "message":
            text = item["content"][0]["text"]
            ev("response.output_item.added", output_index=0,
               item=dict(item, status="in_progress", content=[]))
            ev("response.content_part.added", item_id=item["id"], output_index=0, content_index=0,
               part={"type": "output_text", "text": "", "annotations": []})
            for part in chunks_of(text):
                ev("response.output_text.delta", item_id=item["id"], output_index=0, content_index=0,
                   delta=part, logprobs=[])
            ev("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
               text=text, logprobs=[])
            ev("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
               part=item["content"][0])
        elif item["type"] == "function_call":
            ev("response.output_item.added", output_index=0,
               item=dict(item, status="in_progress", arguments=""))
            for part in chunks_of(item["arguments"]):
                ev("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=part)
            ev("response.function_call_arguments.done", item_id=item["id"], output_index=0,
               arguments=item["arguments"])
        elif item["type"] == "custom_tool_call":
            ev("response.output_item.added", output_index=0, item=dict(item, status="in_progress", input=""))
            for part in chunks_of(item["input"]):
                ev("response.custom_tool_call_input.delta", item_id=item["id"], output_index=0, delta=part)
            ev("response.custom_tool_call_input.done", item_id=item["id"], output_index=0, input=item["input"])
        else:
            ev("response.output_item.added", output_index=0, item=dict(item, status="in_progress"))
        ev("response.output_item.done", output_index=0, item=item)
        ev("response.completed", response=response("completed", [item], True))

    # -- Anthropic Messages --------------------------------------------------------------------

    def reply_anthropic(self, body, decision, model, stream):
        mid = new_id("msg_")
        in_tok = approx_tokens(body)
        if decision[0] == "tool":
            _, name, _, args = decision
            block = {"type": "tool_use", "id": new_id("toolu_"), "name": name,
                     "input": args if isinstance(args, dict) else {"input": args}}
            stop = "tool_use"
        else:
            block = {"type": "text", "text": decision[1]}
            stop = "end_turn"
        usage = {"input_tokens": in_tok, "output_tokens": 12, "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        if not stream:
            return self.send_json(200, {"id": mid, "type": "message", "role": "assistant", "model": model,
                                        "content": [block], "stop_reason": stop, "stop_sequence": None,
                                        "usage": usage})
        self.start_sse()

        def ev(kind, **fields):
            self.sse(dict({"type": kind}, **fields), event=kind)

        ev("message_start", message={"id": mid, "type": "message", "role": "assistant", "model": model,
                                     "content": [], "stop_reason": None, "stop_sequence": None,
                                     "usage": dict(usage, output_tokens=1)})
        if block["type"] == "text":
            ev("content_block_start", index=0, content_block={"type": "text", "text": ""})
            ev("ping")
            for part in chunks_of(block["text"]):
                ev("content_block_delta", index=0, delta={"type": "text_delta", "text": part})
        else:
            ev("content_block_start", index=0,
               content_block={"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}})
            ev("ping")
            for part in chunks_of(json.dumps(block["input"])):
                ev("content_block_delta", index=0, delta={"type": "input_json_delta", "partial_json": part})
        ev("content_block_stop", index=0)
        ev("message_delta", delta={"stop_reason": stop, "stop_sequence": None},
           usage={"output_tokens": 12})
        ev("message_stop")

    # -- Gemini --------------------------------------------------------------------------------

    def reply_gemini(self, body, decision, model, stream, sse):
        in_tok = approx_tokens(body)
        usage = {"promptTokenCount": in_tok, "candidatesTokenCount": 12, "totalTokenCount": in_tok + 12}
        if decision[0] == "tool":
            _, name, _, args = decision
            parts = [{"functionCall": {"name": name,
                                       "args": args if isinstance(args, dict) else {"input": args}}}]
        else:
            parts = [{"text": decision[1]}]

        def candidate(p, finish):
            c = {"content": {"role": "model", "parts": p}, "index": 0}
            if finish:
                c["finishReason"] = "STOP"
            return c

        full = {"candidates": [candidate(parts, True)], "usageMetadata": usage,
                "modelVersion": model, "responseId": new_id("")}
        if not stream:
            return self.send_json(200, full)
        if "text" in parts[0]:
            pieces = chunks_of(parts[0]["text"])
            events = [{"candidates": [candidate([{"text": t}], i == len(pieces) - 1)],
                       "modelVersion": model, **({"usageMetadata": usage} if i == len(pieces) - 1 else {})}
                      for i, t in enumerate(pieces)]
        else:
            events = [full]
        if not sse:  # a JSON array streamed
            data = json.dumps(events).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.start_sse()
        for e in events:
            self.wfile.write(("data: " + json.dumps(e) + "\r\n\r\n").encode())
            self.wfile.flush()


def main():
    global CAPTURE_PATH, QUIET
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--capture", help="append every request as a JSON line to this file")
    ap.add_argument("--quiet", action="store_true", help="no access log on stderr")
    args = ap.parse_args()
    CAPTURE_PATH, QUIET = args.capture, args.quiet
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        import os
        os.replace(args.port_file + ".tmp", args.port_file)
    print("mock-upstream listening on 127.0.0.1:%d" % port, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
