"""Errors are Python exceptions of pghook's classes, each a pghook.Error
with a ``.kind``, and database errors carry the server's ``.sqlstate``."""

from __future__ import annotations

import time

import pytest

import pghook

from conftest import CONN_ID

ERROR_CLASSES = [
    pghook.ConfigError,
    pghook.ConnectionNotFound,
    pghook.SecretsError,
    pghook.SandboxDenied,
    pghook.ConnectError,
    pghook.TlsError,
    pghook.DatabaseError,
    pghook.FileError,
    pghook.AwsError,
    pghook.LimitError,
    pghook.GuestError,
    pghook.CallTimeout,
    pghook.InterfaceError,
    pghook.NotSupportedError,
    pghook.MissingDependencyError,
]


def test_every_error_class_is_a_pghook_error() -> None:
    assert issubclass(pghook.Error, Exception)
    for cls in ERROR_CLASSES:
        assert issubclass(cls, pghook.Error), cls
    assert issubclass(pghook.TlsError, pghook.ConnectError)
    # Even one raised without a pghook error behind it has both attributes.
    for cls in ERROR_CLASSES + [pghook.Error]:
        assert isinstance(cls.kind, str) and cls.sqlstate is None, cls
    assert pghook.NotSupportedError("x").kind == "not_supported"
    exported = [getattr(pghook, name) for name in pghook.__all__]
    errors = {cls for cls in exported if isinstance(cls, type) and issubclass(cls, BaseException)}
    assert errors == set(ERROR_CLASSES) | {pghook.Error}


@pytest.mark.parametrize(
    "sql, sqlstate",
    [
        ("select * from no_such_table", "42P01"),
        ("select 1/0", "22012"),
        ("select 'x'::int", "22P02"),
    ],
)
def test_a_database_error_has_the_servers_sqlstate(hook, sql: str, sqlstate: str) -> None:
    with pytest.raises(pghook.DatabaseError) as failed:
        hook.get_records(sql)
    assert failed.value.sqlstate == sqlstate
    assert failed.value.kind == "database"


def test_run_fails_with_the_sqlstate_of_the_failing_statement(hook) -> None:
    with pytest.raises(pghook.DatabaseError) as failed:
        hook.run(["select 1", "select 1/0"])
    assert failed.value.sqlstate == "22012"


def test_an_unknown_connection_id(clean_environment) -> None:
    hook = pghook.PostgresHook("pghook_no_such_connection", connections={CONN_ID: "postgres://localhost/x"})
    with pytest.raises(pghook.ConnectionNotFound, match="pghook_no_such_connection") as failed:
        hook.get_first("select 1")
    assert failed.value.sqlstate is None


def test_a_file_outside_the_root_is_denied(hook, tmp_path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside.csv"
    for path in [str(outside), f"../{outside.name}"]:
        with pytest.raises(pghook.SandboxDenied):
            hook.copy_expert("COPY (select 1) TO STDOUT", path)
    assert not outside.exists()


def test_a_call_over_its_time_limit_is_stopped(uri: str, tmp_path) -> None:
    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(pghook.CallTimeout):
        hook.get_first("select pg_sleep(30)")
    assert time.monotonic() - started < 10


def test_the_core_memory_is_bounded_by_max_memory_mb(uri: str, tmp_path) -> None:
    small = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path), max_memory_mb=8)
    # Rows stay in the host: a 20 MB result needs no core memory.
    assert len(small.get_records("select repeat('x', 1000) from generate_series(1, 20000)")) == 20000
    # Past 65,536 rows the conversion hands freed pages back as it goes.
    assert small.get_records("select g, g::text from generate_series(1, 70000) g")[-1] == (70000, "70000")
    # A statement does enter the core: one of 8 MiB cannot fit.
    sql = "select 1 /* " + "x" * (8 << 20) + " */"
    with pytest.raises(pghook.GuestError, match="ran out of memory"):
        small.get_records(sql)
    # The default holds it, and the same hook goes on after a failed call.
    assert pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path)).get_records(sql) == [(1,)]
    assert small.get_first("select 1") == (1,)


def test_invalid_connection_settings_are_a_config_error(clean_environment) -> None:
    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: "postgres://localhost/db?sslmode=bogus"})
    with pytest.raises(pghook.ConfigError, match="sslmode") as failed:
        hook.explain()
    assert failed.value.kind == "config"


def test_errors_survive_pickling(hook) -> None:
    """multiprocessing and executors pickle exceptions between processes."""
    import pickle

    with pytest.raises(pghook.DatabaseError) as failed:
        hook.get_first("select 1/0")
    copy = pickle.loads(pickle.dumps(failed.value))
    assert type(copy) is pghook.DatabaseError and copy.sqlstate == "22012" and str(copy) == str(failed.value)
