"""The four distributions share one PEP 420 namespace and each wheel ships only its own files.

These tests build real wheels and sdists with hatchling and install the wheels into a fresh
virtual environment, so they prove what a user gets from ``pip install``.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

import hypercorn

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protocols", "workers", "runner", "cli")
DIST_NAMES = {name: f"hypercorn-{name}" for name in PACKAGES}


def _source_files(package: str) -> set[str]:
    """Paths (relative to src/) of every file a package's wheel must ship."""
    src = ROOT / "packages" / package / "src"
    return {
        path.relative_to(src).as_posix()
        for path in (src / "hypercorn").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_no_package_ships_a_namespace_init() -> None:
    for package in PACKAGES:
        assert not (ROOT / "packages" / package / "src" / "hypercorn" / "__init__.py").exists()


def test_namespace_spans_every_package() -> None:
    spec = importlib.util.find_spec("hypercorn")
    assert spec is not None
    assert spec.origin is None  # a namespace package has no __init__ module
    portions = {Path(p).resolve() for p in hypercorn.__path__}
    expected = {(ROOT / "packages" / p / "src" / "hypercorn").resolve() for p in PACKAGES}
    assert expected <= portions


def test_each_package_declares_its_distribution() -> None:
    for package in PACKAGES:
        meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
        project = meta["project"]
        assert project["name"] == DIST_NAMES[package]
        assert project["requires-python"] == ">=3.10"
        assert meta["tool"]["hatch"]["version"]["path"] == f"src/hypercorn/_about/{package}.py"
        assert (ROOT / "packages" / package / "CHANGELOG.md").is_file()


def test_each_layer_depends_on_the_one_below() -> None:
    below = {"workers": "protocols", "runner": "workers", "cli": "runner"}
    for package, lower in below.items():
        meta = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())
        deps = meta["project"]["dependencies"]
        assert any(dep.startswith(DIST_NAMES[lower]) for dep in deps), deps
        # No package reaches past the layer directly below it.
        for other in PACKAGES:
            if other not in (package, lower):
                assert not any(dep.startswith(DIST_NAMES[other]) for dep in deps), deps
    # The event-loop and HTTP/3 extras pass down the stack; the supervisor's own two
    # (watchfiles for the reloader, setproctitle) start at the runner.
    expected = {
        "workers": {"uvloop", "trio", "h3"},
        "runner": {"uvloop", "trio", "h3", "reload", "setproctitle"},
        "cli": {"uvloop", "trio", "h3", "reload", "setproctitle"},
    }
    for package, names in expected.items():
        extras = tomllib.loads((ROOT / "packages" / package / "pyproject.toml").read_text())[
            "project"
        ]["optional-dependencies"]
        assert set(extras) == names


def test_the_cli_declares_the_hypercorn_command() -> None:
    meta = tomllib.loads((ROOT / "packages" / "cli" / "pyproject.toml").read_text())
    assert meta["project"]["scripts"] == {"hypercorn": "hypercorn.__main__:main"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Build a wheel and an sdist of every package with hatchling."""
    out = tmp_path_factory.mktemp("dist")
    artifacts: dict[str, tuple[Path, Path]] = {}
    for package in PACKAGES:
        target = out / package
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-d", str(target)],
            cwd=ROOT / "packages" / package,
            check=True,
            capture_output=True,
            timeout=120,
        )
        (wheel,) = target.glob("*.whl")
        (sdist,) = target.glob("*.tar.gz")
        artifacts[package] = (wheel, sdist)
    return artifacts


@pytest.mark.slow
def test_each_wheel_holds_exactly_its_own_modules(built: dict[str, tuple[Path, Path]]) -> None:
    seen: dict[str, str] = {}
    for package, (wheel, _) in built.items():
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        shipped = {name for name in names if not name.split("/")[0].endswith(".dist-info")}
        assert shipped == _source_files(package), package
        # Pure Python unless HYPERCORN_MYPYC asks for the compiled protocols build.
        assert wheel.name.endswith("-py3-none-any.whl"), wheel.name
        assert "hypercorn/__init__.py" not in shipped
        for name in shipped:
            assert name not in seen, f"{name} is in both {seen.get(name)} and {package}"
            seen[name] = package


@pytest.mark.slow
def test_each_sdist_builds_its_package(built: dict[str, tuple[Path, Path]]) -> None:
    for package, (_, sdist) in built.items():
        with tarfile.open(sdist) as archive:
            names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
        assert "pyproject.toml" in names
        assert "CHANGELOG.md" in names
        if package in ("protocols", "workers"):
            assert "hatch_build.py" in names  # its build hook (the optional compiled build)
        shipped = {name[len("src/") :] for name in names if name.startswith("src/")}
        assert {n for n in shipped if not n.endswith("/")} >= _source_files(package)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_wheels_install_and_import_in_a_clean_venv(
    built: dict[str, tuple[Path, Path]], tmp_path: Path
) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True, symlinks=True)
    python = env / "bin" / "python"
    # With every extra, so that each module imports: hypercorn.trio (trio), the HTTP/3
    # modules (aioquic) and the accelerated HTTP/1.1 parser (httptools).
    extras = {"protocols": "[accel,h3]", "workers": "[trio,uvloop,h3]"}
    wheels = [f"{wheel}{extras.get(package, '')}" for package, (wheel, _) in built.items()]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *wheels],
        check=True,
        capture_output=True,
        timeout=240,
    )
    probe = """
import importlib, importlib.metadata, pathlib, sys, hypercorn
assert getattr(hypercorn, "__file__", None) is None
names = []
for portion in hypercorn.__path__:
    root = pathlib.Path(portion)
    assert root.is_relative_to(sys.prefix), root  # installed, not the checkout
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
for name in names:
    importlib.import_module(name)
for dist in ("protocols", "workers", "runner", "cli"):
    about = importlib.import_module(f"hypercorn._about.{dist}")
    assert importlib.metadata.version(f"hypercorn-{dist}") == about.__version__
print(" ".join(names))
"""
    result = subprocess.run(
        [str(python), "-I", "-c", probe],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    imported = set(result.stdout.split())
    # Every module of every wheel was imported from site-packages.
    for package in PACKAGES:
        for name in _source_files(package):
            if name.endswith(".py"):
                dotted = name[: -len(".py")].replace("/", ".").removesuffix(".__init__")
                assert dotted in imported, dotted
    # The wheels give the command, as a console script and as ``python -m hypercorn``.
    for command in ([str(env / "bin" / "hypercorn")], [str(python), "-m", "hypercorn"]):
        version = subprocess.run(
            [*command, "--version"],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )
        for package in PACKAGES:
            assert f"{DIST_NAMES[package]} " in version.stdout
        assert "not installed" not in version.stdout
