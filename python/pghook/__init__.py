"""pghook: Apache Airflow's PostgresHook on a sandboxed WebAssembly core.

Swap ``from airflow.providers.postgres.hooks.postgres import PostgresHook``
for ``from pghook import PostgresHook``: the same connections, extras,
method names, arguments and return shapes. Connections come from a
``connections`` mapping, then a ``connections_file``, then
``AIRFLOW_CONN_<ID>``, then, when Airflow is installed, Airflow's own lookup
(so its secrets backends work).
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._dbapi import Connection, Cursor, NotSupportedError
from ._rows import DictRow, _shaped  # noqa: F401 (DictRow: public)
from . import _frames
from ._frames import MissingDependencyError
from ._pghook import (
    AwsError,
    CallTimeout,
    ConfigError,
    ConnectError,
    ConnectionNotFound,
    Core,
    DatabaseError,
    Error,
    FileError,
    GuestError,
    InterfaceError,
    LimitError,
    SandboxDenied,
    SecretsError,
    TlsError,
)

__all__ = [
    "PostgresHook",
    "fetch_all_handler",
    "fetch_one_handler",
    "Error",
    "ConfigError",
    "ConnectionNotFound",
    "SecretsError",
    "SandboxDenied",
    "ConnectError",
    "TlsError",
    "DatabaseError",
    "FileError",
    "AwsError",
    "LimitError",
    "GuestError",
    "CallTimeout",
    "InterfaceError",
    "NotSupportedError",
    "Connection",
    "Cursor",
    "MissingDependencyError",
]


def fetch_all_handler(cursor: Any) -> Any:
    """Airflow's handler returning every row (pass it as ``run(handler=...)``)."""
    return cursor.fetchall()


def fetch_one_handler(cursor: Any) -> Any:
    """Airflow's handler returning the first row."""
    return cursor.fetchone()


def _airflow_lookup() -> Optional[Tuple[Any, Tuple[type, ...]]]:
    """Airflow's ``BaseHook`` and its not-found exceptions, from the Task SDK
    (Airflow 3) or its older home (Airflow 2); None without Airflow."""
    try:
        from airflow.sdk import BaseHook  # type: ignore[import-not-found]
    except ImportError:
        try:
            from airflow.hooks.base import BaseHook  # type: ignore[import-not-found]
        except ImportError:
            return None
    not_found = []
    for module in ("airflow.sdk.exceptions", "airflow.exceptions"):
        try:
            not_found.append(getattr(__import__(module, fromlist=["_"]), "AirflowNotFoundException"))
        except (ImportError, AttributeError):
            pass
    return BaseHook, tuple(not_found)


def _airflow_connection(conn_id: str) -> Optional[str]:
    """A connection from Airflow's own lookup, if Airflow is installed: None
    when Airflow says it is not defined. Any other failure of the lookup
    propagates, and pghook raises it as a ``SecretsError``."""
    lookup = _airflow_lookup()
    if lookup is None:
        return None
    base_hook, not_found = lookup
    try:
        conn = base_hook.get_connection(conn_id)
    except not_found:
        return None
    return json.dumps(
        {
            "conn_type": conn.conn_type,
            "host": conn.host,
            "schema": conn.schema,
            "login": conn.login,
            "password": conn.password,
            "port": conn.port,
            "extra": conn.extra or None,
        }
    )


class _Cursor:
    """What a handler sees of one statement's result."""

    def __init__(self, rows: List[Any], description: List[Tuple[Any, ...]]):
        self._rows = rows
        self._next = 0
        self.description = description
        self.rowcount = len(rows)

    def fetchall(self) -> List[Any]:
        rows, self._next = self._rows[self._next :], len(self._rows)
        return rows

    def fetchone(self) -> Any:
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int = 1) -> List[Any]:
        rows = self._rows[self._next : self._next + size]
        self._next += len(rows)
        return rows


