"""The suite's own machinery, as the README's test command runs it (pytest-xdist workers): a
missing server skips its tests with one summary line, or fails them with CI=true, and the log
guard still fails a test that logs a traceback or a token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.backends import Backend, skipped_summary, unavailable
from tests.conftest import GOTSMS_TOKEN, ROOT

INNER = f'''
import logging

import pytest

from tests.backends import Backend


@pytest.mark.parametrize("backend", [Backend.POSTGRES], indirect=True)
async def test_on_postgres(harness):
    pass


def test_logs_a_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("bot").exception("update failed")


def test_logs_a_token():
    logging.getLogger("bot").info("token %s", "{GOTSMS_TOKEN}")


def test_logs_nothing_wrong():
    logging.getLogger("bot").warning("a warning without a traceback")
'''


def run_inner(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(INNER)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "TEST_POSTGRES_URL": "postgresql+asyncpg://127.0.0.1:1/test",  # nobody listens
    }
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider"),
            *("--rootdir", str(tmp_path), "-o", "asyncio_mode=auto", "-o", "addopts="),
            *args,
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


def test_missing_servers_are_summed_up_and_the_log_guard_holds_in_workers(
    tmp_path: Path,
) -> None:
    result = run_inner(tmp_path, "-n", "2")
    out = result.stdout
    assert "3 passed, 1 skipped, 2 errors" in out, out  # the errors: the guard at teardown
    assert "ERROR test_inner.py::test_logs_a_traceback" in out, out
    assert "ERROR test_inner.py::test_logs_a_token" in out, out
    assert "secret in the log" in out, out
    assert "1 test on PostgreSQL + Redis skipped: " in out, out
    assert "does not answer" in out, out


def test_with_ci_a_missing_server_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="on PostgreSQL \\+ Redis: Redis at x"):
        unavailable(Backend.POSTGRES, "Redis at x does not answer")
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        unavailable(Backend.POSTGRES, "Redis at x does not answer")


def test_the_summary_counts_skips_by_reason() -> None:
    why = "PostgreSQL at 127.0.0.1:5432 does not answer (refused)"
    reasons = [f"on PostgreSQL + Redis: {why}"] * 3 + ["on SQLite with dialogs in Redis: no"]
    assert skipped_summary([*reasons, "a skip of another kind"]) == [
        "1 test on SQLite with dialogs in Redis skipped: no",
        f"3 tests on PostgreSQL + Redis skipped: {why}",
    ]
