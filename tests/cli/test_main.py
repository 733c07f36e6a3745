"""Tests of the ``hypercorn`` command (hypercorn.__main__): flags, precedence, errors.

The command's job ends when it hands a Config to ``hypercorn.run.run``; these tests replace
that one function to capture the Config instead of serving. Serving from the installed
command is tested end to end elsewhere.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import hypercorn.__main__ as cli
from hypercorn.__main__ import _load_config, main
from hypercorn.config import Config

Serve = Callable[..., Config]

# Every flag of the reference command (api-surface.md section 2).
SPEC_FLAGS = (
    "--access-log",
    "--access-logfile",
    "--access-logformat",
    "--backlog",
    "-b",
    "--bind",
    "--ca-certs",
    "--certfile",
    "--cert-reqs",
    "--ciphers",
    "-c",
    "--config",
    "-D",
    "--daemon",
    "--debug",
    "--error-log",
    "--error-logfile",
    "--log-file",
    "--graceful-timeout",
    "--read-timeout",
    "--max-requests",
    "--max-requests-jitter",
    "-g",
    "--group",
    "-k",
    "--worker-class",
    "--keep-alive",
    "--keyfile",
    "--keyfile-password",
    "--insecure-bind",
    "--log-config",
    "--log-level",
    "-p",
    "--pid",
    "--quic-bind",
    "--reload",
    "--root-path",
    "--server-name",
    "--statsd-host",
    "--statsd-prefix",
    "-m",
    "--umask",
    "-u",
    "--user",
    "--verify-mode",
    "--websocket-ping-interval",
    "-w",
    "--workers",
)

GROUPS = {
    "Application and workers": (
        "APPLICATION",
        "--config",
        "--worker-class",
        "--workers",
        "--max-requests",
        "--max-requests-jitter",
        "--root-path",
        "--debug",
    ),
    "Binding and sockets": ("--bind", "--insecure-bind", "--quic-bind", "--server-name"),
    "TLS": ("--certfile", "--keyfile", "--keyfile-password", "--ca-certs", "--ciphers"),
    "Timeouts and limits": ("--keep-alive", "--read-timeout", "--graceful-timeout"),
    "Logging": ("--access-logfile", "--error-logfile", "--log-file", "--log-level"),
    "Statsd": ("--statsd-host", "--statsd-prefix"),
    "Process": ("--pid", "--user", "--group", "--umask", "--daemon", "--reload"),
}

DISTRIBUTIONS = ("hypercorn-protocols", "hypercorn-workers", "hypercorn-runner", "hypercorn-cli")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list[Config]:
    """The Configs main() hands to run(), which is replaced so that nothing is served."""
    configs: list[Config] = []

    def capture(config: Config) -> int:
        configs.append(config)
        return 0

    monkeypatch.setattr(cli, "run", capture)
    return configs


@pytest.fixture
def serve(served: list[Config]) -> Serve:
    """Run the command with these arguments (and the application) and return its Config."""

    def run_command(*argv: str) -> Config:
        assert main([*argv, "app:app"]) == 0
        assert len(served) == 1
        return served.pop()

    return run_command


@pytest.fixture(autouse=True)
def _wide_help(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")  # argparse wraps help to the terminal


# -- each flag sets its Config attribute ----------------------------------------------------

FLAG_CASES: list[tuple[list[str], str, Any]] = [
    (["--access-logfile", "-"], "accesslog", "-"),
    (["--access-logformat", "%(h)s %(s)s"], "access_log_format", "%(h)s %(s)s"),
    (["--backlog", "50"], "backlog", 50),
    (["-b", "0.0.0.0:80"], "bind", ["0.0.0.0:80"]),
    (
        ["--bind", "[::1]:8443", "-b", "unix:/tmp/h.sock"],
        "bind",
        ["[::1]:8443", "unix:/tmp/h.sock"],
    ),
    (["--ca-certs", "ca.pem"], "ca_certs", "ca.pem"),
    (["--certfile", "cert.pem"], "certfile", "cert.pem"),
    (["--ciphers", "ECDHE+CHACHA20"], "ciphers", "ECDHE+CHACHA20"),
    (["--debug"], "debug", True),
    (["--error-logfile", "errors.log"], "errorlog", "errors.log"),
    (["--log-file", "other.log"], "errorlog", "other.log"),
    (["--graceful-timeout", "2.5"], "graceful_timeout", 2.5),
    (["--read-timeout", "7"], "read_timeout", 7.0),
    (["--max-requests", "100"], "max_requests", 100),
    (["--max-requests-jitter", "10"], "max_requests_jitter", 10),
    (["-g", "100"], "group", 100),
    (["--group", "0"], "group", 0),
    (["-k", "trio"], "worker_class", "trio"),
    (["--worker-class", "uvloop"], "worker_class", "uvloop"),
    (["--keep-alive", "0.5"], "keep_alive_timeout", 0.5),
    (["--keyfile", "key.pem"], "keyfile", "key.pem"),
    (["--keyfile-password", "secret"], "keyfile_password", "secret"),
    (["--insecure-bind", "127.0.0.1:80"], "insecure_bind", ["127.0.0.1:80"]),
    (["--log-config", "json:logging.json"], "logconfig", "json:logging.json"),
    (["--log-level", "debug"], "loglevel", "debug"),
    (["-p", "server.pid"], "pid_path", "server.pid"),
    (["--pid", "other.pid"], "pid_path", "other.pid"),
    (
        ["--quic-bind", "127.0.0.1:443", "--quic-bind", "[::1]:443"],
        "quic_bind",
        ["127.0.0.1:443", "[::1]:443"],
    ),
    (["--reload"], "use_reloader", True),
    (["--root-path", "/api/"], "root_path", "/api"),
    (
        ["--server-name", "a.example", "--server-name", "b.example:8000"],
        "server_names",
        ["a.example", "b.example:8000"],
    ),
    (["--statsd-host", "localhost:8125"], "statsd_host", "localhost:8125"),
    (["--statsd-prefix", "web"], "statsd_prefix", "web"),
    (["-m", "022"], "umask", 0o22),
    (["--umask", "0o27"], "umask", 0o27),
    (["-m", "18"], "umask", 18),
    (["-m", "0"], "umask", 0),
    (["-u", "1000"], "user", 1000),
    (["--user", "0"], "user", 0),
    (["--verify-mode", "CERT_REQUIRED"], "verify_mode", ssl.CERT_REQUIRED),
    (["--verify-mode", "cert_optional"], "verify_mode", ssl.CERT_OPTIONAL),
    (["--verify-mode", "Cert_None"], "verify_mode", ssl.CERT_NONE),
    (["--websocket-ping-interval", "1.5"], "websocket_ping_interval", 1.5),
    (["--http1-parser", "h11"], "http1_parser", "h11"),
    (["-w", "0"], "workers", 0),
    (["--workers", "4"], "workers", 4),
]


@pytest.mark.parametrize(("argv", "attribute", "expected"), FLAG_CASES)
def test_flag_sets_its_option(
    serve: Serve, argv: list[str], attribute: str, expected: Any
) -> None:
    config = serve(*argv)
    value = getattr(config, attribute)
    assert value == expected
    assert type(value) is type(expected)
    assert config.application_path == "app:app"


def test_every_flag_is_covered() -> None:
    tested = {
        arg for argv, _, _ in FLAG_CASES for arg in argv if arg.startswith("-") and arg != "-"
    }
    elsewhere = {  # tested below: -c/--config, -D/--daemon and the deprecated flags
        "-c",
        "--config",
        "-D",
        "--daemon",
        "--access-log",
        "--error-log",
        "--cert-reqs",
    }
    extensions = {"--http1-parser"}  # flags of this server that Hypercorn does not have
    assert tested | elsewhere == set(SPEC_FLAGS) | extensions


def _option_names() -> list[str]:
    annotated = [name for name in Config.__annotations__ if not name.startswith("_")]
    properties = ["bind", "insecure_bind", "quic_bind", "root_path"]
    return [name for name in annotated + properties if name != "application_path"]


def test_no_flags_leave_the_defaults(serve: Serve) -> None:
    config, defaults = serve(), Config()
    for name in _option_names():
        assert getattr(config, name) == getattr(defaults, name), name


def test_positional_application_is_required(
    served: list[Config], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-w", "2"]) == 2
    assert "APPLICATION" in capsys.readouterr().err
    assert served == []


def test_main_uses_sys_argv_only_without_arguments(
    served: list[Config], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", ["hypercorn", "-w", "3", "module:app"])
    assert main() == 0
    assert served[0].workers == 3
    assert served[0].application_path == "module:app"
    # Fixed: the reference fell back to sys.argv for an empty list too.
    assert main([]) == 2
    assert "required" in capsys.readouterr().err
    assert len(served) == 1


def test_main_returns_what_run_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "run", lambda config: 3)
    assert main(["app:app"]) == 3


# -- the reference's bugs, fixed ----------------------------------------------------------


def test_max_requests_jitter_sets_the_jitter(serve: Serve) -> None:
    config = serve("--max-requests", "100", "--max-requests-jitter", "7")
    assert (config.max_requests, config.max_requests_jitter) == (100, 7)


def test_statsd_prefix_applies_only_when_given(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "hypercorn.toml"
    path.write_text('statsd_prefix = "fromfile"\n')
    assert serve("-c", str(path)).statsd_prefix == "fromfile"
    assert serve("-c", str(path), "--statsd-prefix", "flag").statsd_prefix == "flag"


# -- precedence: defaults < -c file < flags -------------------------------------------------

TOML = """\
workers = 3
bind = ["0.0.0.0:9000", "[::]:9000"]
server_names = ["example.com"]
keep_alive_timeout = 9.5
max_requests_jitter = 5
daemon = false
loglevel = "WARNING"
"""


def test_toml_file_then_flags(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "hypercorn.toml"
    path.write_text(TOML)
    config = serve("-c", str(path))
    assert config.workers == 3
    assert config.bind == ["0.0.0.0:9000", "[::]:9000"]
    assert config.server_names == ["example.com"]
    assert config.keep_alive_timeout == 9.5
    assert config.daemon is False
    assert config.backlog == Config.backlog  # not in the file: the default

    config = serve("--config", str(path), "-w", "2", "-b", "127.0.0.1:1", "-D")
    assert config.workers == 2
    assert config.bind == ["127.0.0.1:1"]  # the flag replaces the file's whole list
    assert config.daemon is True
    assert config.server_names == ["example.com"]
    assert (config.keep_alive_timeout, config.max_requests_jitter) == (9.5, 5)
    assert config.loglevel == "WARNING"

    config = serve("-c", str(path), "--server-name", "a.test", "--server-name", "b.test")
    assert config.server_names == ["a.test", "b.test"]
    assert config.bind == ["0.0.0.0:9000", "[::]:9000"]


def test_python_file(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "settings.py"
    path.write_text('import os\nworkers = 5\nbind = "unix:/tmp/app.sock"\nroot_path = "/r/"\n')
    config = serve("-c", f"file:{path}")
    assert (config.workers, config.bind, config.root_path) == (5, ["unix:/tmp/app.sock"], "/r")
    assert serve("-c", f"file:{path}", "--workers", "1").workers == 1


@pytest.fixture
def config_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The name of an importable module (a unique one) that holds configurations."""
    name = f"cli_settings_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(
        "workers = 6\n"
        "graceful_timeout = 1.5\n"
        "class Production:\n"
        "    workers = 8\n"
        "    bind = ['0.0.0.0:80']\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_python_module_and_object(serve: Serve, config_module: str) -> None:
    config = serve("-c", f"python:{config_module}")
    assert (config.workers, config.graceful_timeout) == (6, 1.5)
    config = serve("-c", f"python:{config_module}.Production")
    assert (config.workers, config.bind) == (8, ["0.0.0.0:80"])
    config = serve("-c", f"python:{config_module}.Production", "-b", "[::]:80", "-w", "0")
    assert (config.workers, config.bind) == (0, ["[::]:80"])


