"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.support import APP, TLSFiles, make_tls_files, write_app


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """The test's directory, holding :data:`APP` as ``app.py`` (serve it as ``app:app``)."""
    write_app(tmp_path, APP)
    return tmp_path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A CA and a certificate for 127.0.0.1 and localhost, as files."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))
