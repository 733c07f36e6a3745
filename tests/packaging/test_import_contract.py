"""The import contract in pyproject.toml really fails when a layer imports upwards.

Each case lays out a small ``hypercorn`` namespace in a temporary directory, runs
import-linter on it with the project's own contracts, and checks the verdict. The checkout's
editable portions are removed from ``sys.path`` in the child process so that only the
temporary tree is analysed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]

# A minimal tree that keeps every contract: one module per layer, imports pointing down.
CLEAN_TREE = {
    "__main__.py": "import hypercorn.run\n",
    "run.py": "import hypercorn.supervisor\n",
    "supervisor/__init__.py": "import multiprocessing\nimport hypercorn.config\n",
    "asyncio/__init__.py": "import asyncio\nimport hypercorn.config\nimport hypercorn.driver\n",
    "trio/__init__.py": "import hypercorn.utils\nimport hypercorn.middleware\n",
    "middleware/__init__.py": "import hypercorn.app_wrappers\n",
    "driver/__init__.py": "import hypercorn.protocol\nimport hypercorn.app_wrappers\n",
    "app_wrappers.py": "import hypercorn.utils\n",
    "config.py": "import socket\nimport hypercorn.logging\n",
    "typing.py": "",
    "events.py": "",
    "logging.py": "import logging\n",
    "statsd.py": "import hypercorn.logging\n",
    "utils.py": "import hypercorn.config\n",
    "protocol/__init__.py": "import h11\nimport hypercorn.config\n",
    "_about/workers.py": "__version__ = '0'\n",
}

RUNNER = textwrap.dedent(
    """
    import sys
    sys.path[:] = [sys.argv[1]] + [p for p in sys.path if "/packages/" not in p]
    from importlinter.cli import lint_imports
    sys.exit(lint_imports(config_filename=sys.argv[2], no_cache=True))
    """
)


def _lint(tmp_path: Path, tree: dict[str, str]) -> subprocess.CompletedProcess[str]:
    for name, source in tree.items():
        path = tmp_path / "src" / "hypercorn" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[importlinter]", f"root_package = {contracts['root_package']}"]
    lines.append(f"include_external_packages = {contracts['include_external_packages']}")
    for index, contract in enumerate(contracts["contracts"]):
        lines.append(f"\n[importlinter:contract:{index}]")
        for key, value in contract.items():
            if isinstance(value, list):
                lines.append(f"{key} =\n" + "\n".join(f"    {item}" for item in value))
            else:
                lines.append(f"{key} = {value}")
    config = tmp_path / "importlinter.ini"
    config.write_text("\n".join(lines) + "\n")
    return subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "src"), str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_a_tree_that_points_down_is_kept(tmp_path: Path) -> None:
    result = _lint(tmp_path, CLEAN_TREE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "why"),
    [
        ("config.py", "import hypercorn.run\n", "protocols imports runner"),
        ("utils.py", "import hypercorn.asyncio\n", "protocols imports workers"),
        ("events.py", "import hypercorn.__main__\n", "protocols imports cli"),
        ("run.py", "import hypercorn.__main__\n", "runner imports cli"),
        ("supervisor/__init__.py", "import hypercorn.run\n", "supervisor imports run()"),
        ("supervisor/__init__.py", "import hypercorn.asyncio\n", "supervisor imports a worker"),
        ("run.py", "import trio\n", "the supervisor runs an event loop"),
        ("trio/__init__.py", "import hypercorn.run\n", "workers imports runner"),
        ("trio/__init__.py", "import hypercorn.asyncio\n", "one backend imports the other"),
        ("logging.py", "import asyncio\n", "the vocabulary imports an event loop"),
        ("app_wrappers.py", "import trio\n", "the app wrappers pick an event loop"),
        ("app_wrappers.py", "import hypercorn.middleware\n", "wrappers import middleware"),
        ("middleware/__init__.py", "import hypercorn.trio\n", "middleware imports a driver"),
        ("driver/__init__.py", "import asyncio\n", "the shared core picks an event loop"),
        ("driver/__init__.py", "import hypercorn.trio\n", "the core imports a backend"),
        ("driver/__init__.py", "import hypercorn.middleware\n", "the core imports middleware"),
        ("protocol/h11.py", "import time\n", "the protocol layer reads the clock"),
        ("protocol/h11.py", "import socket\n", "the protocol layer touches sockets"),
        ("protocol/h2.py", "from hypercorn import logging\n", "the protocol layer logs"),
        ("protocol/h2.py", "import hypercorn.run\n", "the protocol layer imports runner"),
        ("unlisted.py", "", "a module that no layer names"),
    ],
)
def test_a_violation_breaks_the_contract(
    tmp_path: Path, module: str, source: str, why: str
) -> None:
    result = _lint(tmp_path, {**CLEAN_TREE, module: source})
    assert result.returncode != 0, why
    assert "BROKEN" in result.stdout or "not named" in result.stdout, result.stdout
