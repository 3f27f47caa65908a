"""Start, watch and stop the toolkit's real processes (uvicorn servers, Celery workers).

Used by ``strangler up``, ``strangler demo``, the phase-replay pytest plugin and the
project's own end-to-end tests, so every one of them starts a server the same way:
on a loopback port, waits on its health endpoint with a deadline, and always stops
it (SIGTERM, then SIGKILL after a grace period), process group included.

    with ManagedProcess.start(["python", "-m", "uvicorn", "app:app", "--port", "8001"],
                              name="monolith", health_url="http://127.0.0.1:8001/healthz"):
        ...
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType


class ProcessStartError(RuntimeError):
    """A managed process exited or did not become healthy before its deadline."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(
    condition: Callable[[], bool], *, timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    """Poll ``condition`` until it is true; :class:`TimeoutError` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what or condition}")
        time.sleep(interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET ``url`` answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    health_url: str | None = None
    _stopped: bool = field(default=False, repr=False)

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        *,
        name: str,
        health_url: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> ManagedProcess:
        """Start ``argv``; if ``health_url`` is given, wait until it answers 2xx."""
        log_dir = log_dir or Path(os.environ.get("STRANGLER_LOG_DIR", "var/log"))
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        child_env = {**os.environ, **(env or {})}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=child_env,
                cwd=cwd,
                start_new_session=True,
            )
        process = cls(name=name, popen=popen, log_path=log_path, health_url=health_url)
        if health_url is not None:
            try:
                process.wait_healthy(timeout)
            except BaseException:
                process.stop()
                raise
        return process

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines the process wrote, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_healthy(self, timeout: float) -> None:
        """Wait for the health URL; raise :class:`ProcessStartError` with the log tail."""
        assert self.health_url is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise ProcessStartError(
                    f"{self.name} exited with {self.popen.returncode} before it was healthy:\n"
                    f"{self.log_tail()}"
                )
            if http_ok(self.health_url):
                return
            time.sleep(0.05)
        raise ProcessStartError(
            f"{self.name} not healthy at {self.health_url} after {timeout:.0f}s:\n{self.log_tail()}"
        )

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole process group."""
        if self.alive():
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process group at once (fault injection)."""
        self.signal(signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._stopped = True

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, wait ``grace`` seconds, then SIGKILL; returns the exit code."""
        if self._stopped:
            return self.popen.returncode
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=10)
        # Children that outlived the leader (workers of a pool) go too.
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self._stopped = True
        return self.popen.returncode

    def __enter__(self) -> ManagedProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def uvicorn_argv(
    app: str, port: int, *, factory: bool = False, host: str = "127.0.0.1"
) -> list[str]:
    """The command line that serves ASGI ``app`` (``module:attr``) with uvicorn."""
    argv = [sys.executable, "-m", "uvicorn", app, "--host", host, "--port", str(port)]
    argv += ["--no-access-log", "--log-level", "warning"]
    if factory:
        argv.append("--factory")
    return argv


@contextmanager
def running(
    argv: Sequence[str], *, name: str, health_url: str | None = None, **kwargs: object
) -> Iterator[ManagedProcess]:
    """Context manager form of :meth:`ManagedProcess.start`."""
    process = ManagedProcess.start(argv, name=name, health_url=health_url, **kwargs)  # type: ignore[arg-type]
    try:
        yield process
    finally:
        process.stop()
