"""Load a route table (parse, validate, compile) and keep the live one current.

:func:`load_table` fails fast with :class:`ConfigError` listing every issue as
``file:line: field: message``; a file over ``max_bytes`` or with YAML aliases is
refused before it is expanded (:mod:`migration_plans.core.yamlfile`).
:class:`TableHolder` owns the table a proxy serves: ``reload()`` swaps in a new one
only when it is valid, otherwise keeps the last good table and records the error;
:meth:`TableHolder.watch` polls the file for changes. On a running proxy the file is
read and parsed in a thread (:meth:`TableHolder.reload_async`, or :meth:`~TableHolder.load_file`
then :meth:`~TableHolder.commit`): only the swap happens on the event loop.

    holder = TableHolder(load_table(Path("routes.yaml")))
    holder.reload()  # -> True when a new table is serving
    await holder.reload_async()  # the same, parsed off the event loop
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from migration_plans.core.yamlfile import (
    MAX_YAML_BYTES,
    ConfigError,
    ConfigIssue,
    SourceDocument,
    too_large,
)
from strangler_proxy.routetable.model import RouteTable
from strangler_proxy.routetable.validation import PhaseRules, check_table
from strangler_proxy.routing.matcher import Router

log = logging.getLogger("strangler.proxy")


@dataclass(frozen=True)
class LoadedTable:
    """A validated table, compiled for matching, with where it came from."""

    table: RouteTable
    router: Router
    source: str
    sha256: str
    loaded_at: float = field(default_factory=time.time)

    @property
    def hash(self) -> str:
        return self.sha256[:12]

    @property
    def version(self) -> str:
        """The file's ``version`` label, else the hash."""
        return str(self.table.version) if self.table.version is not None else self.hash


def parse_table(
    text: str,
    path: Path,
    phase_rules: PhaseRules | None = None,
    *,
    sha256: str | None = None,
    max_bytes: int = MAX_YAML_BYTES,
) -> LoadedTable:
    """Validate YAML ``text`` read from ``path``.

    ``sha256``: the hash of the file's bytes when the caller read them (default: the hash
    of ``text`` encoded as UTF-8).
    """
    source = SourceDocument.parse(text, path, max_bytes=max_bytes)
    table = source.validate(RouteTable)
    issues = check_table(table, source, phase_rules)
    if issues:
        raise ConfigError(issues)
    digest = sha256 or hashlib.sha256(text.encode("utf-8")).hexdigest()
    return LoadedTable(table, Router(table), str(path), digest)


def load_table(
    path: Path, phase_rules: PhaseRules | None = None, *, max_bytes: int = MAX_YAML_BYTES
) -> LoadedTable:
    """Read and validate ``path``; :class:`ConfigError` with every issue otherwise.

    The table's ``sha256`` is the hash of the file's bytes (as the control plane hashes
    the route file it writes). A file over ``max_bytes`` is refused unread.
    """
    data = _read(path, max_bytes)
    return _parse(data, hashlib.sha256(data).hexdigest(), path, phase_rules, max_bytes)


def _read(path: Path, max_bytes: int = MAX_YAML_BYTES) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from exc
    if len(data) > max_bytes:
        size = max(len(data), _size(path))
        raise ConfigError([ConfigIssue(str(path), None, "", too_large(size, max_bytes))])
    return data


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _parse(
    data: bytes, digest: str, path: Path, phase_rules: PhaseRules | None, max_bytes: int
) -> LoadedTable:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from exc
    return parse_table(text, path, phase_rules, sha256=digest, max_bytes=max_bytes)


@dataclass(frozen=True)
class ReloadError:
    """Why the last reload was refused.

    ``sha256``: the hash of the refused file's bytes (None when it could not be read), so
    a proxy can name the table it refuses when it NACKs.
    """

    at: float
    issues: tuple[str, ...]
    sha256: str | None = None


@dataclass(frozen=True)
class LoadedFile:
    """What :meth:`TableHolder.load_file` found: a valid table, or why the file is refused.

    ``sequence`` orders loads: a load older than the last one committed is ignored.
    """

    sequence: int
    stamp: tuple[int, int, int] | None
    loaded: LoadedTable | None
    issues: tuple[str, ...] = ()
    sha256: str | None = None


