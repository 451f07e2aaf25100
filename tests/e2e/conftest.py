"""End-to-end harness: the local stack (`python -m infra.local`) as a real subprocess, driven over HTTP.

One stack serves the whole session. Its output goes to a log file whose tail is attached to every failing
e2e test's report. The process is always stopped (SIGTERM, then SIGKILL), on teardown and at interpreter
exit alike, so no test run leaves a server behind.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HEALTH_PATH = "/api/v1/health"
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
# What the stack is configured by: the test session's own settings (tests/conftest.py) or a developer's
# shell must not leak into it, so the e2e tier runs exactly what `make dev` runs.
_SCRUBBED_NAMES = frozenset(
    {
        "PORT",
        "STAGE",
        "LOCAL_MODE",
        "CORS_ALLOW_ORIGINS",
        "SIGNING_KEYS_SECRET",
        "SECRETS_KEY_ID",
        "PASSWORD_HASH_COST",
        "MOTO_PORT",
    }
)
_SCRUBBED_PREFIXES = ("AWS_", "POWERTOOLS_")
_SCRUBBED_SUFFIXES = ("_TABLE", "_QUEUE_URL", "_API_BASE_URL", "PUBLIC_API_URL")

_running: set[subprocess.Popen[bytes]] = set()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrubbed(name: str) -> bool:
    return name in _SCRUBBED_NAMES or name.startswith(_SCRUBBED_PREFIXES) or name.endswith(_SCRUBBED_SUFFIXES)


class LocalStack:
    """One `python -m infra.local` process on a free port, logging to `log_path`; `environment` adds settings
    (a fake model provider's, say) to the scrubbed environment it runs in, `arguments` options to its command
    line (`--moto-port`, `--attach-aws`: a second gateway on the first one's AWS, another "container")."""

    def __init__(
        self,
        log_path: Path,
        port: int | None = None,
        environment: Mapping[str, str] | None = None,
        arguments: Sequence[str] = (),
    ) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self.environment = dict(environment or {})
        self.arguments = tuple(arguments)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> LocalStack:
        env = {key: value for key, value in os.environ.items() if not _scrubbed(key)}
        env.update(self.environment, PYTHONUNBUFFERED="1")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "infra.local", "--port", str(self.port), *self.arguments],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only calls prctl, before exec
            )
        _running.add(self.process)
        return self

    def wait_until_healthy(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the local stack exited with {self.process.returncode}:\n{self.log()}")
            try:
                response = httpx.get(self.base_url + HEALTH_PATH, timeout=2)
                if response.status_code == 200:
                    return
                last_error = f"{response.status_code} {response.text[:200]}"
            except httpx.HTTPError as error:
                last_error = repr(error)
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"GET {HEALTH_PATH} never answered 200 within {timeout}s ({last_error}):\n{self.log()}")

    def send_signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it does not exit in time; the exit code (None if never started)."""
        if self.process is None:
            return None
        code = _terminate(self.process)
        _running.discard(self.process)
        return code

    def log(self, tail_lines: int = 200) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(lines[-tail_lines:])


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux to SIGTERM it when the test process dies, however it dies
    (even SIGKILL, which no finalizer or atexit hook survives). Elsewhere the hooks below must do."""
    if sys.platform == "linux":
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _terminate(process: subprocess.Popen[bytes]) -> int:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@atexit.register
def _stop_leftovers() -> None:
    # The fixtures stop what they start; this covers an interpreter exit that skipped their teardown.
    for process in list(_running):
        _terminate(process)


@contextmanager
def running_stack(
    log_path: Path, environment: Mapping[str, str] | None = None, arguments: Sequence[str] = ()
) -> Iterator[LocalStack]:
    """A stack of its own, healthy, stopped when the block ends; `environment` adds settings (a fake model's),
    `arguments` command-line options."""
    stack = LocalStack(log_path, environment=environment, arguments=arguments).start()
    try:
        stack.wait_until_healthy()
        yield stack
    finally:
        stack.stop()


def model_environment(fake_anthropic_url: str) -> dict[str, str]:
    """The settings of a stack whose model is a fake Anthropic API at that URL."""
    return {"ANTHROPIC_API_KEY": "test-key", "ANTHROPIC_BASE_URL": fake_anthropic_url}


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """The session's running stack."""
    with running_stack(tmp_path_factory.mktemp("local-stack") / "local.log") as stack:
        yield stack


@pytest.fixture(scope="session")
def base_url(local_stack: LocalStack) -> str:
    return local_stack.base_url


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture
def start_local_stack(tmp_path: Path) -> Iterator[Callable[[], LocalStack]]:
    """Start extra, private stacks (e.g. to test stopping one); each is stopped after the test."""
    started: list[LocalStack] = []

    def start() -> LocalStack:
        stack = LocalStack(tmp_path / f"local-{len(started)}.log").start()
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    # A failing e2e test is usually explained by the server's log: attach its tail to the report.
    if report.failed and "local_stack" in getattr(item, "fixturenames", ()):
        stack = item.funcargs.get("local_stack") if hasattr(item, "funcargs") else None
        if isinstance(stack, LocalStack):
            report.sections.append(("local stack log (tail)", stack.log(80)))
    return report
