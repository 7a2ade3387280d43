"""Fixtures of pghook's pytest suite.

The suite runs against a real PostgreSQL: ``PGHOOK_TEST_URI`` is the Airflow
URI of a database it may freely use (create tables and types, drop its own).
``cargo test -p pghook --test all -- python::pytest_suite`` (and so
``scripts/test``) starts a throwaway cluster and runs the suite with it set;
without it, every test is skipped with that hint.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any, Dict, Iterator, Optional, Sequence

import pytest

URI = os.environ.get("PGHOOK_TEST_URI")

HOW_TO_RUN = (
    "PGHOOK_TEST_URI is not set: run `cargo test -p pghook --test all -- python::pytest_suite` "
    "(or scripts/test), which starts a throwaway PostgreSQL and runs this suite against it, "
    "or set PGHOOK_TEST_URI to the Airflow URI of a database the suite may freely use"
)

#: The connection id the tests' hooks use.
CONN_ID = "pytest"


#: Airflow's home for a run by hand without one: Airflow writes its
#: configuration there when first imported.
_AIRFLOW_HOME: Optional[tempfile.TemporaryDirectory] = None


def pytest_configure(config: pytest.Config) -> None:
    global _AIRFLOW_HOME
    if "AIRFLOW_HOME" not in os.environ:
        _AIRFLOW_HOME = tempfile.TemporaryDirectory(prefix="pghook-airflow-home-")
        os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME.name


def pytest_unconfigure(config: pytest.Config) -> None:
    if _AIRFLOW_HOME is not None:
        _AIRFLOW_HOME.cleanup()


def pytest_report_header(config: pytest.Config) -> str:
    return f"pghook: {'database from PGHOOK_TEST_URI' if URI else HOW_TO_RUN}"


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if URI:
        return
    for item in items:
        item.add_marker(pytest.mark.skip(reason=HOW_TO_RUN))


@pytest.fixture(scope="session")
def uri() -> str:
    """The Airflow URI of the suite's database."""
    assert URI is not None
    return URI


@pytest.fixture
def hook(uri: str, tmp_path) -> Any:
    """A pghook PostgresHook on the suite's database, its files confined to a
    directory of the test's own."""
    import pghook

    return pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path))


@pytest.fixture(scope="session")
def airflow_installed() -> None:
    """Skips the test unless Airflow's PostgresHook can be imported."""
    pytest.importorskip("airflow.providers.postgres.hooks.postgres", reason="Airflow's PostgresHook is not installed")


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No AIRFLOW_CONN_* variable of the caller's leaks into the test."""
    for name in list(os.environ):
        if name.startswith("AIRFLOW_CONN_"):
            monkeypatch.delenv(name)
    yield


def run_python(
    code: str, env: Dict[str, str], cwd: Optional[str] = None, args: Sequence[str] = (), timeout: float = 60
) -> str:
    """Run ``code`` with this interpreter in a process of its own with
    ``args``, the environment ``env`` added to the tests' own (but their
    AIRFLOW_CONN_* variables); return its stdout, failing the test with its
    output if it fails."""
    merged = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    merged.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=merged, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"the child failed ({done.returncode}):\n{done.stderr}\n{done.stdout}"
    return done.stdout