def test_load_config(tmp_path: Path, config_module: str) -> None:
    assert _load_config(None).workers == Config.workers
    assert _load_config(f"python:{config_module}").workers == 6
    path = tmp_path / "c.toml"
    path.write_text("workers = 2\n")
    assert _load_config(str(path)).workers == 2
    path = tmp_path / "c.py"
    path.write_text("workers = 4\n")
    assert _load_config(f"file:{path}").workers == 4


# -- deprecated flags -----------------------------------------------------------------------


DEPRECATED_CASES: list[tuple[list[str], str, str, Any]] = [
    # (argv, the deprecated flag, attribute, expected value)
    (["--access-log", "old.log"], "--access-log", "accesslog", "old.log"),
    (
        ["--access-log", "old.log", "--access-logfile", "new.log"],
        "--access-log",
        "accesslog",
        "new.log",
    ),
    (
        ["--access-logfile", "new.log", "--access-log", "old.log"],
        "--access-log",
        "accesslog",
        "new.log",
    ),
    (["--error-log", "old.log"], "--error-log", "errorlog", "old.log"),
    (
        ["--error-log", "old.log", "--error-logfile", "new.log"],
        "--error-log",
        "errorlog",
        "new.log",
    ),
    (["--log-file", "new.log", "--error-log", "old.log"], "--error-log", "errorlog", "new.log"),
    (["--cert-reqs", "2"], "--cert-reqs", "verify_mode", ssl.CERT_REQUIRED),
    (
        ["--cert-reqs", "0", "--verify-mode", "CERT_OPTIONAL"],
        "--cert-reqs",
        "verify_mode",
        ssl.CERT_OPTIONAL,
    ),
]


