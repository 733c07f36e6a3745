"""Run the Autobahn WebSocket testsuite against our servers and fail on any bad case.

The testsuite (``wstest``) runs only on Python 2.7: this script builds its environment once
in ``.autobahn/`` (pyenv's 2.7 interpreter, ``virtualenv<20.22``, the pinned requirements in
``tools/autobahn-py27-requirements.txt``), starts each target server on a free loopback
port, runs the fuzzing client against it, and checks every case's verdict.

Usage: ``python tools/autobahn.py [--full] [TARGET ...]``. Targets: ``example`` (the
selectors server of docs/protocol.md) and ``asyncio``, ``uvloop``, ``trio`` (an echo
application on each worker, tools/ws_echo_server.py); all of them by default. ``--full``
adds the permessage-deflate cases 12.* and 13.*, which take about eleven minutes a target;
without them a target takes about twenty seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".autobahn"
GOOD = {"OK", "NON-STRICT", "INFORMATIONAL"}
EXAMPLE = ROOT / "docs" / "examples" / "selectors_server.py"
ECHO = ROOT / "tools" / "ws_echo_server.py"
#: How to start each target; the port is appended.
TARGETS = {
    "example": [sys.executable, "-u", str(EXAMPLE)],
    "asyncio": [sys.executable, "-u", str(ECHO), "asyncio"],
    "uvloop": [sys.executable, "-u", str(ECHO), "uvloop"],
    "trio": [sys.executable, "-u", str(ECHO), "trio"],
}


def _python27() -> str:
    """Find a Python 2.7 interpreter (pyenv's first)."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True, check=True)
        for candidate in sorted(Path(root.stdout.strip(), "versions").glob("2.7.*")):
            if (candidate / "bin" / "python").exists():
                return str(candidate / "bin" / "python")
    found = shutil.which("python2.7")
    if found is None:
        sys.exit("autobahn: no Python 2.7 interpreter found (pyenv install 2.7.18)")
    return found


def _wstest() -> Path:
    """The ``wstest`` command, installed on first use."""
    wstest = WORK / "py27" / "bin" / "wstest"
    if wstest.exists():
        return wstest
    WORK.mkdir(exist_ok=True)
    tools = WORK / "venv3"
    subprocess.run([sys.executable, "-m", "venv", str(tools)], check=True)
    pip = [str(tools / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "virtualenv<20.22"], check=True)
    virtualenv = [str(tools / "bin" / "virtualenv"), "--quiet"]
    subprocess.run([*virtualenv, "-p", _python27(), str(WORK / "py27")], check=True)
    requirements = ROOT / "tools" / "autobahn-py27-requirements.txt"
    py27_pip = [str(WORK / "py27" / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*py27_pip, "-r", str(requirements)], check=True)
    return wstest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"autobahn: the server did not listen on port {port}")


def run(target: str, *, full: bool) -> list[str]:
    """Run the suite against ``target``; return the cases that failed."""
    wstest = _wstest()
    port = _free_port()
    reports = WORK / "reports" / target
    spec = {
        "outdir": str(reports),
        "servers": [{"agent": target, "url": f"ws://127.0.0.1:{port}"}],
        "cases": ["*"],
        "exclude-cases": [] if full else ["12.*", "13.*"],
        "exclude-agent-cases": {},
    }
    spec_path = WORK / f"spec-{target}.json"
    spec_path.write_text(json.dumps(spec))
    with subprocess.Popen(
        [*TARGETS[target], str(port)], stdout=subprocess.DEVNULL, cwd=ROOT
    ) as server:
        try:
            _wait_listening(port, time.monotonic() + 20)
            subprocess.run(
                [str(wstest), "-m", "fuzzingclient", "-s", str(spec_path)],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=1800,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )
        finally:
            server.terminate()
            server.wait(timeout=10)
    results = json.loads((reports / "index.json").read_text())[target]
    counts: dict[str, int] = {}
    failed = []
    for case, verdict in sorted(results.items()):
        behaviour = f"{verdict['behavior']}/{verdict['behaviorClose']}"
        counts[behaviour] = counts.get(behaviour, 0) + 1
        if verdict["behavior"] not in GOOD or verdict["behaviorClose"] not in GOOD:
            failed.append(f"{case}: {behaviour}")
    summary = ", ".join(f"{count} {name}" for name, count in sorted(counts.items()))
    print(f"autobahn {target}: {len(results)} cases: {summary}")
    return failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="include cases 12.* and 13.*")
    parser.add_argument("targets", nargs="*", metavar="TARGET", help=f"of {sorted(TARGETS)}")
    args = parser.parse_args()
    targets = args.targets or sorted(TARGETS)
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; choose from {sorted(TARGETS)}")
    failed = [f"{t} {case}" for t in targets for case in run(t, full=args.full)]
    for line in failed:
        print(f"FAILED {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
