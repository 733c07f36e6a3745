"""MkDocs hook: generate the option reference of ``hypercorn.config.Config``.

``docs/configuration.md`` contains a marker line (``MARKER``); while the site is built, the
marker is replaced by the reference rendered from the source of ``Config``, so the published
options can never drift from the code.

Where the facts come from:

- the option names, their types and their documentation are read from the source of the
  class with ``ast``: every public option is an annotated class attribute followed by a
  string literal (its attribute docstring), or a property with a setter whose getter carries
  the docstring;
- the defaults are read from a freshly created ``Config()``, so defaults assigned in
  ``__init__`` (per-instance copies of lists, say) are shown correctly.

Public read-only properties (such as ``log``) and write-only ones (the deprecated
``cert_reqs``) are not options; they are listed in a short note after the table.

A public option without documentation, or a public class attribute without an annotation,
makes ``render_reference`` raise ``ConfigDocError``, which fails the build.
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import Files
from mkdocs.structure.pages import Page

from hypercorn.config import Config

MARKER = "<!-- config-reference -->"
"""The line in the page that the generated reference replaces."""

PAGE = "configuration.md"
"""The page (relative to ``docs_dir``) that holds the marker."""

SPECIAL_ANCHOR = "read-only-attributes"
"""The anchor of the note listing the read-only and write-only attributes."""


class ConfigDocError(Exception):
    """``Config`` cannot be documented: an option lacks a docstring or a type, say."""


@dataclass(frozen=True)
class Option:
    """One documented option, ready to render."""

    name: str
    type: str  # the annotation, as written in the source
    default: str | None  # None: the option has no default value
    doc: str  # Markdown


@dataclass(frozen=True)
class SpecialAttribute:
    """A public property that is not an option: read-only or write-only."""

    name: str
    kind: str
    doc: str


@dataclass(frozen=True)
class Reference:
    options: list[Option]
    special: list[SpecialAttribute]


_MISSING = object()


def _class_node(tree: ast.Module, name: str) -> ast.ClassDef:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise ConfigDocError(f"class {name} not found at the top level of its module")


def _source_text(source: str, node: ast.expr) -> str:
    segment = ast.get_source_segment(source, node)
    text = segment if segment is not None else ast.unparse(node)
    return " ".join(text.split())  # an annotation may span several lines


def _string_literal(node: ast.stmt | None) -> str | None:
    if (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    ):
        return inspect.cleandoc(node.value.value)
    return None


def _is_property_getter(node: ast.FunctionDef) -> bool:
    return any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)


def _format_default(value: object) -> str:
    """Show a default the way a user would write it in Python."""
    if isinstance(value, str):
        # Prefer double quotes (as in TOML and most style guides) unless the text has one.
        return f'"{value}"' if '"' not in value and repr(value)[1:-1] == value else repr(value)
    if isinstance(value, list | tuple):
        items = ", ".join(_format_default(item) for item in value)
        if isinstance(value, tuple):
            return f"({items},)" if len(value) == 1 else f"({items})"
        return f"[{items}]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_format_default(k)}: {_format_default(v)}" for k, v in value.items())
        return f"{{{pairs}}}"
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, enum.Enum) and value.name is not None:
        return f"{type(value).__module__}.{type(value).__qualname__}.{value.name}"
    return repr(value)


def collect(cls: type = Config) -> Reference:
    """Read the documented options of ``cls`` (``Config`` unless testing another class)."""
    source_file = inspect.getsourcefile(cls)
    if source_file is None:
        raise ConfigDocError(f"cannot find the source file of {cls.__qualname__}")
    source = Path(source_file).read_text(encoding="utf-8")
    body = _class_node(ast.parse(source, filename=source_file), cls.__name__).body

    problems: list[str] = []
    types: dict[str, str] = {}
    docs: dict[str, str | None] = {}
    getter_types: dict[str, str] = {}
    getter_docs: dict[str, str | None] = {}
    for index, node in enumerate(body):
        following = body[index + 1] if index + 1 < len(body) else None
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            types[node.target.id] = _source_text(source, node.annotation)
            docs[node.target.id] = _string_literal(following)
        elif isinstance(node, ast.FunctionDef) and _is_property_getter(node):
            if node.returns is not None:
                getter_types[node.name] = _source_text(source, node.returns)
            getter_docs[node.name] = ast.get_docstring(node)

    instance = cls()
    names: list[str] = [name for name in types if not name.startswith("_")]
    special: list[SpecialAttribute] = []
    for name, value in vars(cls).items():
        if name.startswith("_") or name in types:
            continue
        if isinstance(value, property):
            doc = getter_docs.get(name) or inspect.getdoc(value)
            if value.fset is None:
                special.append(SpecialAttribute(name, "read-only", doc or ""))
            elif value.fget is None or getattr(instance, name, _MISSING) is _MISSING:
                # No getter, or one that refuses (raises AttributeError): write-only.
                setter_doc = inspect.getdoc(value.fset)
                special.append(SpecialAttribute(name, "write-only", doc or setter_doc or ""))
            else:
                if name not in getter_types:
                    problems.append(f"property {name} has no return annotation on its getter")
                types[name] = getter_types.get(name, "")
                docs[name] = doc
                names.append(name)
        elif not inspect.isroutine(value):
            problems.append(f"{name} is a public class attribute without a type annotation")

    anchors = {name: name for name in names}
    anchors.update((item.name, SPECIAL_ANCHOR) for item in special)
    options: list[Option] = []
    for name in sorted(names):
        doc = docs.get(name)
        if not doc:
            problems.append(f"option {name} has no docstring")
            continue
        value = getattr(instance, name, _MISSING)
        default = None if value is _MISSING else _format_default(value)
        options.append(Option(name, types[name], default, _to_markdown(doc, cls, anchors)))

    if problems:
        details = "".join(f"\n  - {problem}" for problem in problems)
        raise ConfigDocError(f"{cls.__qualname__} cannot be documented:{details}")
    special = [
        SpecialAttribute(item.name, item.kind, _to_markdown(item.doc, cls, anchors))
        for item in sorted(special, key=lambda item: item.name)
    ]
    return Reference(options, special)


_ROLE = re.compile(r":(?:py:)?(\w+):`([^`]+)`")


def _to_markdown(doc: str, cls: type, anchors: dict[str, str]) -> str:
    """Turn the reST cross-references of a docstring into Markdown.

    ``:attr:`name``` of an option becomes a link to its section; other roles
    (``:class:``, ``:func:``, ...) become code. Double-backtick literals are already valid
    Markdown code spans.
    """

    def replace(match: re.Match[str]) -> str:
        role, target = match.group(1), "".join(match.group(2).split())
        short = target.startswith("~")
        target = target.removeprefix("~").removeprefix(f"{cls.__name__}.")
        shown = target.rpartition(".")[2] if short else target
        if role in ("func", "meth"):
            shown += "()"
        if role == "attr" and target in anchors:
            return f"[{_code(shown)}](#{anchors[target]})"
        return _code(shown)

    return _ROLE.sub(replace, doc)


def _code(text: str) -> str:
    """An inline code span holding ``text``, whatever backticks it contains."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _default_cell(option: Option) -> str:
    return "*no default*" if option.default is None else _code(option.default)


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.split("\n\n", 1)[0].split())


