"""Path templates: ``/api/v1/products/{id}``, ``{id:int}``, ``{rest:path}``, and prefixes.

A template is parsed once into segment patterns; it compiles to a regular expression
for matching and answers :meth:`PathTemplate.covers` (does every path this template
matches also match that one?), which the validator uses to find unreachable routes.

    template = PathTemplate.parse("/api/v1/products/{id:int}/")
    template.match("/api/v1/products/42/") == {"id": "42"}
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from strangler_proxy.edge.errors import BadPath
from strangler_proxy.routing.normalize import normalize_path

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::(str|int|path))?\}")
_PATTERNS = {"str": "[^/]+", "int": "[0-9]+", "path": ".*"}


@dataclass(frozen=True, slots=True)
class Segment:
    """One path segment of a template: a literal, or a ``str``/``int`` parameter."""

    kind: str  # "literal", "str" or "int"
    value: str = ""

    def covers(self, other: Segment) -> bool:
        """True when every segment ``other`` matches is matched by this one too."""
        if self.kind == "literal":
            return other.kind == "literal" and other.value == self.value
        if other.kind == "literal":
            return bool(other.value) and (self.kind == "str" or other.value.isdigit())
        return self.kind == "str" or other.kind == "int"


@dataclass(frozen=True, slots=True)
class PathTemplate:
    """A parsed template: fixed segments, then optionally a tail of at least ``tail_min``."""

    text: str
    segments: tuple[Segment, ...]
    tail_min: int | None  # None: no tail; 0: a prefix; 1: a trailing {name:path}
    pattern: re.Pattern[str]

    @classmethod
    def parse(cls, text: str, *, prefix: bool = False) -> PathTemplate:
        """Parse ``text``; :class:`ValueError` with a readable reason if malformed."""
        if not text.startswith("/"):
            raise ValueError("a path template must start with '/'")
        parts = text.split("/")[1:]
        if prefix and parts[-1] == "":
            parts = parts[:-1]
        segments: list[Segment] = []
        regex = ""
        names: set[str] = set()
        tail_min: int | None = 0 if prefix else None
        for position, part in enumerate(parts):
            segment, piece = _parse_segment(part, names)
            if segment is None:
                if prefix or position != len(parts) - 1:
                    raise ValueError("a {name:path} parameter must be the last segment of a path")
                tail_min = 1
            else:
                segments.append(segment)
            regex += "/" + piece
        regex += "(?:/.*)?" if prefix else ""
        _check_literals(text, segments)
        return cls(text, tuple(segments), tail_min, re.compile(regex or "/"))

    def match(self, path: str) -> dict[str, str] | None:
        """The parameters if ``path`` (normalised) matches, else None."""
        found = self.pattern.fullmatch(path)
        return None if found is None else found.groupdict()

    def covers(self, other: PathTemplate) -> bool:
        """True when every path ``other`` matches is also matched by this template."""
        mine, theirs = len(self.segments), len(other.segments)
        if self.tail_min is None:
            return (
                other.tail_min is None
                and mine == theirs
                and all(a.covers(b) for a, b in zip(self.segments, other.segments, strict=True))
            )
        shortest = theirs + (other.tail_min or 0)
        return (
            theirs >= mine
            and shortest >= mine + self.tail_min
            and all(a.covers(b) for a, b in zip(self.segments, other.segments[:mine], strict=True))
        )

    def sample(self) -> str:
        """A concrete path this template matches (for reviewable diffs)."""
        parts = [s.value if s.kind == "literal" else "1" for s in self.segments]
        if self.tail_min == 1:
            parts.append("1")
        return "/" + "/".join(parts)


def _parse_segment(part: str, names: set[str]) -> tuple[Segment | None, str]:
    found = _PARAM.fullmatch(part)
    if found is None:
        if "{" in part or "}" in part:
            raise ValueError(
                f"malformed parameter in segment {part!r}: use {{name}} or {{name:int}}"
            )
        return Segment("literal", part), re.escape(part)
    name, kind = found.group(1), found.group(2) or "str"
    if name in names:
        raise ValueError(f"parameter {name!r} appears twice")
    names.add(name)
    piece = f"(?P<{name}>{_PATTERNS[kind]})"
    return (None if kind == "path" else Segment(kind)), piece


def _check_literals(text: str, segments: list[Segment]) -> None:
    literal = "/" + "/".join(s.value if s.kind == "literal" else "x" for s in segments)
    try:
        normal = normalize_path(literal)
    except BadPath as exc:
        raise ValueError(f"template {text!r} is not a normalised path: {exc.detail}") from exc
    if normal != literal:
        raise ValueError(f"template {text!r} is not in normalised form (would be {normal!r})")
