"""``install_as_litellm()``: run code written for LiteLLM's Python API on llmrelay.

After the call, ``import litellm`` (and the submodule paths frameworks import in practice,
such as ``litellm.types.utils`` or ``litellm.exceptions``) gives llmrelay, the way
``pymysql.install_as_MySQLdb()`` stands in for MySQLdb. It is for code that uses LiteLLM's
public API; LiteLLM's internals (provider configs, its logging object, proxy internals) are
not provided. Nothing happens at ``import llmrelay``: only this call touches ``sys.modules``.

Each submodule path is a small alias module whose names resolve lazily, first from the
llmrelay module that provides them, then from the ``llmrelay`` package itself, so installing
imports nothing heavy.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from typing import Any

__all__ = ["install_as_litellm", "SUBMODULES"]

#: ``litellm.<path>`` → the llmrelay modules its names come from, in lookup order (the
#: ``llmrelay`` package is always tried last). Modules that do not exist are skipped, so paths
#: provided by optional parts (caching, cost) appear once those parts exist.
SUBMODULES: dict[str, tuple[str, ...]] = {
    "types": ("llmrelay.types",),
    "types.utils": ("llmrelay.types", "llmrelay.litellm_types", "llmrelay.exceptions"),
    "types.llms": ("llmrelay.types", "llmrelay.litellm_types"),
    "types.llms.openai": ("llmrelay.types", "llmrelay.litellm_types"),
    "utils": ("llmrelay.utils", "llmrelay.types", "llmrelay.provider_info", "llmrelay.providers.registry"),
    "budget_manager": ("llmrelay.budget_manager",),
    "main": ("llmrelay.main",),
    "exceptions": ("llmrelay.exceptions",),
    "router": ("llmrelay.router",),
    "types.router": ("llmrelay.routing.policies", "llmrelay.router"),
    "integrations": ("llmrelay.integrations",),
    "integrations.custom_logger": ("llmrelay.integrations.custom_logger",),
    "caching": ("llmrelay.caching",),
    "caching.caching": ("llmrelay.caching",),
    "caching.in_memory_cache": ("llmrelay.caching.in_memory",),
    "caching.dual_cache": ("llmrelay.caching.in_memory",),
    "cost_calculator": ("llmrelay.cost",),
    "_logging": (),
}

#: Real llmrelay modules whose ``litellm.`` path has alias children: the children are also set
#: as their attributes, so attribute chains such as ``litellm.types.utils.ModelResponse`` work.
_ATTACH_TO_REAL = ("types",)

#: LiteLLM's logger names, all pointing at llmrelay's logger.
_LOGGERS = ("verbose_logger", "verbose_router_logger", "verbose_proxy_logger")


class _AliasModule(types.ModuleType):
    """``litellm.<path>``: looks names up in its source modules, then in ``llmrelay``."""

    def __init__(self, name: str, sources: tuple[str, ...]) -> None:
        super().__init__(name)
        self.__dict__["_sources"] = sources
        self.__dict__["__path__"] = []  # a package, so ``litellm.types.utils`` can be found below it

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name in _LOGGERS:
            return logging.getLogger("llmrelay")
        for source in self._sources:
            module = importlib.import_module(source)
            if name in getattr(module, "__all__", ()) or name in module.__dict__:
                return getattr(module, name)
        import llmrelay

        try:
            return getattr(llmrelay, name)
        except AttributeError:
            raise AttributeError(
                f"module {self.__name__!r} (llmrelay standing in for LiteLLM) has no attribute {name!r}; "
                "llmrelay provides LiteLLM's public API, not its internals"
            ) from None

    def __dir__(self) -> list[str]:
        names = set(super().__dir__())
        for source in self._sources:
            names.update(getattr(importlib.import_module(source), "__all__", ()))
        return sorted(names)


def _exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _present_types_as_litellm() -> None:
    """Response classes report ``litellm.types.utils`` as their module, as LiteLLM's do.

    Frameworks recognise chunks by it (DSPy's streamify checks ``type(chunk).__module__``),
    and DSPy's disk cache only unpickles classes from ``litellm.types.*``; pickles made
    now name ``litellm.types.utils.X``, which resolves to the same class while installed.
    """
    from . import types as relay_types

    for name in relay_types.__all__:
        value = getattr(relay_types, name)
        if isinstance(value, type) and value.__module__ == relay_types.__name__:
            value.__module__ = "litellm.types.utils"


def install_as_litellm() -> None:
    """Make ``import litellm`` (and its common submodule paths) give llmrelay.

    Call it before importing a framework built on LiteLLM (smolagents, DSPy, langchain-litellm,
    instructor, ...). Idempotent. Raises ``RuntimeError`` if the real LiteLLM is already
    imported, since objects from it would then mix with llmrelay's.
    """
    import llmrelay

    current = sys.modules.get("litellm")
    if current is llmrelay:
        return
    if current is not None:
        raise RuntimeError(
            "the real litellm is already imported; call llmrelay.install_as_litellm() before "
            "anything imports litellm"
        )
    sys.modules["litellm"] = llmrelay
    _present_types_as_litellm()
    for path, sources in SUBMODULES.items():
        present = tuple(s for s in sources if _exists(s))
        if sources and not present:
            continue
        alias = _AliasModule(f"litellm.{path}", present)
        sys.modules[alias.__name__] = alias
        parent, _, child = path.rpartition(".")
        if parent:
            parent_module = sys.modules.get(f"litellm.{parent}")
            if isinstance(parent_module, _AliasModule):
                parent_module.__dict__[child] = alias
        elif child not in llmrelay.__dict__ and not _exists(f"llmrelay.{child}"):
            # ``litellm.utils.x`` as an attribute chain; real llmrelay submodules keep their name.
            setattr(llmrelay, child, alias)
    for name in _ATTACH_TO_REAL:
        real = importlib.import_module(f"llmrelay.{name}")
        for path, alias in list(sys.modules.items()):
            head, _, child = path.rpartition(".")
            if head == f"litellm.{name}" and isinstance(alias, _AliasModule):
                real.__dict__.setdefault(child, alias)
