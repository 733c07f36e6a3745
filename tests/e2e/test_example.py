"""The bundled example, served by the installed command as the README says:
``hypercorn examples/app.py:app`` from the repository root."""

from __future__ import annotations

from websockets.sync.client import connect

from tests.e2e.support import REPO_ROOT, TIMEOUT, client, hypercorn


def test_example_app_over_http1_http2_and_websocket() -> None:
    with hypercorn(["-b", "127.0.0.1:0", "examples/app.py:app"], REPO_ROOT) as server:
        url = server.wait_serving().url
        with client() as http:
            response = http.get(url + "/")
        assert response.status_code == 200
        assert response.http_version == "HTTP/1.1"
        assert "HTTP version: 1.1" in response.text
        with client(http1=False, http2=True) as http:  # h2c with prior knowledge
            response = http.get(url + "/")
            echoed = http.post(url + "/echo", content=b"ping")
        assert response.status_code == 200
        assert response.http_version == "HTTP/2"
        assert "HTTP version: 2" in response.text
        assert (echoed.status_code, echoed.content) == (200, b"ping")
        ws_url = url.replace("http://", "ws://", 1) + "/ws"
        with connect(ws_url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as websocket:
            websocket.send("hello")
            assert websocket.recv(timeout=TIMEOUT) == "hello"
            websocket.send(b"\x00bytes")
            assert websocket.recv(timeout=TIMEOUT) == b"\x00bytes"
        assert server.stop() == 0
