"""The optional compiled build of hypercorn-workers: the hook of hypercorn-protocols.

Both distributions compile their hot modules with one hook, which lives in
``packages/protocols/hatch_build.py`` (it explains ``HYPERCORN_MYPYC``); this file loads it
from there. Built from an sdist, without the repository around it, there is nothing to load
and the wheel is pure Python, as it is by default.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_SHARED = Path(__file__).resolve().parent.parent / "protocols" / "hatch_build.py"

if _SHARED.is_file():
    _spec = importlib.util.spec_from_file_location("_hypercorn_mypyc_hook", _SHARED)
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_module)
    MypycBuildHook = _module.MypycBuildHook
else:

    class MypycBuildHook(BuildHookInterface):  # type: ignore[type-arg,no-redef]
        """No repository around: a pure Python build."""

        PLUGIN_NAME = "custom"
