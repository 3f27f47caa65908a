"""Bridge to mitmproxy flow files, run by mitmproxy's own interpreter (``.venv-mitm``).

mitmproxy cannot share the main virtualenv (it pins ``h11<=0.14``; httpx needs
0.16), so this script uses only the standard library and ``mitmproxy.io``, and
talks JSON lines (the shapes of :mod:`strangler_proxy.shadow.exchange`) over stdio:

    .venv-mitm/bin/python strangler_proxy/shadow/_flowfile.py read capture.flows  > exchanges.jsonl
    .venv-mitm/bin/python strangler_proxy/shadow/_flowfile.py write sample.flows  < exchanges.jsonl

``read`` goes through ``mitmproxy.io.FlowReader``, which migrates flows written by
older mitmproxy versions; only HTTP flows are emitted. Each line is
``{"scheme", "host", "port", "request": {...}, "response": {...} | null}``.
``write`` turns such lines into flows that mitmweb opens and mitmdump replays.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from typing import Any, BinaryIO, TextIO

from mitmproxy import connection, http, io
from mitmproxy.exceptions import FlowReadException

_DECODED_DROP = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _b64(data: bytes | None) -> str:
    return base64.b64encode(data or b"").decode("ascii")


def _headers(fields: Any, drop: frozenset[str] = frozenset()) -> list[list[str]]:
    return [[key, value] for key, value in fields.items(multi=True) if key.lower() not in drop]


def _path(request: Any) -> str:
    # path as sent; HTTP/2 and absolute-form requests still carry it here
    return str(request.path) or "/"


def flow_to_dict(flow: Any) -> dict[str, Any]:
    """One HTTP flow as the JSON document the main process reads."""
    request = flow.request
    document: dict[str, Any] = {
        "scheme": request.scheme,
        "host": request.host,
        "port": request.port,
        "request": {
            "method": request.method,
            "path": _path(request),
            "headers": _headers(request.headers),
            "body_b64": _b64(request.raw_content),
        },
        "response": None,
    }
    if flow.response is not None:
        response = flow.response
        document["response"] = {
            "status": response.status_code,
            "headers": _headers(response.headers, _DECODED_DROP),
            "body_b64": _b64(response.get_content(strict=False)),
        }
    return document


def read_flows(source: BinaryIO, out: TextIO) -> int:
    """Stream every HTTP flow of ``source`` as JSON lines; returns how many."""
    count = 0
    try:
        for flow in io.FlowReader(source).stream():
            if isinstance(flow, http.HTTPFlow):
                out.write(json.dumps(flow_to_dict(flow)) + "\n")
                count += 1
    except FlowReadException as exc:
        raise SystemExit(f"flowfile: cannot read flows: {exc}") from exc
    return count


def dict_to_flow(document: dict[str, Any]) -> Any:
    """A flow from one JSON line (request, and response when present)."""
    scheme = document.get("scheme", "http")
    host = document.get("host", "127.0.0.1")
    port = int(document.get("port", 80))
    req = document["request"]
    url = f"{scheme}://{host}:{port}{req['path']}"
    headers = [(k.encode(), v.encode()) for k, v in req.get("headers", [])]
    now = float(document.get("at", time.time()))
    client = connection.Client(
        peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=now
    )
    server = connection.Server(address=(host, port))
    flow = http.HTTPFlow(client, server)
    flow.request = http.Request.make(
        req["method"], url, base64.b64decode(req.get("body_b64", "")), headers
    )
    flow.request.timestamp_start = now
    if document.get("response"):
        resp = document["response"]
        flow.response = http.Response.make(
            int(resp["status"]),
            base64.b64decode(resp.get("body_b64", "")),
            [(k.encode(), v.encode()) for k, v in resp.get("headers", [])],
        )
        flow.response.timestamp_start = now
    return flow


def write_flows(source: TextIO, target: BinaryIO) -> int:
    """Write one flow per JSON line of ``source``; flushes after each flow."""
    writer = io.FlowWriter(target)
    count = 0
    for line in source:
        if line.strip():
            writer.add(dict_to_flow(json.loads(line)))
            target.flush()
            count += 1
    return count


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("read", "write"):
        sys.stderr.write("usage: _flowfile.py read FILE | write FILE\n")
        return 2
    if argv[1] == "read":
        with open(argv[2], "rb") as source:
            read_flows(source, sys.stdout)
    else:
        with open(argv[2], "wb") as target:
            write_flows(sys.stdin, target)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
