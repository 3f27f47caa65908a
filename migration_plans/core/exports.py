"""Public names of a package, imported from their module on first use (PEP 562).

Used where an eager ``__init__`` would hurt: the proxy's subpackages use each other's
modules (the route table's loader builds a router, the router reads the route models,
both raise the edge's errors), so importing their modules eagerly would re-enter a
package still being imported; the phase-replay plugin's package is imported by every
pytest run and must not load the stack until a test uses it. Such an ``__init__`` names
its exports statically for type checkers and resolves them lazily at run time, as
Pydantic's own ``__init__`` does::

    if TYPE_CHECKING:
        from strangler_proxy.upstream.forwarder import Forwarder
    else:
        __getattr__ = lazy_exports(__name__, {"forwarder": ["Forwarder"]})
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module

__all__ = ["lazy_exports"]


def lazy_exports(package: str, modules: Mapping[str, Iterable[str]]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``modules`` maps a submodule to its exports."""
    source = {name: module for module, names in modules.items() for name in names}
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> object:
        module = source.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{module}"), name)
        namespace[name] = value  # the next lookup is a plain attribute
        return value

    return __getattr__