Listener = Callable[[LoadedTable | None, ReloadError | None], None]
"""Called after every reload that changes something: ``(table, None)`` a new table serves;
``(None, error)`` the file was refused; ``(None, None)`` a refused file was put back to
the table serving (the error is cleared)."""


class TableHolder:
    """The live table of one proxy: swapped atomically, only ever for a valid one."""

    def __init__(
        self,
        current: LoadedTable,
        *,
        phase_rules: PhaseRules | None = None,
        check: Callable[[LoadedTable], list[str]] | None = None,
        max_bytes: int = MAX_YAML_BYTES,
    ) -> None:
        self.current = current
        self.path = Path(current.source)
        self.generation = 1
        self.last_error: ReloadError | None = None
        self.phase_rules = phase_rules
        self.check = check
        self.max_bytes = max_bytes
        self.listeners: list[Listener] = []
        self._stamp = _stamp(self.path)
        self._sequence = itertools.count(1)
        self._committed = 0
        self._lock: asyncio.Lock | None = None

    def reload(self) -> bool:
        """Load the file again; True when a different valid table now serves."""
        return self.commit(self.load_file())

    async def reload_async(self) -> bool:
        """:meth:`reload` with the file read and parsed in a thread (one at a time)."""
        self._lock = self._lock or asyncio.Lock()
        async with self._lock:
            return self.commit(await asyncio.to_thread(self.load_file))

    def load_file(self) -> LoadedFile:
        """Read and validate the file, changing nothing (safe in any thread)."""
        sequence, stamp, digest = next(self._sequence), _stamp(self.path), None
        try:
            data = _read(self.path, self.max_bytes)
            digest = hashlib.sha256(data).hexdigest()
            loaded = _parse(data, digest, self.path, self.phase_rules, self.max_bytes)
            problems = self.check(loaded) if self.check else []
            if problems:
                raise ConfigError([ConfigIssue(str(self.path), None, "", p) for p in problems])
        except ConfigError as exc:
            issues = tuple(str(issue) for issue in exc.issues)
            return LoadedFile(sequence, stamp, None, issues, digest)
        return LoadedFile(sequence, stamp, loaded, (), digest)

    def commit(self, found: LoadedFile) -> bool:
        """Serve what :meth:`load_file` found (on the serving thread); True when a new
        table serves. A load older than the last committed one changes nothing."""
        if found.sequence < self._committed:
            return False
        self._committed = found.sequence
        self._stamp = found.stamp
        if found.loaded is None:
            self._refuse(list(found.issues), found.sha256)
            return False
        loaded = found.loaded
        cleared = self.last_error is not None
        self.last_error = None
        if loaded.sha256 == self.current.sha256:
            if cleared:
                self._notify(None, None)
            return False
        self.current = loaded
        self.generation += 1
        log.info(
            "route table reloaded",
            extra={"event": "reload", "version": loaded.version, "hash": loaded.hash},
        )
        self._notify(loaded, None)
        return True

    def changed_on_disk(self) -> bool:
        """Whether the file changed (time, size or inode) since the last reload."""
        return _stamp(self.path) != self._stamp

    async def watch(self, interval: float = 0.5) -> None:
        """Poll the file and reload on change (run as a task; cancel to stop)."""
        while True:
            await asyncio.sleep(interval)
            try:
                if self.changed_on_disk():
                    await self.reload_async()
            except Exception:  # the watcher must outlive any one bad reload
                log.exception("route table watcher failed; still serving %s", self.current.hash)

    def _refuse(self, issues: list[str], digest: str | None) -> None:
        self.last_error = ReloadError(time.time(), tuple(issues), digest)
        log.error(
            "route table reload refused; still serving %s",
            self.current.hash,
            extra={"event": "reload_failed", "issues": issues},
        )
        self._notify(None, self.last_error)

    def _notify(self, loaded: LoadedTable | None, error: ReloadError | None) -> None:
        for listener in self.listeners:
            listener(loaded, error)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