@pytest.mark.parametrize(("argv", "flag", "attribute", "expected"), DEPRECATED_CASES)
def test_deprecated_flag(
    serve: Serve, argv: list[str], flag: str, attribute: str, expected: Any
) -> None:
    # The new flag wins whatever the order; only one warning (no FutureWarning from
    # Config.cert_reqs: pytest.warns would re-raise it).
    with pytest.warns(DeprecationWarning, match=f"^{flag} is deprecated") as record:
        config = serve(*argv)
    assert len(record) == 1
    assert getattr(config, attribute) == expected


def test_deprecation_is_shown_by_default(tmp_path: Path) -> None:
    # Python hides DeprecationWarning raised outside __main__; the command shows its own.
    code = (
        "import sys, hypercorn.__main__ as cli\n"
        "cli.run = lambda config: 0\n"
        "sys.exit(cli.main(['--access-log', '-', 'app:app']))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONWARNINGS"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "DeprecationWarning: --access-log is deprecated, use --access-logfile" in result.stderr


# -- errors: one line on stderr, status 2 (command line) or 1 (configuration) ---------------

USAGE_ERRORS = [
    (["--no-such-flag", "app:app"], "unrecognized arguments: --no-such-flag"),
    (["-w", "two", "app:app"], "-w/--workers"),
    (["-w", "-1", "app:app"], "-w/--workers"),
    (["--backlog", "1.5", "app:app"], "--backlog"),
    (["--verify-mode", "CERT_MAYBE", "app:app"], "CERT_REQUIRED"),
    (["-k", "gevent", "app:app"], "invalid choice: 'gevent'"),
    ([], "APPLICATION"),
    (["-m", "0o9", "app:app"], "-m/--umask"),
    (["-m", "1000", "app:app"], "-m/--umask"),
    (["--keep-alive", "nan", "app:app"], "--keep-alive"),
    (["--graceful-timeout", "-1", "app:app"], "--graceful-timeout"),
    (["--log-level", "loud", "app:app"], "--log-level"),
    (["--cert-reqs", "7", "app:app"], "--cert-reqs"),
    (["-b", "127.0.0.1:99999", "app:app"], "-b/--bind: bind: cannot parse"),
    (["--quic-bind", "[::1", "app:app"], "--quic-bind"),
    (["app:app", "extra"], "unrecognized arguments: extra"),
]


@pytest.mark.parametrize(("argv", "expected"), USAGE_ERRORS)
def test_usage_error(
    served: list[Config], capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("hypercorn: error: ")
    assert err.endswith("\n")
    assert err.count("\n") == 1
    assert expected in err
    assert "hypercorn --help" in err
    assert served == []


CONFIG_ERRORS: list[tuple[str, str, str]] = [
    # (file name, content or "" for no file, -c prefix)
    ("missing.toml", "", ""),
    ("bad.toml", "workers = \n", ""),
    ("bind.toml", "bind = 5\n", ""),
    ("bind2.toml", 'bind = "host:port"\n', ""),
    ("missing.py", "", "file:"),
    ("syntax.py", "workers = (\n", "file:"),
    ("raises.py", "workers = 1 / 0\n", "file:"),
]


@pytest.mark.parametrize(("name", "content", "prefix"), CONFIG_ERRORS)
def test_config_error(
    served: list[Config],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    content: str,
    prefix: str,
) -> None:
    path = tmp_path / name
    if content:
        path.write_text(content)
    assert main(["-c", f"{prefix}{path}", "app:app"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("hypercorn: error: ")
    assert err.count("\n") == 1
    assert name in err  # the message names the file
    assert served == []


@pytest.mark.parametrize("spec", ["python:", "file:"])
def test_config_prefix_without_a_name(
    served: list[Config], capsys: pytest.CaptureFixture[str], spec: str
) -> None:
    assert main(["-c", spec, "app:app"]) == 1
    err = capsys.readouterr().err
    what = "module" if spec == "python:" else "file"
    assert err == f"hypercorn: error: -c {spec}: expected a {what} name after {spec[:-1]!r}\n"
    assert served == []


def test_config_module_errors(
    served: list[Config], capsys: pytest.CaptureFixture[str], config_module: str
) -> None:
    for spec in ("python:no_such_module_for_hypercorn", f"python:{config_module}.Missing"):
        assert main(["-c", spec, "app:app"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("hypercorn: error: cannot import configuration")
        assert err.count("\n") == 1
    assert served == []


# -- --help and --version -------------------------------------------------------------------


def test_help(capsys: pytest.CaptureFixture[str], served: list[Config]) -> None:
    assert main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith("usage: hypercorn")
    for flag in (*SPEC_FLAGS, "-h", "--help", "--version"):
        assert f" {flag}" in out, flag
    # Each group holds its flags.
    titles = [f"\n{title}:\n" for title in GROUPS]
    positions = [out.index(title) for title in titles]
    assert positions == sorted(positions)
    ends = [*positions[1:], out.index("\nPrecedence:")]
    for (title, flags), start, end in zip(GROUPS.items(), positions, ends, strict=True):
        section = out[start:end]
        for flag in flags:
            assert flag in section, (title, flag)
    assert served == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in DISTRIBUTIONS:
        assert f"{name} {version(name)}" in lines


# -- real processes -------------------------------------------------------------------------


def test_python_dash_m_version() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hypercorn", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "hypercorn-cli " in result.stdout
    assert result.stderr == ""


def test_installed_command() -> None:
    command = Path(sys.executable).parent / "hypercorn"
    assert command.exists(), "the hypercorn console script is not installed"
    result = subprocess.run([str(command), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "--worker-class" in result.stdout
    result = subprocess.run(
        [str(command), "--workers", "many", "app:app"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("hypercorn: error: argument -w/--workers")
    assert result.stderr.count("\n") == 1
