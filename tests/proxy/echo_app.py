"""A tiny upstream for the proxy's tests: answers with what it received.

``GET /healthz`` -> ``{"ok": true}``; ``GET /_seen`` -> ``{"seen": ["METHOD /path", ...]}``
(every other request so far); ``GET /_hosts`` -> ``{"hosts": [["/path", "Host"], ...]}``;
``/status/<code>`` answers that status; ``/big/<n>``
streams n bytes; anything else echoes method, raw path, query, headers, body size and
the upstream's name (``ECHO_NAME``). Serve it with ``uvicorn tests.proxy.echo_app:app``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

NAME = os.environ.get("ECHO_NAME", "echo")
SEEN: list[str] = []
HOSTS: list[tuple[str, str]] = []


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    path: str = scope["path"]
    if path not in ("/healthz", "/_seen", "/_hosts"):
        SEEN.append(f"{scope['method']} {path}")
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
        HOSTS.append((path, host))
    if path.startswith("/big/"):
        await _stream(send, int(path.rsplit("/", 1)[1]))
        return
    status = int(path.rsplit("/", 1)[1]) if path.startswith("/status/") else 200
    payload = {
        "upstream": NAME,
        "method": scope["method"],
        "path": path,
        "raw_path": (scope.get("raw_path") or b"").decode("latin-1"),
        "query": scope["query_string"].decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_length": len(body),
    }
    if path == "/_seen":
        payload = {"seen": SEEN}
    elif path == "/_hosts":
        payload = {"hosts": HOSTS}
    data = json.dumps({"ok": True} if path == "/healthz" else payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    headers.append((b"x-upstream", NAME.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


async def _stream(send: Callable[[Message], Awaitable[None]], size: int) -> None:
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"x-upstream", NAME.encode())]}
    )
    chunk = b"x" * 65536
    while size > 0:
        piece = chunk[: min(size, len(chunk))]
        size -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
