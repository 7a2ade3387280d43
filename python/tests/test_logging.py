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
