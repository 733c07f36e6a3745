"""The compiled build is what the ``compiled`` environment tests.

``hatch run compiled:test`` sets ``HYPERCORN_MYPYC=1`` and installs hypercorn-protocols and
hypercorn-workers as wheels built with it; if that ever stopped compiling them, the suite
would silently test pure Python twice. These checks fail then.
"""

from __future__ import annotations

import importlib
import os

import pytest

pytestmark = pytest.mark.skipif(
    os.environ.get("HYPERCORN_MYPYC", "") in ("", "0"),
    reason="only in the compiled build's environment (HYPERCORN_MYPYC set)",
)


@pytest.mark.parametrize(
    "module",
    [
        "hypercorn.protocol.events",
        "hypercorn.protocol.h11",
        "hypercorn.protocol.h2",
        "hypercorn.protocol.http1_httptools",
        "hypercorn.protocol.http1_writer",
        "hypercorn.protocol.http_stream",
        "hypercorn.protocol.ws_frames",
        "hypercorn.protocol.ws_stream",
        "hypercorn.driver.connection",
    ],
)
def test_hot_modules_are_compiled(module: str) -> None:
    path = importlib.import_module(module).__file__
    assert path is not None
    assert not path.endswith(".py"), f"{module} is pure Python here: {path}"


def test_http3_stays_python() -> None:
    path = importlib.import_module("hypercorn.protocol.h3").__file__
    assert path is not None
    assert path.endswith(".py")
