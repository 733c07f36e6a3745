"""Real frameworks on every worker: Starlette, FastAPI, Flask (WSGI) and Django (ASGI/WSGI)."""

from __future__ import annotations

import contextlib
import types
from collections.abc import AsyncIterator, Iterator
from typing import Any, Literal

import flask
import httpx
import pydantic
import pytest
from fastapi import FastAPI, WebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket
from websockets.sync.client import connect as ws_connect

from tests.workers.support import TIMEOUT, WorkerClass, running


def client() -> httpx.Client:
    return httpx.Client(timeout=TIMEOUT, trust_env=False)


def ws_echo_roundtrip(url: str, text: str) -> str:
    with ws_connect(
        url.replace("http", "ws", 1), proxy=None, open_timeout=TIMEOUT, close_timeout=TIMEOUT
    ) as ws:
        ws.send(text)
        reply = ws.recv(TIMEOUT)
    assert isinstance(reply, str)
    return reply


# ---------------------------------------------------------------------------------------
# Starlette
# ---------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _starlette_lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def _starlette_home(request: Request) -> Response:
    return JSONResponse(
        {
            "greeting": request.state.greeting,
            "path": request.url.path,
            "query": dict(request.query_params),
        }
    )


async def _starlette_echo(request: Request) -> Response:
    return PlainTextResponse((await request.body()).decode().upper())


async def _starlette_stream(request: Request) -> Response:
    async def numbers() -> AsyncIterator[bytes]:
        for number in range(5):
            yield f"{number}\n".encode()

    return StreamingResponse(numbers(), media_type="text/plain")


async def _starlette_ws(websocket: StarletteWebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"starlette:{text}")
    await websocket.close()


starlette_app = Starlette(
    routes=[
        Route("/", _starlette_home),
        Route("/echo", _starlette_echo, methods=["POST"]),
        Route("/stream", _starlette_stream),
        WebSocketRoute("/ws", _starlette_ws),
    ],
    lifespan=_starlette_lifespan,
)


def test_starlette(worker_class: WorkerClass) -> None:
    app: Any = starlette_app  # Starlette types its scope more loosely than hypercorn
    with running(app, worker_class=worker_class) as server, client() as http:
        home = http.get(f"{server.url}/?a=1")
        echo = http.post(f"{server.url}/echo", content=b"shout")
        stream = http.get(f"{server.url}/stream")
        missing = http.get(f"{server.url}/missing")
        reply = ws_echo_roundtrip(f"{server.url}/ws", "hi")
    assert home.json() == {"greeting": "hello from lifespan", "path": "/", "query": {"a": "1"}}
    assert echo.text == "SHOUT"
    assert stream.text == "0\n1\n2\n3\n4\n"
    assert missing.status_code == 404
    assert reply == "starlette:hi"


# ---------------------------------------------------------------------------------------
# FastAPI
# ---------------------------------------------------------------------------------------


class Item(pydantic.BaseModel):
    name: str
    price: float


fastapi_app = FastAPI()


@fastapi_app.get("/items/{item_id}")
async def _read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@fastapi_app.post("/items")
async def _create_item(item: Item) -> Item:
    return Item(name=item.name.title(), price=item.price * 2)


@fastapi_app.websocket("/ws")
async def _fastapi_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    text = await websocket.receive_text()
    await websocket.send_text(f"fastapi:{text}")
    await websocket.close()


def test_fastapi(worker_class: WorkerClass) -> None:
    app: Any = fastapi_app
    with running(app, worker_class=worker_class) as server, client() as http:
        item = http.get(f"{server.url}/items/42?q=x")
        created = http.post(f"{server.url}/items", json={"name": "widget", "price": 2.5})
        invalid = http.post(f"{server.url}/items", json={"name": "widget"})
        reply = ws_echo_roundtrip(f"{server.url}/ws", "hi")
    assert item.json() == {"item_id": 42, "q": "x"}
    assert created.json() == {"name": "Widget", "price": 5.0}
    assert invalid.status_code == 422
    assert reply == "fastapi:hi"


