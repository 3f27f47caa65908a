"""Read captured traffic: mitmproxy flow files (through ``.venv-mitm``) and HAR files.

Flow files are read by :mod:`strangler_proxy.shadow._flowfile` running under mitmproxy's own
interpreter (``STRANGLER_MITM_PYTHON``, default ``.venv-mitm/bin/python``), which
streams JSON lines back; HAR files (browsers, most capture tools) are read here.

    for exchange in read_capture(Path("capture.flows")):
        exchange.request.method, exchange.request.path, exchange.response
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse

__all__ = ["CaptureError", "CapturedExchange", "flowfile_script", "mitm_python", "read_capture"]

_REPO_ROOT = Path(__file__).resolve().parents[2]


class CaptureError(Exception):
    """A capture file that cannot be read (missing, malformed, no mitmproxy)."""


@dataclass(frozen=True)
class CapturedExchange:
    """One captured request with the response it got then (if recorded)."""

    request: CapturedRequest
    response: CapturedResponse | None = None
    origin: str = ""


def mitm_python() -> Path:
    """The interpreter that has mitmproxy installed (``make mitm`` builds it)."""
    configured = os.environ.get("STRANGLER_MITM_PYTHON")
    python = Path(configured) if configured else _REPO_ROOT / ".venv-mitm" / "bin" / "python"
    if not python.exists():
        raise CaptureError(f"{python} not found: run `make mitm` (mitmproxy's own virtualenv)")
    return python


def flowfile_script() -> Path:
    return Path(__file__).with_name("_flowfile.py")


def _from_line(document: dict[str, Any]) -> CapturedExchange:
    response = document.get("response")
    origin = f"{document.get('scheme', 'http')}://{document.get('host')}:{document.get('port')}"
    return CapturedExchange(
        CapturedRequest.from_dict(document["request"]),
        CapturedResponse.from_dict(response) if response else None,
        origin,
    )


def read_flows(path: Path) -> Iterator[CapturedExchange]:
    """Stream the HTTP flows of a mitmproxy flow file."""
    argv = [str(mitm_python()), "-I", str(flowfile_script()), "read", str(path)]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            yield _from_line(json.loads(line))
        error = process.stderr.read()
    if process.returncode:
        raise CaptureError(f"{path}: mitmproxy could not read it: {error.strip()[-500:]}")


def _har_body(text: str | None, encoding: str | None) -> bytes:
    if not text:
        return b""
    return base64.b64decode(text) if encoding == "base64" else text.encode()


def _har_headers(entries: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    # HTTP/2 pseudo-headers (":authority") are not headers to replay
    return tuple(
        (str(h["name"]), str(h["value"])) for h in entries if not str(h["name"]).startswith(":")
    )


def _har_entry(entry: dict[str, Any]) -> CapturedExchange:
    req, resp = entry["request"], entry.get("response") or {}
    url = urlsplit(req["url"])
    post = req.get("postData") or {}
    request = CapturedRequest(
        method=str(req["method"]).upper(),
        path=(url.path or "/") + (f"?{url.query}" if url.query else ""),
        headers=_har_headers(req.get("headers", [])),
        body=_har_body(post.get("text"), post.get("encoding")),
    )
    response = None
    if resp.get("status"):
        content = resp.get("content") or {}
        headers = _har_headers(resp.get("headers", []))
        response = CapturedResponse(
            int(resp["status"]),
            tuple((k, v) for k, v in headers if k.lower() != "content-encoding"),
            _har_body(content.get("text"), content.get("encoding")),
        )
    return CapturedExchange(request, response, f"{url.scheme}://{url.netloc}")


def read_har(path: Path) -> Iterator[CapturedExchange]:
    """The entries of a HAR file, in order."""
    try:
        document = json.loads(path.read_text(encoding="utf-8-sig"))
        entries = document["log"]["entries"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CaptureError(f"{path}: not a HAR file: {exc}") from exc
    for entry in entries:
        yield _har_entry(entry)


def read_capture(path: Path) -> Iterator[CapturedExchange]:
    """HAR (by extension or a leading ``{``) or a mitmproxy flow file."""
    if not path.exists():
        raise CaptureError(f"{path}: no such file")
    with path.open("rb") as handle:
        start = handle.read(4).lstrip(b"\xef\xbb\xbf")
    if path.suffix.lower() == ".har" or start.startswith(b"{"):
        return read_har(path)
    return read_flows(path)
