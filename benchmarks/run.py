"""Benchmark runner: this server against Hypercorn 0.18, uvicorn and granian on loopback.

Each server runs alone, one at a time, in its own virtualenv under ``benchmarks/.venvs/``
(created on first use from the ``requirements-*.txt`` files beside this script), pinned to
core 0 with ``taskset -c 0``; the load generators (Debian's ``wrk`` and ``h2load``, and
``ws_client.py``) run pinned to core 1. Every scenario is measured ``--runs`` times for
``--duration`` seconds after a short warm-up; the table shows the median, the ratio of our
server's result to each peer's (above 1 means ours does better) and the CPU the server's
process tree used (read from ``/proc/<pid>/stat`` before and after each run).

    python benchmarks/run.py                      # the whole matrix (about 15 minutes)
    python benchmarks/run.py --quick              # a smoke run: 1 run x 1 s, a few cases
    python benchmarks/run.py --servers ours,uvicorn --loops uvloop --scenarios h1-hello
    python benchmarks/run.py --from-json benchmarks/results/X.json --chart docs/chart.svg

The runner needs only the standard library; run it with any Python 3.10+.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENVS = HERE / ".venvs"
RESULTS = HERE / "results"

SERVER_CORE = "0"
LOAD_CORE = "1"

SERVERS = ("ours", "hypercorn018", "uvicorn", "granian")
LOOPS = ("asyncio", "uvloop", "trio")

#: The HTTP/1.1 parser our server is asked for on each loop: h11 on asyncio (against
#: uvicorn --http h11), httptools on uvloop (against uvicorn's httptools) and on trio.
OURS_PARSER = {"asyncio": "h11", "uvloop": "httptools", "trio": "httptools"}
#: uvicorn's HTTP/1.1 implementation on each loop it supports.
UVICORN_HTTP = {"asyncio": "h11", "uvloop": "httptools"}

#: keep_alive_max_requests for ours and Hypercorn 0.18 (their default, 1,000, would close
#: every HTTP/2 connection of h2load part-way through a run; h2load does not reconnect).
KEEP_ALIVE_MAX_REQUESTS = 1_000_000

SERVER_LOOPS = {
    "ours": LOOPS,
    "hypercorn018": LOOPS,
    "uvicorn": ("asyncio", "uvloop"),
    "granian": ("asyncio", "uvloop"),
}


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    tool: str  # "wrk", "h2load", "ws" or "memory"
    tls: bool
    unit: str
    higher_is_better: bool
    http2: bool = False
    description: str = ""


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("h1-hello", "wrk", False, "req/s", True, description="HTTP/1.1 GET, 13 bytes"),
        Scenario("h1-hello-tls", "wrk", True, "req/s", True, description="the same over TLS"),
        Scenario("h1-post-64k", "wrk", False, "req/s", True, description="POST 64 KiB, echoed"),
        Scenario("h2c-hello", "h2load", False, "req/s", True, True, "HTTP/2 prior knowledge"),
        Scenario("h2-tls-hello", "h2load", True, "req/s", True, True, "HTTP/2 over TLS (ALPN)"),
        Scenario("ws-echo", "ws", False, "msg/s", True, description="32-byte messages"),
        Scenario("idle-memory", "memory", False, "KiB/conn", False, description="1,000 idle"),
    )
}


@dataclasses.dataclass
class Options:
    runs: int = 3
    duration: float = 5.0
    warmup: float = 1.0
    wrk_connections: int = 64
    h2_clients: int = 8
    h2_streams: int = 32
    ws_connections: int = 32
    ws_inflight: int = 16
    ws_processes: int = 1
    ws_size: int = 32
    idle_connections: int = 1000


@dataclasses.dataclass
class Measurement:
    """One run: the load tool's rate (or KiB per connection) and the server's CPU."""

    value: float
    cpu_seconds: float
    wall_seconds: float
    work: float  # requests or messages done in the run (0 for memory)
    errors: int = 0


@dataclasses.dataclass
class Result:
    scenario: str
    loop: str
    server: str
    label: str
    runs: list[Measurement]
    error: str | None = None

    @property
    def median(self) -> float | None:
        return median([r.value for r in self.runs]) if self.runs else None

    @property
    def cpu_percent(self) -> float | None:
        if not self.runs:
            return None
        return median([100.0 * r.cpu_seconds / r.wall_seconds for r in self.runs])

    @property
    def cpu_us_per_op(self) -> float | None:
        done = [r for r in self.runs if r.work > 0]
        if not done:
            return None
        return median([1e6 * r.cpu_seconds / r.work for r in done])


# --------------------------------------------------------------------------------------
# Maths and formatting (pure functions, tested in tests/benchmarks)
# --------------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence (the mean of the middle two for even sizes)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def advantage(ours: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    """How many times better our result is than theirs (above 1: ours is better).

    For a rate that is ours / theirs; for a cost (memory per connection) theirs / ours.
    ``None`` when either is missing or the divisor is not positive.
    """
    if ours is None or theirs is None:
        return None
    num, den = (ours, theirs) if higher_is_better else (theirs, ours)
    if den <= 0:
        return None
    return num / den


def format_number(value: float | None, digits: int = 0) -> str:
    """``12,345`` style with a thousands separator; ``-`` for a missing value."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def format_table(results: Sequence[Result]) -> str:
    """A Markdown table of the medians, grouped by scenario and loop, ours first."""
    header = (
        "| scenario | loop | server | median | unit | ours ÷ server | server CPU | "
        "CPU µs/op | runs |\n|---|---|---|---:|---|---:|---:|---:|---|"
    )
    lines = [header]
    for (scenario_name, loop), group in _groups(results):
        scenario = SCENARIOS[scenario_name]
        ours = next((r for r in group if r.server == "ours"), None)
        ours_median = ours.median if ours else None
        for r in group:
            med = r.median
            if r.error:
                lines.append(
                    f"| {scenario_name} | {loop} | {r.label} | failed | {scenario.unit} | - | - "
                    f"| - | {r.error} |"
                )
                continue
            ratio = (
                "1.00"
                if r.server == "ours"
                else _ratio(advantage(ours_median, med, scenario.higher_is_better))
            )
            digits = 1 if scenario.tool == "memory" else 0
            spread = "/".join(format_number(m.value, digits) for m in r.runs)
            if any(m.errors for m in r.runs):
                spread += f" ({sum(m.errors for m in r.runs)} errors)"
            cpu = r.cpu_percent
            lines.append(
                f"| {scenario_name} | {loop} | {r.label} | {format_number(med, digits)} | "
                f"{scenario.unit} | {ratio} | "
                f"{'-' if cpu is None else format_number(cpu) + ' %'} | "
                f"{format_number(r.cpu_us_per_op, 1)} | {spread} |"
            )
    return "\n".join(lines) + "\n"


