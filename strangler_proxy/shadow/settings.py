"""Process-wide shadowing settings, read once from the environment (``STRANGLER_SHADOW_*``).

A leaf of the package: the proxy's :class:`~strangler_proxy.shadow.shadowing.Shadowing`,
the :class:`~strangler_proxy.shadow.engine.MirrorEngine` and the mirror sidecar all
read the same settings without importing each other.

    settings = ShadowSettings.from_env()
    settings.record_path()      # var/record/proxy-<pid of this process>.flows
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from strangler_proxy.shadow._shedding import ShedSettings
from strangler_proxy.shadow._wire import SCHEDULING
from strangler_proxy.shadow.store import DEFAULT_PREFIX

__all__ = ["DEFAULT_RECORD_FILE", "MODES", "ShadowSettings"]

MODES = ("process", "inline")
DEFAULT_RECORD_FILE = "var/record/proxy-{pid}.flows"


@dataclass(frozen=True)
class ShadowSettings:
    """Process-wide mirror settings (``STRANGLER_SHADOW_*``; the store at
    ``STRANGLER_SHADOW_REDIS_URL``, else ``STRANGLER_REDIS_URL``).

    ``mode``: ``process`` (a sidecar in scheduling class ``sched``, ``idle`` or
    ``normal``, at ``nice`` more niceness, fed through a buffer of ``buffer_bytes``)
    or ``inline`` (the engine in the proxy's event loop). ``record_file``
    (``STRANGLER_RECORD_FILE``) may hold ``{pid}``: each worker process records to
    its own file (see :meth:`record_path`).

    ``shedding``: the adaptive load shedder (:mod:`strangler_proxy.shadow._shedding`):
    ``STRANGLER_SHADOW_ADAPTIVE`` (``0`` turns it off), ``..._INTERVAL`` (seconds),
    ``..._LOAD_HIGH``, ``..._LOAD_LOW``, ``..._SMOOTHING``, ``..._RATE_BACKOFF``,
    ``..._RATE_STEP``, ``..._RATE_FLOOR``, ``..._RECOVER_AFTER`` (seconds),
    ``..._MIN_IN_FLIGHT``.
    """

    queue_size: int = 1000
    concurrency: int = 4
    timeout: float = 5.0
    max_request_bytes: int = 64 * 1024
    max_response_bytes: int = 1024 * 1024
    redis_url: str | None = None
    prefix: str = DEFAULT_PREFIX
    record_file: Path = Path(DEFAULT_RECORD_FILE)
    mode: str = "process"
    nice: int = 10
    sched: str = "idle"
    buffer_bytes: int = 1024 * 1024
    drain: float = 5.0
    shedding: ShedSettings = field(default_factory=ShedSettings)

    def record_path(self) -> Path:
        """The flow file of the calling process: ``{pid}`` becomes its process id now."""
        return Path(str(self.record_file).replace("{pid}", str(os.getpid())))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ShadowSettings:
        """The settings in ``environ`` (default: the process environment)."""
        env = os.environ if environ is None else environ

        def number(name: str, default: float) -> float:
            raw = env.get(f"STRANGLER_SHADOW_{name}")
            return float(raw) if raw else default

        return cls(
            queue_size=int(number("QUEUE", cls.queue_size)),
            concurrency=int(number("CONCURRENCY", cls.concurrency)),
            timeout=number("TIMEOUT", cls.timeout),
            max_request_bytes=int(number("MAX_REQUEST_BYTES", cls.max_request_bytes)),
            max_response_bytes=int(number("MAX_RESPONSE_BYTES", cls.max_response_bytes)),
            redis_url=env.get("STRANGLER_SHADOW_REDIS_URL")
            or env.get("STRANGLER_REDIS_URL")
            or None,
            prefix=env.get("STRANGLER_SHADOW_PREFIX", DEFAULT_PREFIX),
            record_file=Path(env.get("STRANGLER_RECORD_FILE") or cls.record_file),
            mode=_choice("MODE", env.get("STRANGLER_SHADOW_MODE") or cls.mode, MODES),
            nice=int(number("NICE", cls.nice)),
            sched=_choice("SCHED", env.get("STRANGLER_SHADOW_SCHED") or cls.sched, SCHEDULING),
            buffer_bytes=int(number("BUFFER_BYTES", cls.buffer_bytes)),
            drain=number("DRAIN", cls.drain),
            shedding=_shedding(env, number),
        )


def _shedding(env: Mapping[str, str], number: Callable[[str, float], float]) -> ShedSettings:
    default = ShedSettings()
    adaptive = env.get("STRANGLER_SHADOW_ADAPTIVE", "").strip().lower()
    if adaptive not in ("", "1", "0", "true", "false", "on", "off", "yes", "no"):
        raise ValueError(f"STRANGLER_SHADOW_ADAPTIVE={adaptive!r}: use 1 or 0")
    return ShedSettings(
        adaptive=adaptive not in ("0", "false", "off", "no"),
        **{
            name: number(name.upper(), getattr(default, name))
            for name in (
                "interval",
                "load_high",
                "load_low",
                "smoothing",
                "rate_backoff",
                "rate_step",
                "rate_floor",
                "recover_after",
                "min_in_flight",
            )
        },
    )


def _choice(name: str, raw: str, choices: tuple[str, ...]) -> str:
    value = raw.strip().lower()
    if value not in choices:
        raise ValueError(f"STRANGLER_SHADOW_{name}={raw!r}: use one of {', '.join(choices)}")
    return value
