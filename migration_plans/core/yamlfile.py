"""Load a YAML file into a frozen pydantic model, with errors that name file, line and field.

Every configuration file the toolkit reads (route tables, migration plans, field
mappings) goes through :func:`load_model`, so a user always sees
``routes.yaml:14: routes[2].upstream: unknown upstream 'catlog'`` rather than a
traceback.

    table = load_model(Path("routes.yaml"), RouteTable)

Files are small and plain: more than :data:`MAX_YAML_BYTES` is refused, and so is any
alias (``*name``, ``<<: *name``): a few nested aliases expand into billions of nodes
(the "billion laughs"), and no configuration here needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, StreamMark
from ruamel.yaml.events import AliasEvent

ModelT = TypeVar("ModelT", bound=pydantic.BaseModel)

Loc = tuple[int | str, ...]

MAX_YAML_BYTES = 1 << 20
"""The largest configuration file read (bytes); more is refused before parsing."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem found in a configuration file."""

    path: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """A configuration file is unreadable or invalid; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class _AliasRefused(Exception):
    def __init__(self, anchor: str, mark: StreamMark | None) -> None:
        super().__init__(anchor)
        self.anchor = anchor
        self.line = mark.line + 1 if mark is not None else None


class _NoAliasComposer(Composer):
    """Refuses the first alias before anything is expanded."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            raise _AliasRefused(str(event.anchor), event.start_mark)
        return super().compose_node(parent, index)


class SourceDocument:
    """A parsed YAML document that remembers the line of every mapping key and list item."""

    def __init__(self, path: Path, data: Any) -> None:
        self.path = path
        self.data = data

    @classmethod
    def read(cls, path: Path) -> SourceDocument:
        """Parse ``path``; raise :class:`ConfigError` with the line of a syntax error."""
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError([ConfigIssue(str(path), None, "", f"cannot read: {exc}")]) from exc
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path, *, max_bytes: int = MAX_YAML_BYTES) -> SourceDocument:
        """Parse YAML ``text`` that came from ``path``; no aliases, at most ``max_bytes``."""
        size = len(text.encode("utf-8"))
        if size > max_bytes:
            raise ConfigError([ConfigIssue(str(path), None, "", too_large(size, max_bytes))])
        yaml = YAML(typ="rt")
        yaml.Composer = _NoAliasComposer
        try:
            data = yaml.load(text)
        except _AliasRefused as exc:
            message = (
                f"YAML alias *{exc.anchor} is not allowed in configuration files (aliases can "
                "expand exponentially): write the value out"
            )
            raise ConfigError([ConfigIssue(str(path), exc.line, "", message)]) from None
        except MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else None
            message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
            raise ConfigError(
                [ConfigIssue(str(path), line, "", f"YAML syntax: {message}")]
            ) from exc
        if data is None:
            data = CommentedMap()
        return cls(path, data)

    def line_of(self, loc: Loc) -> int | None:
        """Best line number (1-based) for a pydantic error location."""
        node: Any = self.data
        line: int | None = _own_line(node)
        for part in loc:
            found = _child_line(node, part)
            if found is None:
                break
            node, child_line = found
            if child_line is not None:
                line = child_line
        return line

    def issue(self, loc: Loc, message: str) -> ConfigIssue:
        """A :class:`ConfigIssue` for ``loc`` in this document."""
        return ConfigIssue(str(self.path), self.line_of(loc), format_loc(loc), message)

    def validate(self, model: type[ModelT]) -> ModelT:
        """Validate the whole document as ``model``; every error carries its line."""
        try:
            return model.model_validate(to_plain(self.data))
        except pydantic.ValidationError as exc:
            raise ConfigError(
                [self.issue(tuple(err["loc"]), err["msg"]) for err in exc.errors()]
            ) from exc


def too_large(size: int, max_bytes: int) -> str:
    """The message for a configuration file over the size limit."""
    return f"file is {size} bytes, the limit is {max_bytes}"


def _own_line(node: Any) -> int | None:
    if isinstance(node, CommentedMap | CommentedSeq):
        return int(node.lc.line) + 1
    return None


def _child_line(node: Any, part: int | str) -> tuple[Any, int | None] | None:
    if isinstance(node, CommentedMap) and part in node:
        line = node.lc.key(part)[0] + 1 if part in node.lc.data else None
        return node[part], line
    if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
        line = node.lc.item(part)[0] + 1 if part in node.lc.data else None
        return node[part], line
    return None


def format_loc(loc: Loc) -> str:
    """Render a pydantic location as ``routes[2].upstream``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def to_plain(node: Any) -> Any:
    """Convert ruamel's round-trip containers into plain dicts and lists."""
    if isinstance(node, dict):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    return node


def load_model(path: Path, model: type[ModelT]) -> ModelT:
    """Read ``path`` and validate it as ``model``; raise :class:`ConfigError` naming file:line."""
    return SourceDocument.read(path).validate(model)
