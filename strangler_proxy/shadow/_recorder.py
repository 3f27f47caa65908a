"""Record a sample of live traffic as a mitmproxy flow file (open in mitmweb, replay later).

The writer is :mod:`strangler_proxy.shadow._flowfile` under mitmproxy's interpreter, fed
redacted JSON lines on stdin by one background thread. :meth:`FlowRecorder.submit`
never blocks: it samples and puts the exchange on a bounded queue, dropping (and
counting) when the writer falls behind.

    with FlowRecorder(Path("var/capture.flows"), sample_rate=0.1, origin="http://monolith:8001") as rec:
        rec.submit(request, response)     # on the request path
"""

from __future__ import annotations

import json
import logging
import queue
import random
import subprocess
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

from strangler_proxy.shadow._captures import CaptureError, flowfile_script, mitm_python
from strangler_proxy.shadow._redaction import redact_request, redact_response
from strangler_proxy.shadow.exchange import CapturedRequest, CapturedResponse

__all__ = ["FlowRecorder"]

log = logging.getLogger("strangler.shadow.recorder")
_STOP = object()
_Item = tuple[CapturedRequest, CapturedResponse | None]


class FlowRecorder:
    """Writes sampled, redacted exchanges to a mitmproxy flow file."""

    def __init__(
        self,
        path: Path,
        *,
        origin: str = "http://127.0.0.1:80",
        sample_rate: float = 1.0,
        queue_size: int = 1000,
        sample: Callable[[], float] = random.random,
    ) -> None:
        self.path = path
        self.origin = urlsplit(origin)
        self.sample_rate = sample_rate
        self.stats: Counter[str] = Counter()
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._sample = sample
        self._process: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> FlowRecorder:
        """Start the mitmproxy writer process and the feeding thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(mitm_python()), "-I", str(flowfile_script()), "write", str(self.path)]
        # Its own session: a signal to the proxy's process group must not kill the writer
        # before the proxy has handed over what is queued; it ends at EOF on stdin.
        self._process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        self._thread = threading.Thread(target=self._feed, name="flow-recorder", daemon=True)
        self._thread.start()
        return self

    def submit(self, request: CapturedRequest, response: CapturedResponse | None) -> bool:
        """Queue one exchange (if sampled); False when sampled out or dropped."""
        if self.sample_rate < 1.0 and self._sample() >= self.sample_rate:
            self.stats["sampled_out"] += 1
            return False
        try:
            self._queue.put_nowait((request, response))
        except queue.Full:
            self.stats["dropped"] += 1
            return False
        return True

    def _line(self, request: CapturedRequest, response: CapturedResponse | None) -> str:
        document = {
            "scheme": self.origin.scheme or "http",
            "host": self.origin.hostname or "127.0.0.1",
            "port": self.origin.port or (443 if self.origin.scheme == "https" else 80),
            "request": redact_request(request).to_dict(),
            "response": redact_response(response).to_dict() if response else None,
        }
        return json.dumps(document) + "\n"

    def _feed(self) -> None:
        assert self._process is not None and self._process.stdin is not None
        while (item := self._queue.get()) is not _STOP:
            request, response = cast(_Item, item)
            try:
                self._process.stdin.write(self._line(request, response))
                self._process.stdin.flush()
                self.stats["recorded"] += 1
            except (BrokenPipeError, OSError):
                self.stats["dropped"] += 1
                log.exception("flow writer for %s is gone", self.path)

    def close(self, timeout: float = 10.0) -> int:
        """Write what is queued, stop the writer; returns how many flows were recorded."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
        if self._process is not None:
            assert self._process.stdin is not None and self._process.stderr is not None
            self._process.stdin.close()
            code = self._process.wait(timeout)
            error = self._process.stderr.read()
            self._process.stderr.close()
            self._process = None
            if code:
                raise CaptureError(f"flow writer for {self.path} failed: {error.strip()[-500:]}")
        return self.stats["recorded"]

    def __enter__(self) -> FlowRecorder:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
