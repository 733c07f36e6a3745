"""Functional checks of the benchmark runner (benchmarks/run.py) and its application.

Nothing here measures time or needs wrk, h2load or the peer servers: the runner's maths,
parsing and formatting are checked on fixed numbers, and the benchmark application is
served by our own server in-process and answered by real clients.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, cast

import httpx
import pytest
from websockets.sync.client import connect

from benchmarks import apps, run
from tests.workers.support import WORKER_CLASSES, WorkerClass, running

if TYPE_CHECKING:
    from hypercorn.typing import Framework

WRK_OUTPUT = """\
Running 5s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     4.12ms  310.00us   9.00ms   90.00%
    Req/Sec    15.55k   581.57    17.10k    85.71%
  77450 requests in 5.01s, 10.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  15459.08
Transfer/sec:      2.04MB
"""

H2LOAD_OUTPUT = """\
finished in 5.00s, 3456.00 req/s, 152.46KB/s
requests: 17280 total, 17536 started, 17280 done, 17270 succeeded, 10 failed, 0 errored, 0 timeout
status codes: 17270 2xx, 0 3xx, 0 4xx, 10 5xx
"""


def _result(server: str, values: list[float], scenario: str = "h1-hello") -> run.Result:
    runs = [run.Measurement(v, cpu_seconds=4.0, wall_seconds=5.0, work=v * 5) for v in values]
    return run.Result(scenario, "uvloop", server, run.server_label(server, "uvloop"), runs)


@pytest.mark.parametrize(
    ("values", "expected"),
    [([3.0], 3.0), ([5.0, 1.0, 3.0], 3.0), ([4.0, 1.0, 2.0, 3.0], 2.5), ([2.0, 2.0], 2.0)],
)
def test_median(values: list[float], expected: float) -> None:
    assert run.median(values) == expected


def test_median_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        run.median([])


@pytest.mark.parametrize(
    ("ours", "theirs", "higher_is_better", "expected"),
    [
        (200.0, 100.0, True, 2.0),  # twice their rate
        (50.0, 100.0, True, 0.5),
        (2.0, 8.0, False, 4.0),  # a quarter of their memory
        (8.0, 2.0, False, 0.25),
        (None, 100.0, True, None),
        (100.0, None, True, None),
        (100.0, 0.0, True, None),
        (0.0, 3.0, False, None),
    ],
)
def test_advantage(
    ours: float | None, theirs: float | None, higher_is_better: bool, expected: float | None
) -> None:
    assert run.advantage(ours, theirs, higher_is_better) == expected


def test_table_shows_medians_ratios_and_cpu() -> None:
    results = [
        _result("uvicorn", [100.0, 300.0, 200.0]),
        _result("ours", [400.0, 500.0, 300.0]),
        _result("hypercorn018", [250.0]),
    ]
    lines = run.format_table(results).splitlines()
    assert lines[0].startswith("| scenario | loop | server | median |")
    # ours first, then the peers in the runner's order, whatever order they were measured in
    assert lines[2] == (
        "| h1-hello | uvloop | ours (httptools, compiled) | 400 | req/s | 1.00 | 80 % | 2,000.0 "
        "| 400/500/300 |"
    )
    assert lines[3].startswith("| h1-hello | uvloop | Hypercorn 0.18 | 250 | req/s | 1.60 |")
    assert lines[4].startswith("| h1-hello | uvloop | uvicorn (httptools) | 200 | req/s | 2.00 |")


def test_table_inverts_the_ratio_for_memory_and_marks_failures() -> None:
    ours = _result("ours", [4.0], "idle-memory")
    peer = _result("granian", [10.0], "idle-memory")
    failed = run.Result("idle-memory", "uvloop", "uvicorn", "uvicorn", [], error="boom")
    lines = run.format_table([ours, peer, failed]).splitlines()
    assert "| 4.0 | KiB/conn | 1.00 |" in lines[2]
    assert lines[3] == "| idle-memory | uvloop | uvicorn | failed | KiB/conn | - | - | - | boom |"
    assert "| 10.0 | KiB/conn | 2.50 |" in lines[4]


def test_table_counts_errors() -> None:
    result = _result("ours", [10.0])
    result.runs[0].errors = 3
    assert "| 10 (3 errors) |" in run.format_table([result])


def test_svg_chart_is_well_formed_and_relative_to_ours() -> None:
    results = [_result("ours", [100.0]), _result("granian", [250.0])]
    svg = run.render_svg(results)
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    labels = [el.text for el in root.iter() if el.tag.endswith("text")]
    assert "1.00" in labels
    assert "2.50" in labels


def test_json_round_trip() -> None:
    results = [_result("ours", [1.0, 2.0, 3.0])]
    data = run.to_json(results, {"cpus": 2}, "python benchmarks/run.py")
    again = run.from_json(data)
    assert again == results


def test_parse_wrk() -> None:
    assert run.parse_wrk(WRK_OUTPUT) == (15459.08, 77450.0, 7)


def test_parse_h2load() -> None:
    assert run.parse_h2load(H2LOAD_OUTPUT) == (3456.0, 17270.0, 10)


def test_profile_summary() -> None:
    raw = (
        "main (a.py:1);loop (b.py:5);parse (c.py:9) 6\n"
        "main (a.py:1);loop (b.py:7) 3\n"
        "main (a.py:1);loop (b.py:5);parse (c.py:10) 1\n"
    )
    text = run.summarise_profile(raw)
    assert text.startswith("10 samples")
    assert " 70.0 %  parse (c.py)" in text
    assert " 30.0 %  loop (b.py)" in text
    assert "100.0 %  main (a.py)" in text
    assert run.summarise_profile("") == "no samples\n"


def test_plan_skips_what_a_server_cannot_do() -> None:
    cases = {
        (s.name, loop, server)
        for s, loop, server in run.plan(run.SERVERS, ["h1-hello", "h2c-hello"], run.LOOPS)
    }
    assert ("h2c-hello", "uvloop", "uvicorn") not in cases  # no HTTP/2 in uvicorn
    assert ("h1-hello", "trio", "granian") not in cases
    assert ("h1-hello", "trio", "uvicorn") not in cases
    assert ("h2c-hello", "trio", "hypercorn018") in cases
    assert ("h1-hello", "asyncio", "uvicorn") in cases
    assert len(cases) == 10 + 8


@pytest.mark.parametrize("loop", run.LOOPS)
def test_our_command_is_one_process_with_the_parser_asked_for(loop: str, tmp_path: Path) -> None:
    cmd = run.server_command("ours", loop, 8000, None, tmp_path)
    assert cmd[cmd.index("--workers") + 1] == "0"
    assert cmd[cmd.index("--worker-class") + 1] == loop
    config = Path(cmd[cmd.index("--config") + 1])
    assert config.read_text() == "keep_alive_max_requests = 1000000\n"
    assert cmd[cmd.index("--http1-parser") + 1] == run.OURS_PARSER[loop]
    assert cmd[-1] == "apps:app"


def test_peer_commands_use_one_worker(tmp_path: Path) -> None:
    certs = (tmp_path / "cert.pem", tmp_path / "key.pem")
    uvicorn = run.server_command("uvicorn", "asyncio", 8000, certs, tmp_path)
    assert uvicorn[uvicorn.index("--workers") + 1] == "1"
    assert uvicorn[uvicorn.index("--http") + 1] == "h11"
    assert "--ssl-certfile" in uvicorn
    granian = run.server_command("granian", "uvloop", 8000, None, tmp_path)
    assert granian[granian.index("--interface") + 1] == "asgi"
    assert granian[granian.index("--workers") + 1] == "1"
    upstream = run.server_command("hypercorn018", "trio", 8000, None, tmp_path)
    assert upstream[upstream.index("--workers") + 1] == "0"
    upstream_config = Path(upstream[upstream.index("--config") + 1])
    assert upstream_config.read_text() == "keep_alive_max_requests = 1000000\n"
    assert ".venvs/hypercorn018/bin/hypercorn" in upstream[0]


@pytest.mark.parametrize("worker_class", WORKER_CLASSES)
def test_the_benchmark_app_answers(worker_class: WorkerClass) -> None:
    # The app is plain ASGI typed with plain mappings (it imports nothing from hypercorn).
    app = cast("Framework", apps.app)
    with running(app, worker_class=worker_class) as server:
        with httpx.Client(base_url=server.http_url, timeout=10) as client:
            hello = client.get("/")
            assert hello.status_code == 200
            assert hello.content == apps.HELLO_BODY
            assert hello.headers["content-type"] == "text/plain"
            body = bytes(range(256)) * 256  # 64 KiB, as in the h1-post-64k scenario
            echo = client.post("/echo", content=body)
            assert echo.status_code == 200
            assert echo.content == body
        ws_url = server.http_url.replace("http://", "ws://") + "/ws"
        with connect(ws_url, open_timeout=10, close_timeout=10) as ws:
            ws.send("x" * 32)
            assert ws.recv(timeout=10) == "x" * 32
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=10) == b"\x00\x01"


def test_targets_say_met_or_below() -> None:
    results = [
        _result("ours", [300.0]),
        _result("uvicorn", [200.0]),
        _result("ours", [4.0], "idle-memory"),
        _result("ours", [100.0], "h2c-hello"),
        _result("hypercorn018", [60.0], "h2c-hello"),
    ]
    lines = run.format_targets(results).splitlines()
    assert lines[2] == (
        "| h1 hello, uvloop + httptools >= 1.0x uvicorn (httptools) | uvloop | 1.50x | met |"
    )
    assert lines[3] == ("| h2c >= 2x Hypercorn 0.18, same worker class | uvloop | 1.67x | below |")
    assert (
        lines[4] == "| idle memory <= 5 KiB per kept-alive connection | uvloop | 4.0 KiB | met |"
    )
    assert len(lines) == 5  # cases with nothing to compare with are left out
