"""What the hook logs reaches Python's ``logging`` (logger ``pghook``), as
Airflow's hook logs to its task log: the statements it runs, the server's
notices with ``enable_log_db_messages``, its warnings."""

from __future__ import annotations

import logging

import pghook
from conftest import CONN_ID


def test_statements_notices_and_warnings_are_logged(uri, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="pghook")
    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path), enable_log_db_messages=True)
    hook.run("DO $$ BEGIN RAISE NOTICE 'hello from the server'; END $$")
    hook.run("drop table if exists logged; create table logged (a int)")
    hook.copy_expert("COPY logged FROM STDIN", "missing.tsv")
    records = [(r.name, r.levelno, r.getMessage()) for r in caplog.records]
    messages = [m for _, _, m in records]
    assert any(m.startswith("Running statement: DO $$") for m in messages), messages
    assert any("hello from the server" in m for m in messages), messages
    assert any(level == logging.WARNING and "missing.tsv" in m for _, level, m in records), records
    assert all(name.startswith("pghook") for name, _, _ in records), records


def test_a_quiet_logger_hears_nothing(uri, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pghook")
    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path))
    hook.get_first("select 1")
    assert not [r for r in caplog.records if r.name.startswith("pghook")]


def test_a_handler_may_call_pghook_and_runs_on_the_calling_thread(uri, tmp_path) -> None:
    """Records of a call reach Python between the slices the call runs in,
    on the thread that made the call: a handler may call pghook itself."""
    import threading

    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(tmp_path))
    seen = []

    class Nested(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("Running statement: select 'outer'"):
                seen.append((threading.current_thread() is threading.main_thread(), hook.get_first("select 'inner'")))

    handler = Nested(level=logging.INFO)
    logger = logging.getLogger("pghook")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        assert hook.get_first("select 'outer'") == ("outer",)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    assert seen == [(True, ("inner",))]