#: The issue's targets: (description, scenario, loops, peer, minimum of ours ÷ peer).
#: A peer of None means an absolute bound on our own value (idle memory, KiB/conn).
TARGETS: tuple[tuple[str, str, tuple[str, ...], str | None, float], ...] = (
    (
        "h1 hello, uvloop + httptools >= 1.0x uvicorn (httptools)",
        "h1-hello",
        ("uvloop",),
        "uvicorn",
        1.0,
    ),
    ("h1 hello, asyncio + h11 >= 1.3x uvicorn (h11)", "h1-hello", ("asyncio",), "uvicorn", 1.3),
    ("h2c >= 2x Hypercorn 0.18, same worker class", "h2c-hello", LOOPS, "hypercorn018", 2.0),
    (
        "h2 over TLS >= 2x Hypercorn 0.18, same worker class",
        "h2-tls-hello",
        LOOPS,
        "hypercorn018",
        2.0,
    ),
    (
        "WebSocket echo >= 1.0x uvicorn, same loop",
        "ws-echo",
        ("asyncio", "uvloop"),
        "uvicorn",
        1.0,
    ),
    *(
        (f"trio >= 2x Hypercorn 0.18's trio worker ({name})", name, ("trio",), "hypercorn018", 2.0)
        for name in SCENARIOS
        if name != "idle-memory"
    ),
    ("idle memory <= 5 KiB per kept-alive connection", "idle-memory", LOOPS, None, 5.0),
)


