"""The optional compiled build: a distribution's hot modules through mypyc.

hypercorn-protocols (its state machines) and hypercorn-workers (the driver core) use this
same hook (packages/workers/hatch_build.py is a link to this file); each names the modules
it compiles, relative to ``src/``, in its pyproject.toml::

    [tool.hatch.build.targets.wheel.hooks.custom]
    path = "hatch_build.py"
    compile = ["hypercorn/protocol/h11.py", ...]

Building with ``HYPERCORN_MYPYC=1`` in the environment (``HYPERCORN_MYPYC=1 pip install
./packages/protocols``, or ``pip install --no-binary :all:`` from the sdists) compiles
them to C extensions with mypyc and makes a platform wheel; the Python sources stay in the
wheel beside them. Without the variable (the default, and every editable install) nothing
happens here and the wheel is pure Python. Both builds behave the same; the compiled one
does the per-request work about twice as fast (see docs/performance.md).

Third-party packages are not installed for the compilation: their types are taken as
``Any``, so the compiled code never checks a value that h11, h2, wsproto or httptools hand
over against what their annotations claim (h11's ``Data.data`` is a bytearray, for one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _enabled() -> bool:
    return os.environ.get("HYPERCORN_MYPYC", "") not in ("", "0")


class MypycBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    """Compiles the hook's ``compile`` list when ``HYPERCORN_MYPYC`` is set (see the
    module)."""

    PLUGIN_NAME = "custom"

    def dependencies(self) -> list[str]:
        return ["mypy>=1.15", "setuptools>=70"] if _enabled() else []

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if not _enabled() or self.target_name != "wheel" or version == "editable":
            return
        modules = self.config.get("compile", [])
        if not modules:
            raise RuntimeError("the mypyc hook needs a 'compile' list of modules")
        src = Path(self.root) / "src"
        work = Path(tempfile.mkdtemp(prefix="hypercorn-mypyc-"))
        self._work = work
        shutil.copytree(src / "hypercorn", work / "hypercorn")
        command = [
            sys.executable,
            "-m",
            "mypyc",
            "--explicit-package-bases",
            "--ignore-missing-imports",
            *modules,
        ]
        env = dict(os.environ)
        sibling = Path(self.root).parent / "protocols" / "src"
        if sibling.is_dir() and sibling.resolve() != src.resolve():
            # hypercorn-workers: check against the protocols of this tree, not against an
            # older hypercorn-protocols the build may find installed.
            env["MYPYPATH"] = str(sibling)
        result = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, check=False
        )
        if result.returncode:
            raise RuntimeError(f"mypyc failed:\n{result.stdout}\n{result.stderr}")
        built = sorted(
            path
            for path in work.rglob("*")
            if path.suffix in (".so", ".pyd") and "build" not in path.relative_to(work).parts
        )
        if not built:
            raise RuntimeError("mypyc built no extension module")
        for path in built:
            build_data["force_include"][str(path)] = str(path.relative_to(work))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        work = getattr(self, "_work", None)
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
