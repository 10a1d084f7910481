"""Loopback HTTP servers speaking Gemini's generateContent and OpenAI's chat completions, as
the real SDKs send and expect them, recording every request they receive."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.utils import timezone

from analytics.models import Event
from personalization.models import VisitorProfile


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list → JSON, str/bytes as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


class FakeLLMServer:
    def __init__(self) -> None:
        self.requests: list[Seen] = []
        self.replies: deque[Reply] = deque()
        self.default: Reply | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                server.requests.append(
                    Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                reply = server.replies.popleft() if server.replies else server.default
                reply = reply or Reply(500, {"error": {"message": "no reply queued"}})
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body
                if isinstance(payload, dict | list):
                    payload = json.dumps(payload)
                data = payload.encode() if isinstance(payload, str) else (payload or b"")
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}"

    def queue(self, *replies: Reply) -> FakeLLMServer:
        self.replies.extend(replies)
        return self

    def prompt_of(self, index: int) -> str:
        """The user prompt text of a recorded request, in either format."""
        body = self.requests[index].body
        if "contents" in body:
            return "".join(p["text"] for p in body["contents"][0]["parts"])
        return next(m["content"] for m in body["messages"] if m["role"] == "user")


@contextlib.contextmanager
def fake_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


# --- Response bodies ------------------------------------------------------------------------


def gemini_ok(text: str, prompt_tokens: int = 120, completion_tokens: int = 80) -> Reply:
    return Reply(
        200,
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": completion_tokens,
                "totalTokenCount": prompt_tokens + completion_tokens,
            },
            "modelVersion": "gemini-test-001",
        },
    )


def gemini_error(code: int, status: str, retry_delay: str | None = None) -> Reply:
    details = []
    if retry_delay is not None:
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}
        )
    return Reply(
        code,
        {"error": {"code": code, "message": status.lower(), "status": status, "details": details}},
    )


def openai_ok(text: str, prompt_tokens: int = 100, completion_tokens: int = 60) -> Reply:
    return Reply(
        200,
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "created": 1764400000,
            "model": "test-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        },
    )


def openai_error(code: int, headers: dict[str, str] | None = None) -> Reply:
    return Reply(
        code,
        {"error": {"message": f"error {code}", "type": "server_error", "code": None}},
        headers or {},
    )


# --- Replies and data -----------------------------------------------------------------------

FINDING = {
    "what": "Machine-learning readers dominate project clicks.",
    "why": "The ML projects are listed first.",
    "so_what": "They are the audience most likely to get in touch.",
    "recommendation": "Feature the LLM router for them.",
}


def valid_reply(**overrides: Any) -> dict[str, Any]:
    reply = {
        "summary": "ML engineers read the most; recruiters convert best.",
        "findings": [FINDING],
        "suggested_rules": [
            {
                "segment": "ML_ENGINEER",
                "priority_sections": ["projects", "skills"],
                "featured_projects": ["llm-router", "sentiment-pipeline"],
                "highlight_skills": ["PyTorch"],
                "reasoning": "They click ML projects.",
            }
        ],
    }
    reply.update(overrides)
    return reply


def valid_text(**overrides: Any) -> str:
    return json.dumps(valid_reply(**overrides))


_counter = iter(range(10**9))


def add_events(uid: str, segment: str | None, events: list[tuple[str, dict]], days_ago: float = 1):
    """Store events for one visitor (and its profile, when a segment is given)."""
    when = timezone.now() - timedelta(days=days_ago)
    Event.objects.bulk_create(
        [
            Event(
                event_name=name,
                user_pseudo_id=uid,
                event_params=params,
                occurred_at=when,
                dedupe_key=uuid.uuid5(uuid.NAMESPACE_URL, f"test-{next(_counter)}-{uid}"),
            )
            for name, params in events
        ]
    )
    if segment:
        VisitorProfile.objects.update_or_create(
            user_pseudo_id=uid,
            defaults={
                "segment": segment,
                "confidence": 0.8,
                "computed_at": timezone.now(),
                "model_version": "test",
            },
        )