def format_targets(results: Sequence[Result]) -> str:
    """A Markdown table of every target case present in ``results``: met or below."""
    by_key = {(r.scenario, r.loop, r.server): r for r in results if not r.error}
    lines = ["| target | loop | measured | verdict |", "|---|---|---:|---|"]
    for text, scenario, loops, peer, bound in TARGETS:
        for loop in loops:
            ours = by_key.get((scenario, loop, "ours"))
            if ours is None or ours.median is None:
                continue
            if peer is None:
                value = ours.median
                shown = f"{value:.1f} KiB"
                met = value <= bound
            else:
                other = by_key.get((scenario, loop, peer))
                ratio = advantage(ours.median, other.median if other else None, True)
                if ratio is None:
                    continue
                shown = f"{ratio:.2f}x"
                met = ratio >= bound
            lines.append(f"| {text} | {loop} | {shown} | {'met' if met else 'below'} |")
    return "\n".join(lines) + "\n"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _groups(results: Sequence[Result]) -> list[tuple[tuple[str, str], list[Result]]]:
    order: dict[tuple[str, str], list[Result]] = {}
    for r in results:
        order.setdefault((r.scenario, r.loop), []).append(r)
    ranked = {name: i for i, name in enumerate(SERVERS)}
    return [
        (key, sorted(group, key=lambda r: ranked.get(r.server, len(SERVERS))))
        for key, group in order.items()
    ]


_COLOURS = {
    "ours": "#2f6fba",
    "hypercorn018": "#9a9a9a",
    "uvicorn": "#e08a2e",
    "granian": "#4a9a5a",
}
_LEGEND = {
    "ours": "ours",
    "hypercorn018": "Hypercorn 0.18",
    "uvicorn": "uvicorn",
    "granian": "granian",
}


