"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for tests and benchmarks.

Each request is answered by a script: a function of (request body, call number) returning a
Reply. The default script is a naive "model" that labels from the prompt: it picks the first
changed file, and it obeys any "ignore previous instructions" it finds outside the data fence
(so a test can show that data inside the fence cannot reach it).
"""

from __future__ import annotations

import email.policy
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message; None gives a default label
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    raw: str | None = None  # a raw body instead of a completion
    delay: float = 0.0
    refusal: str | None = None  # a refusal (content null), as OpenAI's models send it
    null_content: bool = False  # content null (a reasoning model that spent its output cap)
    stream: bool = False  # answer with server-sent events, as streaming-only servers do
    usage: dict[str, Any] | None = None  # the usage object (default: 100 in, 20 out)


Script = Callable[[dict[str, Any], int], Reply]


def fence_of(request: dict[str, Any]) -> str:
    user = request["messages"][1]["content"]
    return re.search(r"Data token: ([0-9a-f]+)", user).group(1)  # type: ignore[union-attr]


def outside_fence(request: dict[str, Any]) -> str:
    """The user text with the fenced data cut out."""
    fence = fence_of(request)
    user = "\n".join(m["content"] for m in request["messages"][1:] if m["role"] == "user")
    return re.sub(rf"<<<DATA {fence}.*?DATA {fence}>>>", "", user, flags=re.DOTALL)


_BEFORE_BLOCK = re.compile(r"^--- (\S+): (.+?) \(before, lines (\d+)-(\d+)\)\n((?:\s*\d+  .*\n?)*)",
                           re.MULTILINE)
# What a step's action looks like in a line of code, for the naive model's steps.
_SPOTTED = (("ets_write", r":ets\.(?:insert|delete|update)|ets:(?:insert|delete|update)"),
            ("ets_read", r":ets\.lookup|ets:lookup"), ("call", r"\bcall\("),
            ("send", r"\bsend\(| ! "), ("receive", r"\breceive\b"),
            ("monitor", r"monitor"), ("spawn", r"spawn|start_link"))


def changed_functions(request: dict[str, Any]) -> list[tuple[str, str, int, int, list[str]]]:
    """(file, function, first line, last line, numbered lines) of each changed function the
    prompt shows in its before version."""
    user = request["messages"][1]["content"]
    return [(m.group(1), m.group(2), int(m.group(3)), int(m.group(4)),
             m.group(5).splitlines()) for m in _BEFORE_BLOCK.finditer(user)]


def naive_label(request: dict[str, Any]) -> dict[str, Any]:
    """A label a careful model could give: the first changed function, with steps on the
    lines of it that show a process action (two actors), all in the before version."""
    if "ignore previous instructions" in outside_fence(request).lower():
        return {"event_sequence": [], "explanation": "told to", "bug_location": None,
                "fix_summary": "", "is_concurrency_bug": False, "bug_type": "not_concurrency",
                "scope": "production", "confidence": 0.9}
    functions = changed_functions(request)
    if not functions:  # no changed function to point at: the naive model says no
        return {"analysis": "no changed function", "event_sequence": [], "explanation": None,
                "bug_location": None, "fix_summary": "", "is_concurrency_bug": False,
                "bug_type": "not_concurrency", "scope": "production", "confidence": 0.6}
    path, name, first, last, lines = functions[0]
    steps = []
    for numbered in lines:
        number, _, code = numbered.strip().partition("  ")
        for action, pattern in _SPOTTED:
            if re.search(pattern, code):
                for actor in ("process A", "process B"):
                    steps.append({"actor": actor, "action": action, "target": "shared state",
                                  "file": path, "function": name, "line": int(number),
                                  "note": f"{actor} reaches line {number}"})
                break
    if not steps:  # nothing recognisable: the head of the function, by two callers
        steps = [{"actor": actor, "action": "other", "target": None, "file": path,
                  "function": name, "line": first, "note": "enters"}
                 for actor in ("process A", "process B")]
    return {"analysis": f"{name} is entered by two processes", "event_sequence": steps[:4],
            "explanation": f"two processes interleave in {name}",
            "bug_location": {"file": path, "function": name, "start_line": first,
                             "end_line": last},
            "fix_summary": "made it atomic", "is_concurrency_bug": True,
            "bug_type": "race_condition", "scope": "test" if "test" in path else "production",
            "confidence": 0.8}


def broken_label(request: dict[str, Any]) -> dict[str, Any]:
    """A label that reads well and does not hold: steps at lines outside the function (one
    past the end of the file), a second actor missing."""
    label = naive_label(request)
    steps = [{**step, "actor": "process A", "line": 99_999}
             for step in label["event_sequence"]]
    return {**label, "event_sequence": steps}


def completion(call: int, body: dict[str, Any], content: str | None, reply: Reply
               ) -> dict[str, Any]:
    """A chat.completion object as OpenAI's API returns it."""
    return {"id": f"c{call}", "object": "chat.completion", "created": 0,
            "model": body.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": reply.finish_reason,
                         "message": {"role": "assistant", "content": content,
                                     "refusal": reply.refusal}}],
            "usage": reply.usage or {"prompt_tokens": 100, "completion_tokens": 20,
                                     "total_tokens": 120}}