class PostgresHook:
    """Airflow's PostgresHook, on pghook's core.

    Sandbox settings (keyword only): ``root`` (files are confined to it;
    default the current directory), ``allow_hosts`` (default ``["*"]``),
    ``allow_sockets`` (default ``["/var/run/postgresql"]``), ``config_paths``
    (further files or directories libpq's files may be read from, beside
    those libpq reads by default), ``connections`` (conn_id to URI or JSON),
    ``connections_file`` (a JSON file of them, as the CLI's ``--connections``:
    ``{"conn_id": "postgres://..." | {"conn_type": ..., ...}}``, read once,
    asked after ``connections`` and before ``AIRFLOW_CONN_*``), ``timeout``
    (seconds per call), ``max_result_mb``, ``max_memory_mb`` (the hook core's
    memory: statements and ``insert_rows``' rows pass through it, results
    do not), ``libpq_environment``,
    ``ambient_aws``, ``session_reuse``.
    """

    conn_name_attr = "postgres_conn_id"
    default_conn_name = "postgres_default"
    conn_type = "postgres"
    hook_name = "Postgres"
    supports_autocommit = True

    def __init__(
        self,
        *args: Any,
        options: Optional[str] = None,
        enable_log_db_messages: bool = False,
        root: Optional[str] = None,
        allow_hosts: Optional[Sequence[str]] = None,
        allow_sockets: Optional[Sequence[str]] = None,
        config_paths: Optional[Sequence[str]] = None,
        connections: Optional[Mapping[str, str]] = None,
        connections_file: Optional[Union[str, os.PathLike]] = None,
        timeout: Optional[float] = None,
        max_result_mb: int = 1024,
        max_memory_mb: int = 2048,
        libpq_environment: bool = True,
        ambient_aws: bool = True,
        session_reuse: int = 0,
        **kwargs: Any,
    ) -> None:
        conn_id = kwargs.pop(self.conn_name_attr, None)
        if conn_id is None and args:
            conn_id = args[0]
        self.postgres_conn_id = conn_id or self.default_conn_name
        self.database = kwargs.pop("database", None) or kwargs.pop("schema", None)
        self.options = options
        self.enable_log_db_messages = enable_log_db_messages
        self._core = Core(
            self.postgres_conn_id,
            self.database,
            options,
            enable_log_db_messages,
            root=root,
            allow_hosts=list(allow_hosts) if allow_hosts is not None else None,
            allow_sockets=list(allow_sockets) if allow_sockets is not None else None,
            config_paths=list(config_paths) if config_paths is not None else None,
            connections=list(connections.items()) if connections else None,
            connections_file=connections_file,
            connection_source=_airflow_connection,
            timeout=timeout,
            max_result_mb=max_result_mb,
            max_memory_mb=max_memory_mb,
            libpq_environment=libpq_environment,
            ambient_aws=ambient_aws,
            session_reuse=session_reuse,
        )

    def explain(self) -> dict:
        """The keyword arguments ``get_conn`` would pass to ``psycopg2.connect``
        (the password shown as ``***``)."""
        return json.loads(self._core.explain())

    def get_records(self, sql: str, parameters: Optional[Union[Sequence[Any], Mapping[str, Any]]] = None) -> List[Any]:
        """Every row of the query."""
        shape, names, rows = self._core.get_records(sql, parameters)
        return _shaped(shape, names, rows)

    def get_first(self, sql: str, parameters: Optional[Union[Sequence[Any], Mapping[str, Any]]] = None) -> Any:
        """The first row of the query, or None."""
        shape, names, rows = self._core.get_first(sql, parameters)
        shaped = _shaped(shape, names, rows)
        return shaped[0] if shaped else None

    def get_df(
        self,
        sql: Union[str, List[str]],
        parameters: Optional[Union[Sequence[Any], Mapping[str, Any]]] = None,
        *,
        df_type: str = "pandas",
        **kwargs: Any,
    ) -> Any:
        """The query's result as a pandas DataFrame (needs pandas and pyarrow)
        or, with ``df_type="polars"``, a polars one, built from Arrow columns
        typed by the server; ``kwargs`` as ``pandas.read_sql`` or
        ``polars.read_database`` take them. Raises ``MissingDependencyError``
        (an ImportError) naming what to install when the library is missing."""
        return _frames.get_df(self._core, sql, parameters, df_type, kwargs)

    def run(
        self,
        sql: Union[str, Iterable[str]],
        autocommit: bool = False,
        parameters: Optional[Union[Sequence[Any], Mapping[str, Any]]] = None,
        handler: Optional[Callable[[Any], Any]] = None,
        split_statements: bool = False,
        return_last: bool = True,
    ) -> Any:
        """Airflow's ``run``: the statements in order, one transaction unless
        ``autocommit``; ``handler`` (``fetch_all_handler``,
        ``fetch_one_handler`` or your own, given a cursor-like object) makes
        the result; None without one."""
        single = isinstance(sql, str)
        if not single:
            sql = list(sql)
            if not sql:
                raise ValueError("List of SQL statements is empty")
        fetch = "none" if handler is None else "all"
        shape, results = self._core.run(sql, parameters, autocommit, split_statements, return_last, fetch)
        if handler is None:
            return None
        outcomes = []
        for names, rows in results:
            description = [(name, None, None, None, None, None, None) for name in names]
            outcomes.append(handler(_Cursor(_shaped(shape, names, rows), description)))
        if single and return_last:
            return outcomes[-1] if outcomes else None
        return outcomes

    def test_connection(self) -> Tuple[bool, str]:
        """(True, Airflow's message), or (False, the error)."""
        try:
            return True, self._core.test_connection()
        except Error as e:
            return False, str(e)

    def copy_expert(self, sql: str, filename: Union[str, os.PathLike]) -> None:
        """A ``COPY ... FROM STDIN`` or ``COPY ... TO STDOUT`` against a file;
        COPY FROM a missing file creates it empty, as Airflow documents."""
        self._core.copy_expert(sql, os.fspath(filename))

    def bulk_load(self, table: str, tmp_file: Union[str, os.PathLike]) -> None:
        """Load a tab-delimited file into a table."""
        self._core.bulk_load(table, os.fspath(tmp_file))

    def bulk_dump(self, table: str, tmp_file: Union[str, os.PathLike]) -> None:
        """Dump a table into a tab-delimited file (whole or not at all)."""
        self._core.bulk_dump(table, os.fspath(tmp_file))

    def get_uri(self) -> str:
        """The SQLAlchemy URI of the connection, password included."""
        return self._core.get_uri()

    def insert_rows(
        self,
        table: str,
        rows: Iterable[Sequence[Any]],
        target_fields: Optional[Iterable[str]] = None,
        commit_every: int = 1000,
        replace: bool = False,
        *,
        executemany: bool = False,
        fast_executemany: bool = False,
        autocommit: bool = False,
        **kwargs: Any,
    ) -> None:
        """Insert rows, committing every ``commit_every`` (0: once)."""
        replace_index = kwargs.get("replace_index")
        if isinstance(replace_index, str):
            replace_index = [replace_index]
        self._core.insert_rows(
            table,
            rows,
            list(target_fields) if target_fields is not None else None,
            commit_every,
            replace,
            list(replace_index) if replace_index is not None else None,
            bool(fast_executemany),
        )

    def get_table_primary_key(self, table: str, schema: Optional[str] = "public") -> Optional[List[str]]:
        """The primary key's columns in key order, or None."""
        return self._core.get_table_primary_key(table, schema)

    def get_iam_token(self, conn: Any = None) -> Tuple[str, str, int]:
        """(login, token, port) for RDS, Redshift or Redshift Serverless; the
        hook's own connection is used whatever ``conn`` is."""
        return self._core.get_iam_token()

    def get_conn(self) -> Connection:
        """A DB-API connection, as psycopg2's: one session held open, a
        transaction per ``commit``/``rollback`` unless ``autocommit``, and
        cursors whose rows take the ``cursor`` extra's shape."""
        self.conn = Connection(self._core.get_conn())
        return self.conn

    def get_cursor(self) -> Cursor:
        """A cursor of a new connection."""
        return self.get_conn().cursor()
