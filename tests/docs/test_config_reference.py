"""The generated Config reference (docs/hooks/config_reference.py) and the real docs build."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from docs.hooks.config_reference import ConfigDocError, collect, render_reference
from hypercorn.config import Config

ROOT = Path(__file__).resolve().parents[2]

PROPERTY_OPTIONS = {"bind", "insecure_bind", "quic_bind", "root_path"}
READ_ONLY = {"log", "ssl_enabled"}
WRITE_ONLY = {"cert_reqs"}  # deprecated; its getter raises AttributeError
NOT_OPTIONS = READ_ONLY | WRITE_ONLY

SECTION = re.compile(r"^### `(\w+)` \{#\1\}$", re.MULTILINE)
TABLE_ROW = re.compile(r"^\| \[`(\w+)`\]\(#\1\) \|", re.MULTILINE)


def _public_options() -> set[str]:
    """The options, found from the class at runtime rather than from its source: the public
    annotated attributes and the settable properties, less the write-only ones."""
    annotated = {name for name in Config.__annotations__ if not name.startswith("_")}
    settable = {
        name
        for name, value in vars(Config).items()
        if isinstance(value, property) and value.fset is not None and not name.startswith("_")
    }
    return annotated | (settable - WRITE_ONLY)


def _sections(markdown: str) -> dict[str, str]:
    """Option name -> the text of its section (up to the next heading)."""
    parts = re.split(r"^(### .*)$", markdown, flags=re.MULTILINE)
    sections: dict[str, str] = {}
    for heading, body in zip(parts[1::2], parts[2::2], strict=True):
        match = SECTION.match(heading)
        if match:
            sections[match.group(1)] = body
    return sections


def test_reference_lists_exactly_the_public_options() -> None:
    for name in READ_ONLY:
        attribute = vars(Config)[name]
        assert isinstance(attribute, property)
        assert attribute.fset is None
    with pytest.raises(AttributeError):
        Config().cert_reqs  # noqa: B018 - reading is the point
    markdown = render_reference()
    expected = _public_options()
    assert expected >= PROPERTY_OPTIONS
    assert not NOT_OPTIONS & expected
    assert set(SECTION.findall(markdown)) == expected
    assert set(TABLE_ROW.findall(markdown)) == expected


def test_read_only_and_write_only_attributes_are_noted_not_tabled() -> None:
    markdown = render_reference()
    reference = collect()
    assert {item.name for item in reference.special} == NOT_OPTIONS
    for name in NOT_OPTIONS:
        assert name not in _sections(markdown)
        assert re.search(rf"^- `{name}` \((read|write)-only\): \S", markdown, re.MULTILINE)


def test_every_option_has_a_doc() -> None:
    sections = _sections(render_reference())
    for option in collect().options:
        assert option.doc.strip(), option.name
        assert option.doc in sections[option.name]


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("workers", "`1`"),
        ("bind", '`["127.0.0.1:8000"]`'),
        ("keep_alive_timeout", "`5.0`"),
        ("alpn_protocols", '`["h2", "http/1.1"]`'),
        ("logger_class", "`hypercorn.logging.Logger`"),
        ("application_path", "*no default*"),
    ],
)
def test_defaults_as_shown(name: str, shown: str) -> None:
    section = _sections(render_reference())[name]
    assert f"**Default:** {shown}\n" in section


def _load_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> type:
    source = "import ssl\n\n\nclass Sample:\n" + textwrap.indent(textwrap.dedent(body), "    ")
    path = tmp_path / "sample_config.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("sample_config", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sample_config", module)
    spec.loader.exec_module(module)
    cls = module.Sample
    assert isinstance(cls, type)
    return cls


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('a: int = 1\n"""Documented."""\nb: int = 2\n', "option b has no docstring"),
        ('a: int = 1\n""""""\n', "option a has no docstring"),
        ("c = 3\n", "c is a public class attribute without a type annotation"),
        (
            (
                "@property\ndef p(self) -> int:\n    return 1\n"
                "@p.setter\ndef p(self, value: int) -> None:\n    pass\n"
            ),
            "option p has no docstring",
        ),
    ],
)
def test_undocumented_options_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, problem: str
) -> None:
    cls = _load_class(tmp_path, monkeypatch, body)
    with pytest.raises(ConfigDocError, match=re.escape(problem)):
        render_reference(cls)


@pytest.mark.parametrize(
    ("body", "name", "type_", "default"),
    [
        ('a: str = "x"\n"""Doc."""\n', "a", "str", '"x"'),
        ('a: str = \'say "hi"\'\n"""Doc."""\n', "a", "str", "'say \"hi\"'"),
        ('a: list[str] = ["h2"]\n"""Doc."""\n', "a", "list[str]", '["h2"]'),
        ('a: dict[str, int] | None = None\n"""Doc."""\n', "a", "dict[str, int] | None", "None"),
        ('a: type = ssl.SSLContext\n"""Doc."""\n', "a", "type", "ssl.SSLContext"),
        (
            'a: ssl.VerifyMode = ssl.CERT_NONE\n"""Doc."""\n',
            "a",
            "ssl.VerifyMode",
            "ssl.VerifyMode.CERT_NONE",
        ),
        ('a: str\n"""Doc."""\n', "a", "str", None),
        (
            'def __init__(self) -> None:\n    self.a = [1]\na: list[int] = []\n"""Doc."""\n',
            "a",
            "list[int]",
            "[1]",
        ),
    ],
)
def test_types_and_defaults_from_source_and_instance(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    name: str,
    type_: str,
    default: str | None,
) -> None:
    options = {
        option.name: option for option in collect(_load_class(tmp_path, monkeypatch, body)).options
    }
    assert options[name].type == type_
    assert options[name].default == default
    assert options[name].doc == "Doc."


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ('@property\ndef r(self) -> int:\n    """Read me."""\n    return 1\n', "read-only"),
        (
            (
                '@property\ndef w(self) -> int:\n    """Write me."""\n    raise AttributeError\n'
                "@w.setter\ndef w(self, value: int) -> None:\n    pass\n"
            ),
            "write-only",
        ),
        (
            'def _set(self, value: int) -> None:\n    """Write me."""\nw = property(None, _set)\n',
            "write-only",
        ),
    ],
)
def test_read_only_and_write_only_properties_are_not_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str, kind: str
) -> None:
    reference = collect(_load_class(tmp_path, monkeypatch, body))
    assert reference.options == []
    [item] = reference.special
    assert item.kind == kind
    assert item.doc in {"Read me.", "Write me."}
    assert f"({kind}): {item.doc}" in render_reference(_load_class(tmp_path, monkeypatch, body))


def test_cross_references_become_links_or_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = (
        'a: int = 1\n"""See :attr:`b`, :attr:`Sample.b`, :attr:`Other.b`,'
        ' :class:`~ssl.SSLContext` and :func:`os.\n    getpid`."""\nb: int = 2\n"""Doc."""\n'
    )
    options = {
        option.name: option for option in collect(_load_class(tmp_path, monkeypatch, body)).options
    }
    assert options["a"].doc == (
        "See [`b`](#b), [`b`](#b), `Other.b`, `SSLContext` and `os.getpid()`."
    )


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=50,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = (site / "configuration" / "index.html").read_text(encoding="utf-8")
    assert "keep_alive_timeout" in page
    assert "config-reference" not in page
    assert not (site / "hooks").exists()
