"""Compare a primary response with a candidate's under a route's shadow rules.

Status codes, an allow-list of headers and the bodies are compared. JSON bodies
are diffed with deepdiff; everything else is compared by SHA-256. Rules come from
the route table's ``shadow.compare`` block (or from noise calibration):

- ``ignore_paths``: deepdiff paths, ``[*]`` matches any list index or dict key,
  e.g. ``root['results'][*]['updated_at']``;
- ``ignore_order``: ``True`` for every list, or the paths of the lists whose order
  does not matter (``root['results']``, wildcards allowed);
- ``numeric_tolerance``: absolute tolerance for numbers (``0`` means exact);
- ``headers``: response headers that must be equal (case-insensitive names).

Differences carry both values as text, redacted with the samples' rules
(:mod:`~strangler_proxy.shadow._redaction`): a secret field or header is reported as
differing with ``[REDACTED]`` on both sides, never with its values.

    rules = CompareRules(ignore_paths=("root['results'][*]['updated_at']",))
    result = compare_responses(primary, candidate, rules)
    result.matched, result.paths   # False, ("root['results'][0]['title']", ...)
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from deepdiff import DeepDiff

from strangler_proxy.shadow._redaction import REDACTED, is_secret_header, redact_value
from strangler_proxy.shadow.exchange import CapturedResponse

__all__ = [
    "BODY_HASH_PATH",
    "STATUS_PATH",
    "CapturedResponse",
    "CompareResult",
    "CompareRules",
    "Difference",
    "compare_responses",
    "generalize_path",
    "path_pattern",
]

STATUS_PATH = "status"
BODY_HASH_PATH = "body"
HEADER_PREFIX = "header:"


@dataclass(frozen=True)
class CompareRules:
    """Per-route comparison rules (the route table's ``shadow.compare`` block)."""

    ignore_paths: tuple[str, ...] = ()
    ignore_order: bool | tuple[str, ...] = False
    numeric_tolerance: float = 0.0
    headers: tuple[str, ...] = ()

    def with_ignored(self, paths: Iterable[str]) -> CompareRules:
        """These rules plus more ignore paths (e.g. learned noise)."""
        extra = tuple(path for path in paths if path not in self.ignore_paths)
        if not extra:
            return self
        return CompareRules(
            ignore_paths=self.ignore_paths + extra,
            ignore_order=self.ignore_order,
            numeric_tolerance=self.numeric_tolerance,
            headers=self.headers,
        )

    @cached_property
    def _ignore_regexes(self) -> tuple[re.Pattern[str], ...]:
        return tuple(path_pattern(path, prefix=True) for path in self.ignore_paths)

    @cached_property
    def _order_regexes(self) -> tuple[re.Pattern[str], ...]:
        if isinstance(self.ignore_order, bool):
            return ()
        return tuple(path_pattern(path) for path in self.ignore_order)

    def ignores(self, path: str) -> bool:
        """Whether a differing ``path`` (body or ``header:x``/``status``) is ignored."""
        return any(regex.match(path) for regex in self._ignore_regexes)

    def order_ignored_at(self, path: str) -> bool:
        if self.ignore_order is True:
            return True
        return any(regex.fullmatch(path) for regex in self._order_regexes)

    def to_dict(self) -> dict[str, Any]:
        order = (
            self.ignore_order if isinstance(self.ignore_order, bool) else list(self.ignore_order)
        )
        return {
            "ignore_paths": list(self.ignore_paths),
            "ignore_order": order,
            "numeric_tolerance": self.numeric_tolerance,
            "headers": list(self.headers),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CompareRules:
        order = data.get("ignore_order", False)
        return cls(
            ignore_paths=tuple(data.get("ignore_paths", ())),
            ignore_order=order if isinstance(order, bool) else tuple(order),
            numeric_tolerance=float(data.get("numeric_tolerance", 0.0)),
            headers=tuple(data.get("headers", ())),
        )

    @classmethod
    def coerce(cls, rules: Any) -> CompareRules:
        """Rules from a mapping or any object with the same attributes (a route model)."""
        if rules is None:
            return cls()
        if isinstance(rules, CompareRules):
            return rules
        if isinstance(rules, dict):
            return cls.from_dict(rules)
        return cls.from_dict(
            {
                name: getattr(rules, name)
                for name in cls.__dataclass_fields__
                if hasattr(rules, name)
            }
        )


@dataclass(frozen=True)
class Difference:
    """One differing field: where, what kind of change, and both values (as text)."""

    path: str
    kind: str
    primary: str
    candidate: str

    def to_dict(self) -> dict[str, str]:
        return {
            "path": self.path,
            "kind": self.kind,
            "primary": self.primary,
            "candidate": self.candidate,
        }


@dataclass(frozen=True)
class CompareResult:
    """Outcome of one comparison; ``paths`` are the differing fields, sorted."""

    differences: tuple[Difference, ...] = field(default_factory=tuple)

    @property
    def matched(self) -> bool:
        return not self.differences

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(sorted({difference.path for difference in self.differences}))

    def to_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "differences": [difference.to_dict() for difference in self.differences],
        }


def path_pattern(path: str, *, prefix: bool = False) -> re.Pattern[str]:
    """A regex for a deepdiff path where ``[*]`` matches any index or key.

    With ``prefix`` the pattern also matches everything below the path, so ignoring
    ``root['meta']`` ignores ``root['meta']['generated_at']`` too.
    """
    parts = [re.escape(part) for part in path.split("[*]")]
    body = r"\[[^\]]+\]".join(parts)
    tail = r"(?:\[.*)?$" if prefix else "$"
    return re.compile(f"^{body}{tail}")


_INDEX = re.compile(r"\[(?:\d+|'[^']*'|\"[^\"]*\")\]")


def generalize_path(path: str, *, keys: bool = False) -> str:
    """Replace list indices (and with ``keys`` every subscript) with ``[*]``."""
    if keys:
        return _INDEX.sub("[*]", path)
    return re.sub(r"\[\d+\]", "[*]", path)


def _short(value: Any, limit: int = 200) -> str:
    if value is None:
        return "null"
    text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _absent(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


def _diff_json(primary: Any, candidate: Any, rules: CompareRules) -> list[Difference]:
    options: dict[str, Any] = {
        "exclude_regex_paths": [regex.pattern for regex in rules._ignore_regexes],
        "ignore_numeric_type_changes": True,
        "threshold_to_diff_deeper": 0,  # always name the fields, never "root changed"
        "view": "tree",
        "verbose_level": 2,
    }
    if rules.numeric_tolerance > 0:
        options["math_epsilon"] = rules.numeric_tolerance
    if rules.ignore_order is True:
        options["ignore_order"] = True
    elif rules.ignore_order:
        options["ignore_order_func"] = lambda level: rules.order_ignored_at(level.path())
    tree = DeepDiff(primary, candidate, **options)
    differences = []
    for kind, levels in tree.items():
        for level in levels:
            path = level.path()
            left = "absent" if _absent(level.t1) else _short(redact_value(path, level.t1))
            right = "absent" if _absent(level.t2) else _short(redact_value(path, level.t2))
            differences.append(Difference(path, kind, left, right))
    return differences


def _digest(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _diff_bodies(
    primary: CapturedResponse, candidate: CapturedResponse, rules: CompareRules
) -> list[Difference]:
    if primary.body == candidate.body:
        return []  # the common case, and no rule can make equal bytes differ
    if primary.is_json and candidate.is_json:
        try:
            return _diff_json(primary.json_body(), candidate.json_body(), rules)
        except ValueError:
            pass  # a body that claims JSON but is not: compare the bytes
    if primary.body == candidate.body or rules.ignores(BODY_HASH_PATH):
        return []
    return [Difference(BODY_HASH_PATH, "body_hash", _digest(primary.body), _digest(candidate.body))]


def _diff_headers(
    primary: CapturedResponse, candidate: CapturedResponse, names: Sequence[str]
) -> list[Difference]:
    differences = []
    for name in names:
        left, right = primary.header(name), candidate.header(name)
        path = HEADER_PREFIX + name.lower()
        if left != right:
            if is_secret_header(name):  # that they differ is the finding, never the values
                left, right = (None if v is None else REDACTED for v in (left, right))
            differences.append(Difference(path, "header_changed", _short(left), _short(right)))
    return differences


def compare_responses(
    primary: CapturedResponse, candidate: CapturedResponse, rules: CompareRules | None = None
) -> CompareResult:
    """Compare ``candidate`` against ``primary``: status, allow-listed headers, body."""
    rules = rules or CompareRules()
    differences: list[Difference] = []
    if primary.status != candidate.status and not rules.ignores(STATUS_PATH):
        differences.append(
            Difference(STATUS_PATH, "status_changed", str(primary.status), str(candidate.status))
        )
    headers = [name for name in rules.headers if not rules.ignores(HEADER_PREFIX + name.lower())]
    differences += _diff_headers(primary, candidate, headers)
    differences += _diff_bodies(primary, candidate, rules)
    return CompareResult(tuple(sorted(differences, key=lambda d: (d.path, d.kind))))