def default_script(request: dict[str, Any], call: int) -> Reply:
    if "is_plausible" in request["messages"][0]["content"]:
        return Reply(content=json.dumps(plausible_verdict(request)))
    return Reply(content=json.dumps(naive_label(request)))


def plausible_verdict(request: dict[str, Any]) -> dict[str, Any]:
    """The reviewer agrees with every step of the report it was shown."""
    report = request["messages"][1]["content"].split("Report to check:", 1)[-1]
    steps = re.findall(r'"step": (\d+)', report)
    return {"steps": [{"step": int(n), "plausible": True, "note": "follows"} for n in steps],
            "is_plausible": True, "critique": "steps follow"}


class FakeLLM:
    """Start with `with FakeLLM(script) as llm:`; llm.base_url is for the openai client."""

    def __init__(self, script: Script = default_script, batch_create_delay: float = 0.0,
                 batch_seconds: float = 0.2) -> None:
        self.script = script
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        # The Batch API: uploaded files, batches, and how slowly the server takes them on.
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batch_create_delay = batch_create_delay  # before answering POST /batches
        self.batch_seconds = batch_seconds  # from creation to completed
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive: clients reuse their connections
            # Headers and body go out as two writes; with Nagle's algorithm the second
            # waits for the client's delayed ACK (~40 ms), which is not the latency we mean.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:
                pass

            def _send_json(self, status: int, value: Any, raw: bytes | None = None) -> None:
                payload = raw if raw is not None else json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.startswith("/v1/files/") and path.endswith("/content"):
                    content = outer.files.get(path.split("/")[3])
                    if content is None:
                        return self._send_json(404, {"error": {"message": "no such file"}})
                    return self._send_json(200, None, raw=content)
                if path == "/v1/batches":
                    with outer._lock:
                        data = [outer._batch_view(b) for b in outer.batches.values()]
                    return self._send_json(200, {"object": "list", "data": data[::-1],
                                                 "has_more": False})
                if path.startswith("/v1/batches/"):
                    batch = outer.batches.get(path.rsplit("/", 1)[1])
                    if batch is None:
                        return self._send_json(404, {"error": {"message": "no such batch"}})
                    return self._send_json(200, outer._batch_view(batch))
                self._send_json(404, {"error": {"message": f"no route {path}"}})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                if self.path.startswith("/v1/files"):
                    return self._send_json(200, outer._upload(self.headers["Content-Type"],
                                                              raw))
                if self.path.startswith("/v1/batches"):
                    batch = outer._create_batch(json.loads(raw))
                    time.sleep(outer.batch_create_delay)
                    return self._send_json(200, outer._batch_view(batch))
                body = json.loads(raw)
                with outer._lock:
                    call = len(outer.requests)
                    outer.requests.append(body)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.script(body, call)
                if reply.delay:
                    time.sleep(reply.delay)
                content_type = "application/json"
                if reply.raw is not None:
                    payload = reply.raw.encode()
                elif reply.status != 200:
                    payload = json.dumps({"error": {"message": reply.content or "error",
                                                    "type": "server_error"}}).encode()
                else:
                    content = reply.content if reply.content is not None else json.dumps(
                        naive_label(body))
                    if reply.refusal is not None or reply.null_content:
                        content = None
                    payload = json.dumps(completion(call, body, content, reply)).encode()
                    if reply.stream:  # the whole answer as one chunk, then [DONE]
                        content_type = "text/event-stream"
                        payload = b"data: " + payload + b"\n\ndata: [DONE]\n\n"
                self.send_response(reply.status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                try:
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test): nothing to answer

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the default backlog of 5 drops concurrent connects

            def handle_error(self, request: object, client_address: object) -> None:
                # A client that hung up (a run stopped while requests were in flight) is
                # what real servers see too; anything else is printed as usual.
                if not isinstance(sys.exc_info()[1], ConnectionError):
                    super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _upload(self, content_type: str, raw: bytes) -> dict[str, Any]:
        """A multipart upload, as the openai client sends files.create."""
        message = BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        content, name = b"", "upload"
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                content = part.get_payload(decode=True) or b""
                name = part.get_filename() or name
        with self._lock:
            file_id = f"file-{len(self.files)}"
            self.files[file_id] = content
        return {"id": file_id, "object": "file", "bytes": len(content), "created_at": 0,
                "filename": name, "purpose": "batch"}

    def _create_batch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Accept a batch; each of its lines is answered by the script once, right away, and
        the batch reads as completed batch_seconds later."""
        lines = [json.loads(line) for line in
                 self.files[request["input_file_id"]].decode().splitlines() if line.strip()]
        output = []
        for item in lines:
            with self._lock:
                call = len(self.requests)
                self.requests.append(item["body"])
            reply = self.script(item["body"], call)
            content = reply.content if reply.content is not None else json.dumps(
                naive_label(item["body"]))
            body = completion(call, item["body"], content, reply)
            output.append(json.dumps({"id": f"req-{call}", "custom_id": item["custom_id"],
                                      "response": {"status_code": reply.status,
                                                   "request_id": f"r{call}", "body": body},
                                      "error": None}))
        with self._lock:
            batch_id = f"batch_{len(self.batches)}"
            output_id = f"file-{len(self.files)}"
            self.files[output_id] = ("\n".join(output) + "\n").encode()
            batch = {"id": batch_id, "input_file_id": request["input_file_id"],
                     "endpoint": request["endpoint"], "output": output_id,
                     "done_at": time.monotonic() + self.batch_seconds, "total": len(lines)}
            self.batches[batch_id] = batch
        return batch

    @staticmethod
    def _batch_view(batch: dict[str, Any]) -> dict[str, Any]:
        done = time.monotonic() >= batch["done_at"]
        return {"id": batch["id"], "object": "batch", "endpoint": batch["endpoint"],
                "input_file_id": batch["input_file_id"], "completion_window": "24h",
                "status": "completed" if done else "in_progress", "created_at": 0,
                "output_file_id": batch["output"] if done else None, "error_file_id": None,
                "request_counts": {"total": batch["total"],
                                   "completed": batch["total"] if done else 0, "failed": 0}}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeLLM:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    """Serve the default script in its own process (benchmarks): prints the base URL."""
    import argparse
    import signal

    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()

    def script(request: dict[str, Any], call: int) -> Reply:
        reply = default_script(request, call)
        reply.delay = args.latency
        return reply

    with FakeLLM(script) as llm:
        print(llm.base_url, flush=True)
        signal.sigwait({signal.SIGTERM, signal.SIGINT})


if __name__ == "__main__":
    main()