def render_reference(cls: type = Config) -> str:
    """The Markdown that replaces ``MARKER``: a summary table and a section per option."""
    reference = collect(cls)
    lines = ["| option | type | default |", "|---|---|---|"]
    for option in reference.options:
        lines.append(
            f"| [{_code(option.name)}](#{option.name}) | {_code(option.type)} "
            f"| {_default_cell(option)} |"
        )
    for option in reference.options:
        lines += [
            "",
            f"### {_code(option.name)} {{#{option.name}}}",
            "",
            f"**Type:** {_code(option.type)} · **Default:** {_default_cell(option)}",
            "",
            option.doc,
        ]
    if reference.special:
        lines += [
            "",
            f"### Read-only and write-only attributes {{#{SPECIAL_ANCHOR}}}",
            "",
            (
                f"`{cls.__name__}` also has these attributes. They are not options: the"
                " loaders skip read-only attributes, and write-only ones exist for"
                " compatibility."
            ),
            "",
        ]
        for item in reference.special:
            summary = _first_paragraph(item.doc) or "No description."
            lines.append(f"- {_code(item.name)} ({item.kind}): {summary}")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, *, page: Page, config: MkDocsConfig, files: Files) -> str:
    """MkDocs event: put the generated reference in place of the marker."""
    if page.file.src_uri != PAGE:
        return markdown
    if markdown.count(MARKER) != 1:
        raise PluginError(f"{PAGE} must contain the line {MARKER!r} exactly once")
    try:
        reference = render_reference()
    except ConfigDocError as error:
        raise PluginError(str(error)) from error
    return markdown.replace(MARKER, reference)