# ---------------------------------------------------------------------------------------
# Flask (WSGI)
# ---------------------------------------------------------------------------------------

flask_app = flask.Flask(__name__)


@flask_app.route("/hello/<name>")
def _flask_hello(name: str) -> dict[str, Any]:
    environ = flask.request.environ
    return {
        "hello": name,
        "query": flask.request.args.to_dict(),
        "protocol": environ["SERVER_PROTOCOL"],
        "scheme": environ["wsgi.url_scheme"],
    }


@flask_app.post("/echo")
def _flask_echo() -> flask.Response:
    return flask.Response(flask.request.get_data()[::-1], mimetype="application/octet-stream")


@flask_app.route("/stream")
def _flask_stream() -> flask.Response:
    def parts() -> Iterator[str]:
        yield from ("a", "b", "c")

    return flask.Response(parts(), mimetype="text/plain")


@pytest.mark.parametrize("mode", ["wsgi", None])
def test_flask(worker_class: WorkerClass, mode: Literal["wsgi"] | None) -> None:
    body = bytes(range(256)) * 1000
    with running(flask_app, worker_class=worker_class, mode=mode) as server, client() as http:
        hello = http.get(f"{server.url}/hello/world?x=1")
        echo = http.post(f"{server.url}/echo", content=body)
        stream = http.get(f"{server.url}/stream")
        missing = http.get(f"{server.url}/missing")
    assert hello.json() == {
        "hello": "world",
        "query": {"x": "1"},
        "protocol": "HTTP/1.1",
        "scheme": "http",
    }
    assert echo.content == body[::-1]
    assert stream.text == "abc"
    assert missing.status_code == 404


# ---------------------------------------------------------------------------------------
# Django
# ---------------------------------------------------------------------------------------


def _django_view(request: Any) -> Any:
    from django.http import JsonResponse  # type: ignore[import-untyped]

    return JsonResponse(
        {"method": request.method, "path": request.path, "body": request.body.decode()}
    )


@pytest.fixture
def django_urls() -> Iterator[None]:
    """Minimal in-process Django settings; our URLconf only for the test's duration."""
    import django  # type: ignore[import-untyped]
    from django.conf import settings  # type: ignore[import-untyped]
    from django.test.utils import override_settings  # type: ignore[import-untyped]
    from django.urls import path  # type: ignore[import-untyped]

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="tests-only-not-secret",
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=[],
            MIDDLEWARE=[],
            DATABASES={},
            ROOT_URLCONF="django.urls",  # replaced below
            USE_TZ=True,
        )
        django.setup()
    urls = types.ModuleType("tests_workers_django_urls")
    urls.urlpatterns = [path("hello/", _django_view)]  # type: ignore[attr-defined]
    with override_settings(ROOT_URLCONF=urls, ALLOWED_HOSTS=["*"], MIDDLEWARE=[]):
        yield


@pytest.mark.usefixtures("django_urls")
@pytest.mark.parametrize("interface", ["asgi", "wsgi"])
def test_django(worker_class: WorkerClass, interface: str) -> None:
    if interface == "asgi":
        if worker_class == "trio":
            pytest.skip("Django's ASGI handler runs on asyncio only (its WSGI app runs on trio)")
        from django.core.asgi import get_asgi_application  # type: ignore[import-untyped]

        app = get_asgi_application()
    else:
        from django.core.wsgi import get_wsgi_application  # type: ignore[import-untyped]

        app = get_wsgi_application()
    with running(app, worker_class=worker_class) as server, client() as http:
        got = http.get(f"{server.url}/hello/")
        posted = http.post(f"{server.url}/hello/", content=b"payload")
        missing = http.get(f"{server.url}/nope/")
    assert got.json() == {"method": "GET", "path": "/hello/", "body": ""}
    assert posted.json() == {"method": "POST", "path": "/hello/", "body": "payload"}
    assert missing.status_code == 404
