"""Fixtures of the worker tests: every behaviour runs on asyncio, uvloop and trio.

The harness itself (:func:`tests.workers.support.running`, :class:`~tests.workers.support.
Signal`, the log capture and the raw HTTP/2 client) lives in :mod:`tests.workers.support`
so test modules can import it by name.
"""

from __future__ import annotations

import pytest
import trustme

from tests.workers.support import WORKER_CLASSES, TLSFiles, WorkerClass


@pytest.fixture(params=WORKER_CLASSES)
def worker_class(request: pytest.FixtureRequest) -> WorkerClass:
    """The event loop the server under test runs on."""
    value: WorkerClass = request.param
    return value


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A trustme CA and a certificate for 127.0.0.1 and localhost, as files."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    certfile = directory / "server.pem"
    keyfile = directory / "server.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(keyfile))
    return TLSFiles(ca=ca, certfile=str(certfile), keyfile=str(keyfile))