def render_svg(results: Sequence[Result], title: str = "Each server relative to ours") -> str:
    """A horizontal bar chart on a log scale, one group per scenario and loop: each server's
    performance relative to ours (its rate / our rate, or our memory / its memory), drawn
    from the 1.0 line, to the right where it does better than ours, to the left where worse.
    """
    groups = [
        (key, [r for r in group if r.median is not None and not r.error])
        for key, group in _groups(results)
    ]
    groups = [(k, g) for k, g in groups if any(r.server == "ours" for r in g)]
    rel: list[list[float]] = []
    for (scenario_name, _), group in groups:
        ours = next(r for r in group if r.server == "ours").median
        better = SCENARIOS[scenario_name].higher_is_better
        rel.append([advantage(r.median, ours, better) or 1.0 for r in group])
    flat = [v for row in rel for v in row] or [1.0]
    lo = min(0.25, *flat) / 1.25
    hi = max(4.0, *flat) * 1.25
    bar_h, gap, left, width = 14, 10, 190, 460
    rows = sum(len(g) for _, g in groups)
    height = 75 + rows * bar_h + len(groups) * gap + 30

    def x(value: float) -> float:
        return left + width * (math.log(value) - math.log(lo)) / (math.log(hi) - math.log(lo))

    out = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 60}" '
            f'height="{height}" font-family="sans-serif" font-size="11">'
        ),
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="10" y="20" font-size="14" font-weight="bold">{_xml(title)}</text>',
    ]
    legend_x = 10
    for server, colour in _COLOURS.items():
        out.append(f'<rect x="{legend_x}" y="30" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{legend_x + 14}" y="39">{_LEGEND[server]}</text>')
        legend_x += 120
    tick = 1 / 64
    while tick <= hi:
        if tick >= lo:
            tx = x(tick)
            label = f"{tick:g}" if tick >= 1 else f"1/{round(1 / tick)}"
            out.append(
                f'<line x1="{tx:.1f}" y1="58" x2="{tx:.1f}" y2="{height - 35}" stroke="#dddddd"/>'
            )
            out.append(f'<text x="{tx:.1f}" y="54" text-anchor="middle">{label}x</text>')
        tick *= 2
    y = 62
    for ((scenario_name, loop), group), values in zip(groups, rel, strict=True):
        out.append(
            f'<text x="10" y="{y + bar_h - 3}" font-weight="bold">'
            f"{_xml(scenario_name)} / {loop}</text>"
        )
        for r, value in zip(group, values, strict=True):
            x0, x1 = sorted((x(1.0), x(value)))
            colour = _COLOURS.get(r.server, "#555555")
            out.append(
                f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 1.5):.1f}" '
                f'height="{bar_h - 4}" fill="{colour}"><title>{_xml(r.label)}: '
                f"{value:.2f}</title></rect>"
            )
            out.append(
                f'<text x="{max(x1, x(1.0)) + 4:.1f}" y="{y + bar_h - 3}">{value:.2f}</text>'
            )
            y += bar_h
        y += gap
    one = x(1.0)
    out.append(
        f'<line x1="{one:.1f}" y1="58" x2="{one:.1f}" y2="{y}" stroke="black" '
        'stroke-dasharray="3,3"/>'
    )
    out.append(
        f'<text x="10" y="{y + 15}">log scale; right of the dashed line: better than ours '
        "(higher rate, or less memory per connection)</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --------------------------------------------------------------------------------------
# Parsing the load tools' output
# --------------------------------------------------------------------------------------


def parse_wrk(output: str) -> tuple[float, float, int]:
    """(requests/s, requests, errors) from wrk's summary."""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    done = float(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(m.group(1))
    if m := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(x) for x in m.groups())
    return rate, done, errors


def parse_h2load(output: str) -> tuple[float, float, int]:
    """(requests/s, requests succeeded, failures) from h2load's summary."""
    rate = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", output).group(1))  # type: ignore[union-attr]
    m = re.search(
        r"requests: \d+ total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        output,
    )
    if m is None:
        raise ValueError("no h2load summary")
    done, failed, errored, timeout = (int(x) for x in m.groups())
    status = re.search(r"status codes: (\d+) 2xx", output)
    bad = failed + errored + timeout
    if status is not None and int(status.group(1)) < done:
        bad += done - int(status.group(1))
    return rate, float(done), bad


# --------------------------------------------------------------------------------------
# Processes: /proc readings
# --------------------------------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        tree.append(p)
        todo.extend(children.get(p, []))
    return tree


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process tree, in seconds."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICKS


def rss_kib(pid: int) -> int:
    """The resident set size of the process tree, in KiB."""
    total = 0
    for p in process_tree(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        if m := re.search(r"VmRSS:\s+(\d+) kB", status):
            total += int(m.group(1))
    return total


def summarise_profile(raw: str, top: int = 15) -> str:
    """Top functions by own ("self") and inclusive samples, and own samples per file, from
    py-spy's raw (collapsed-stack) output: lines of ``frame;frame;...;leaf COUNT``."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    per_file: dict[str, int] = {}
    total = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame_key(f) for f in stack.split(";")]
        own[frames[-1][0]] = own.get(frames[-1][0], 0) + count
        per_file[frames[-1][1]] = per_file.get(frames[-1][1], 0) + count
        for key in {f[0] for f in frames}:
            inclusive[key] = inclusive.get(key, 0) + count
    if not total:
        return "no samples\n"

    def block(title: str, table: dict[str, int]) -> list[str]:
        rows = sorted(table.items(), key=lambda kv: -kv[1])[:top]
        return [title, *(f"{100 * n / total:5.1f} %  {name}" for name, n in rows), ""]

    lines = [f"{total} samples"]
    lines += block("own time by function:", own)
    lines += block("own time by file:", per_file)
    lines += block("inclusive time by function:", inclusive)
    return "\n".join(lines)


def _frame_key(frame: str) -> tuple[str, str]:
    """('function (file)', 'file') from py-spy's ``function (path/file.py:123)``."""
    m = re.match(r"^(.*) \((.*?)(?::\d+)?\)$", frame)
    if not m:
        return frame, frame
    return f"{m.group(1)} ({m.group(2)})", m.group(2)


# --------------------------------------------------------------------------------------
# Set-up: tools, virtualenvs, certificate
# --------------------------------------------------------------------------------------


def ensure_tools() -> None:
    missing = [t for t in ("wrk", "h2load", "taskset") if shutil.which(t) is None]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"missing {', '.join(missing)}: apt-get install -y wrk nghttp2-client")
    print("installing wrk and nghttp2-client with apt-get", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk", "nghttp2-client"], check=True)


#: Our server is installed compiled (HYPERCORN_MYPYC=1: the state machines through mypyc,
#: see packages/protocols/hatch_build.py) into .venvs/ours, or as pure Python (--pure) into
#: .venvs/ours-pure. main() sets this.
OURS_PURE = False


def venv_dir(name: str) -> Path:
    if name == "ours" and OURS_PURE:
        return VENVS / "ours-pure"
    return VENVS / name


def venv_python(name: str) -> Path:
    return venv_dir(name) / "bin" / "python"


def ensure_venv(name: str, reinstall: bool = False) -> Path:
    """Create ``.venvs/<name>`` from requirements-<name>.txt (ours: plus ./packages/*)."""
    python = venv_python(name)
    if python.exists() and not reinstall:
        return python
    uv = shutil.which("uv")
    target = venv_dir(name)
    print(f"setting up {target}", flush=True)
    if not python.exists():
        if uv:
            subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(target)], check=True)
        else:
            subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    args = ["-r", str(HERE / f"requirements-{name}.txt")]
    if name == "ours":
        packages = ROOT / "packages"
        args += [
            f"{packages / 'protocols'}[accel]",
            str(packages / "workers"),
            str(packages / "runner"),
            f"{packages / 'cli'}[uvloop,trio,h3]",
        ]
        if reinstall:  # rebuild our four distributions from the current tree
            dists = (
                "hypercorn-protocols",
                "hypercorn-workers",
                "hypercorn-runner",
                "hypercorn-cli",
            )
            for dist in dists:
                args += ["--reinstall-package", dist] if uv else []
            if not uv:
                args.append("--force-reinstall")
    env = dict(os.environ)
    env.pop("HYPERCORN_MYPYC", None)
    if name == "ours" and not OURS_PURE:
        env["HYPERCORN_MYPYC"] = "1"
        # The build cache does not know about the variable: build ours afresh.
        args += ["--no-cache"] if uv else ["--no-cache-dir"]
    if uv:
        install = [uv, "pip", "install", "-q", "--python", str(python), *args]
    else:
        install = [str(python), "-m", "pip", "install", "-q", *args]
    subprocess.run(install, check=True, env=env)
    return python


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed EC certificate for 127.0.0.1 and localhost (key in PKCS#8)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    if not cert.exists():
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
    return cert, key


# --------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------


def server_label(server: str, loop: str) -> str:
    if server == "ours":
        build = "pure" if OURS_PURE else "compiled"
        return f"ours ({OURS_PARSER[loop]}, {build})"
    if server == "uvicorn":
        return f"uvicorn ({UVICORN_HTTP[loop]})"
    if server == "hypercorn018":
        return "Hypercorn 0.18"
    return server


def server_command(
    server: str, loop: str, port: int, tls: tuple[Path, Path] | None, workdir: Path
) -> list[str]:
    """The command line that serves ``apps:app`` on 127.0.0.1:port in one process."""
    bindir = venv_dir(server) / "bin"
    if server in ("ours", "hypercorn018"):
        cmd = [
            str(bindir / "hypercorn"),
            "--workers",
            "0",
            "--worker-class",
            loop,
            "--bind",
            f"127.0.0.1:{port}",
            "--keep-alive",
            "120",
        ]
        if tls:
            cmd += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
        # Both default to closing a connection after 1,000 requests; h2load does not
        # reconnect, so HTTP/2 runs would end early. Both get the same higher limit.
        settings = f"keep_alive_max_requests = {KEEP_ALIVE_MAX_REQUESTS}\n"
        config = workdir / f"{server}.toml"
        config.write_text(settings)
        cmd += ["--config", str(config)]
        if server == "ours":
            cmd += ["--http1-parser", OURS_PARSER[loop]]
        return [*cmd, "apps:app"]
    if server == "uvicorn":
        cmd = [
            str(bindir / "uvicorn"),
            "apps:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            loop,
            "--http",
            UVICORN_HTTP[loop],
            "--ws",
            "websockets",
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            "120",
        ]
        if tls:
            cmd += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        return cmd
    if server == "granian":
        cmd = [
            str(bindir / "granian"),
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--loop",
            loop,
            "--http",
            "auto",
            "--log-level",
            "warning",
        ]
        if tls:
            cmd += ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        return [*cmd, "apps:app"]
    raise ValueError(f"unknown server {server!r}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """One server process pinned to the server core; stopped with SIGINT, then SIGKILL."""

    def __init__(self, cmd: list[str], port: int, tls: bool, log: Path) -> None:
        self.port, self.tls, self.log = port, tls, log
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CORE, *cmd],
            cwd=HERE,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"exited with {self.proc.returncode}; see {self.log}")
            try:
                status, _ = http_get(self.port, self.tls)
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


def _client_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def http_get(port: int, tls: bool, sock: socket.socket | None = None) -> tuple[int, socket.socket]:
    """One keep-alive ``GET /`` on a new (or given) connection; (status, the socket)."""
    if sock is None:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            sock = _client_context().wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before a response")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)content-length:\s*(\d+)", head)
        length = int(m.group(1)) if m else 0
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        status = int(head.split(b" ", 2)[1])
    except Exception:
        sock.close()
        raise
    return status, sock


# --------------------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------------------


def _load(cmd: list[str], timeout: float) -> str:
    done = subprocess.run(
        ["taskset", "-c", LOAD_CORE, *cmd],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=HERE,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def run_load(
    scenario: Scenario, port: int, duration: float, opts: Options, workdir: Path
) -> tuple[float, float, int]:
    """Run the scenario's load tool once: (rate, work done, errors)."""
    scheme = "https" if scenario.tls else "http"
    url = f"{scheme}://127.0.0.1:{port}/"
    timeout = duration + 30
    if scenario.tool == "wrk":
        cmd = ["wrk", "-t1", f"-c{opts.wrk_connections}", f"-d{max(1, round(duration))}s"]
        if scenario.name == "h1-post-64k":
            script = workdir / "post64k.lua"
            script.write_text(
                'wrk.method = "POST"\n'
                'wrk.body = string.rep("x", 65536)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n'
            )
            cmd += ["-s", str(script)]
            url += "echo"
        return parse_wrk(_load([*cmd, url], timeout))
    if scenario.tool == "h2load":
        cmd = [
            "h2load",
            "-t1",
            f"-c{opts.h2_clients}",
            f"-m{opts.h2_streams}",
            "-D",
            str(max(1, round(duration))),
            url,
        ]
        return parse_h2load(_load(cmd, timeout))
    if scenario.tool == "ws":
        ws_url = f"{'wss' if scenario.tls else 'ws'}://127.0.0.1:{port}/ws"
        cmd = [
            str(venv_python("client")),
            str(HERE / "ws_client.py"),
            ws_url,
            "--connections",
            str(opts.ws_connections),
            "--duration",
            str(duration),
            "--size",
            str(opts.ws_size),
            "--inflight",
            str(opts.ws_inflight),
        ]
        procs = [
            subprocess.Popen(
                ["taskset", "-c", LOAD_CORE, *cmd],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=HERE,
            )
            for _ in range(opts.ws_processes)
        ]
        rate = work = 0.0
        errors = 0
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            if p.returncode != 0:
                raise RuntimeError(f"ws_client failed: {err.strip()[-500:]}")
            data = json.loads(out)
            rate += data["rate"]
            work += data["messages"]
            errors += int(data["errors"])
        return rate, work, errors
    raise ValueError(scenario.tool)


def hold_connections(port: int, count: int, tls: bool) -> list[socket.socket]:
    """Open ``count`` keep-alive connections that each made one request, and keep them."""
    socks = []
    try:
        for _ in range(count):
            status, sock = http_get(port, tls)
            socks.append(sock)
            if status != 200:
                raise RuntimeError(f"status {status}")
    except BaseException:
        for s in socks:
            s.close()
        raise
    return socks


# --------------------------------------------------------------------------------------
# The matrix
# --------------------------------------------------------------------------------------


def measure(
    server: str,
    loop: str,
    scenario: Scenario,
    opts: Options,
    workdir: Path,
    certs: tuple[Path, Path],
) -> Result:
    label = server_label(server, loop)
    result = Result(scenario.name, loop, server, label, [])
    log = workdir / f"{server}-{loop}-{scenario.name}.log"
    tls = certs if scenario.tls else None

    def start() -> Server:
        port = free_port()
        srv = Server(server_command(server, loop, port, tls, workdir), port, scenario.tls, log)
        try:
            srv.wait_ready()
        except BaseException:
            srv.stop()
            raise
        return srv

    try:
        if scenario.tool == "memory":
            for _ in range(opts.runs):
                srv = start()
                try:
                    # Warm up on a few connections first, so lazy imports and first-use
                    # caches are not counted as the cost of the idle connections.
                    for s in hold_connections(srv.port, 20, scenario.tls):
                        s.close()
                    time.sleep(0.3)
                    before = rss_kib(srv.proc.pid)
                    cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
                    socks = hold_connections(srv.port, opts.idle_connections, scenario.tls)
                    time.sleep(0.5)
                    after = rss_kib(srv.proc.pid)
                    cpu1, t1 = cpu_seconds(srv.proc.pid), time.monotonic()
                    alive = sum(1 for s in socks if _still_open(s))
                    for s in socks:
                        s.close()
                    per = (after - before) / opts.idle_connections
                    result.runs.append(
                        Measurement(per, cpu1 - cpu0, t1 - t0, 0.0, opts.idle_connections - alive)
                    )
                finally:
                    srv.stop()
            return result
        srv = start()
        try:
            if opts.warmup > 0:
                run_load(scenario, srv.port, opts.warmup, opts, workdir)
            for _ in range(opts.runs):
                cpu0, t0 = cpu_seconds(srv.proc.pid), time.monotonic()
                rate, work, errors = run_load(scenario, srv.port, opts.duration, opts, workdir)
                cpu1, t1 = cpu_seconds(srv.proc.pid), time.monotonic()
                result.runs.append(Measurement(rate, cpu1 - cpu0, t1 - t0, work, errors))
                if srv.proc.poll() is not None:
                    raise RuntimeError(f"server exited; see {log}")
        finally:
            srv.stop()
    except Exception as exc:  # report and go on with the next case
        result.error = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return result


def _still_open(sock: socket.socket) -> bool:
    try:
        sock.setblocking(False)
        data = sock.recv(1, socket.MSG_PEEK)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def profile(
    loop: str, scenario: Scenario, opts: Options, workdir: Path, certs: tuple[Path, Path]
) -> str:
    """Sample our server with py-spy while the scenario's load runs; the summary text."""
    port = free_port()
    log = workdir / f"profile-{loop}-{scenario.name}.log"
    tls = certs if scenario.tls else None
    srv = Server(server_command("ours", loop, port, tls, workdir), port, scenario.tls, log)
    raw = workdir / f"profile-{loop}-{scenario.name}.raw"
    try:
        srv.wait_ready()
        run_load(scenario, port, opts.warmup or 1.0, opts, workdir)
        spy = subprocess.Popen(
            [
                "taskset",
                "-c",
                LOAD_CORE,
                str(VENVS / "client" / "bin" / "py-spy"),
                "record",
                "--format",
                "raw",
                "--rate",
                "250",
                "--output",
                str(raw),
                "--pid",
                str(srv.proc.pid),
                "--duration",
                str(max(1, round(opts.duration))),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run_load(scenario, port, opts.duration, opts, workdir)
        spy.wait(opts.duration + 30)
    finally:
        srv.stop()
    text = summarise_profile(raw.read_text())
    (workdir / f"profile-{loop}-{scenario.name}.txt").write_text(text)
    return text


def supports(server: str, loop: str, scenario: Scenario) -> bool:
    if loop not in SERVER_LOOPS[server]:
        return False
    return not (server == "uvicorn" and scenario.http2)


def plan(
    servers: Sequence[str], scenarios: Sequence[str], loops: Sequence[str]
) -> Iterator[tuple[Scenario, str, str]]:
    """(scenario, loop, server) in the order they are measured."""
    for name in scenarios:
        for loop in loops:
            for server in servers:
                if supports(server, loop, SCENARIOS[name]):
                    yield SCENARIOS[name], loop, server


def _csv(value: str, allowed: Sequence[str]) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in allowed]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def environment() -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name, module in (
        ("ours", "hypercorn-cli"),
        ("hypercorn018", "hypercorn"),
        ("uvicorn", "uvicorn"),
        ("granian", "granian"),
    ):
        python = venv_python(name)
        if python.exists():
            done = subprocess.run(
                [
                    str(python),
                    "-c",
                    f"import importlib.metadata as m; print(m.version({module!r}))",
                ],
                capture_output=True,
                text=True,
            )
            versions[name] = done.stdout.strip()
    return {
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": os.getloadavg(),
        "versions": versions,
        "ours_build": "pure" if OURS_PURE else "compiled (mypyc)",
        "wrk": _first_line(["wrk", "-v"]),
        "h2load": _first_line(["h2load", "--version"]),
    }


def _first_line(cmd: list[str]) -> str:
    with contextlib.suppress(OSError):
        done = subprocess.run(cmd, capture_output=True, text=True)
        return (done.stdout or done.stderr).strip().splitlines()[0]
    return "-"


def to_json(results: Sequence[Result], env: dict[str, Any], command: str) -> dict[str, Any]:
    return {
        "command": command,
        "environment": env,
        "results": [dataclasses.asdict(r) for r in results],
    }


def from_json(data: dict[str, Any]) -> list[Result]:
    out = []
    for r in data["results"]:
        runs = [Measurement(**m) for m in r.pop("runs")]
        out.append(Result(runs=runs, **r))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark this server against Hypercorn 0.18, uvicorn and granian."
    )
    parser.add_argument("--servers", type=lambda v: _csv(v, SERVERS), default=list(SERVERS))
    parser.add_argument(
        "--scenarios", type=lambda v: _csv(v, list(SCENARIOS)), default=list(SCENARIOS)
    )
    parser.add_argument("--loops", type=lambda v: _csv(v, LOOPS), default=list(LOOPS))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before the runs")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 run of 1 s, no warm-up, 100 idle connections",
    )
    parser.add_argument(
        "--reinstall-ours",
        action="store_true",
        help="reinstall our packages from ./packages into .venvs/ours",
    )
    parser.add_argument(
        "--pure",
        action="store_true",
        help="run our server as pure Python (.venvs/ours-pure) instead of the compiled build",
    )
    parser.add_argument("--from-json", type=Path, help="re-render a saved result; run nothing")
    parser.add_argument("--chart", type=Path, help="also write the SVG chart here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead of measuring, sample our server with py-spy under each selected "
        "scenario and loop and print its top functions",
    )
    args = parser.parse_args(argv)
    global OURS_PURE
    OURS_PURE = args.pure
    command = " ".join(["python benchmarks/run.py", *(sys.argv[1:] if argv is None else argv)])

    if args.from_json:
        data = json.loads(args.from_json.read_text())
        saved = from_json(data)
        print(format_table(saved))
        print(format_targets(saved), end="")
        if args.chart:
            args.chart.write_text(render_svg(saved))
        return 0

    opts = Options(runs=args.runs, duration=args.duration, warmup=args.warmup)
    if args.quick:
        opts = dataclasses.replace(opts, runs=1, duration=1.0, warmup=0.0, idle_connections=100)

    if len(os.sched_getaffinity(0)) < 2 and os.cpu_count() and os.cpu_count() < 2:  # type: ignore[operator]
        sys.exit("needs two cores: one for the server, one for the load")
    os.sched_setaffinity(0, {int(LOAD_CORE)})  # the runner and its clients use the load core
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    ensure_tools()
    for name in args.servers:
        ensure_venv(name, reinstall=args.reinstall_ours and name == "ours")
    ensure_venv("client")

    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    workdir = RESULTS / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    certs = make_certificate(workdir)
    env = environment()
    load1 = env["loadavg_at_start"][0]
    print(
        f"# {command}\n# load average at start: {load1:.2f}"
        + ("  (other work is running: numbers will be noisy)" if load1 > 0.7 else ""),
        flush=True,
    )

    if args.profile:
        for name in args.scenarios:
            for loop in args.loops:
                if SCENARIOS[name].tool == "memory":
                    continue
                print(
                    f"## {name} on {loop}\n" + profile(loop, SCENARIOS[name], opts, workdir, certs)
                )
        print(f"profiles: {workdir}")
        return 0

    results: list[Result] = []
    cases = list(plan(args.servers, args.scenarios, args.loops))
    for i, (scenario, loop, server) in enumerate(cases, 1):
        r = measure(server, loop, scenario, opts, workdir, certs)
        results.append(r)
        shown = r.error or f"{format_number(r.median, 1)} {scenario.unit}"
        print(f"[{i}/{len(cases)}] {scenario.name} {loop} {r.label}: {shown}", flush=True)
        (workdir / "results.json").write_text(json.dumps(to_json(results, env, command), indent=1))
    table = format_table(results)
    targets = format_targets(results)
    (workdir / "table.md").write_text(f"`{command}`\n\n{table}\n{targets}")
    svg = render_svg(results)
    (workdir / "chart.svg").write_text(svg)
    if args.chart:
        args.chart.write_text(svg)
    print()
    print(table)
    print(targets)
    print(f"results: {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
