"""Names a package imports on first use (PEP 562), so importing the package stays light.

A package whose names need heavy imports (the engine, the environments) lists where each lives::

    __getattr__, __dir__ = lazy.attributes(__name__, {"run_experiment": "run"})

and ``package.run_experiment`` imports ``package.run`` the first time it is read.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping


def attributes(
    package: str, module_of: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
      package: the package's ``__name__``.
      module_of: {name: submodule of ``package`` that defines it}.
    """

    def __getattr__(name: str):
        if name not in module_of:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)
        setattr(sys.modules[package], name, value)  # later reads skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *module_of})

    return __getattr__, __dir__
