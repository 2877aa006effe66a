"""Old module names that keep working after a module moved: `import old.name` gives the new module.

A restructuring moves modules (`hdcid.train` became the package `hdcid.training`); code written
against the old names should keep importing without a copy of the module under its old name.
`install_aliases({"hdcid.train": "hdcid.training"})` puts one finder on `sys.meta_path` that
answers for the old names:

- lazily: nothing is imported when the alias is installed, only when the old name is imported;
- as the same object: `import hdcid.train` binds the `hdcid.training` module itself (one set
  of globals, one class identity), and `sys.modules["hdcid.train"] is sys.modules["hdcid.training"]`;
- for submodules too: with `"toc.old": "toc.new"`, `toc.old.part` is `toc.new.part`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Mapping
from types import ModuleType


class _AliasLoader(importlib.abc.Loader):
    """Loads an old name by importing the new one and putting that module in its place."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None  # a throw-away placeholder; exec_module swaps in the real module

    def exec_module(self, module: ModuleType) -> None:
        # The import system returns whatever sys.modules holds under the old name once this
        # returns, so the target module is bound unchanged (its __spec__ and __name__ stay its own).
        sys.modules[module.__name__] = importlib.import_module(self.target)


class AliasFinder(importlib.abc.MetaPathFinder):
    """Maps old dotted module names (and everything below them) to new ones."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}

    def target_of(self, name: str) -> str | None:
        """The new name for `name`, or None when no alias covers it (the longest prefix wins)."""
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            old = ".".join(parts[:cut])
            if old in self.aliases:
                return ".".join([self.aliases[old], *parts[cut:]])
        return None

    def find_spec(self, fullname, path=None, target=None):  # noqa: ARG002 - the finder protocol
        new = self.target_of(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _AliasLoader(new))


_FINDER = AliasFinder()


def install_aliases(aliases: Mapping[str, str]) -> None:
    """Let each old module name in `aliases` import as its new name (idempotent).

    Raises ValueError when an old name is already aliased to a different module, or when an
    alias points at itself.
    """
    for old, new in aliases.items():
        if old == new or new.startswith(old + "."):
            raise ValueError(f"module alias {old!r} -> {new!r} points into itself")
        known = _FINDER.aliases.get(old)
        if known is not None and known != new:
            raise ValueError(f"module {old!r} is already an alias of {known!r}, not {new!r}")
        _FINDER.aliases[old] = new
    if _FINDER not in sys.meta_path:
        # First, so an alias wins over a stale file left under the old name.
        sys.meta_path.insert(0, _FINDER)


def installed_aliases() -> dict[str, str]:
    """A copy of the old → new table currently in force."""
    return dict(_FINDER.aliases)
