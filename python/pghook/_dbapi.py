"""``PostgresHook.get_conn()``: a DB-API connection as psycopg2 gives one.

The session lives in pghook's host and the transaction rules in its core:
unless ``autocommit``, the first statement opens a transaction that lasts
until ``commit()`` or ``rollback()``; closing the connection rolls an open
one back. A cursor fetches its statement's whole result at ``execute``, as
psycopg2's (unnamed) cursors do; rows take the ``cursor`` extra's shape.
"""

from __future__ import annotations

import codecs
import io
import os
import tempfile
from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from ._pghook import ConnectionCore, InterfaceError
from ._rows import _shaped

Parameters = Optional[Union[Sequence[Any], Mapping[str, Any]]]

# psycopg2.extras' cursor factories, by class name, and the row shape each gives.
_FACTORY_SHAPES = {"DictCursor": "dict", "RealDictCursor": "real_dict", "NamedTupleCursor": "named_tuple"}


class NotSupportedError(InterfaceError):
    """A psycopg2 feature pghook's connection does not offer."""

    kind = "not_supported"


class Connection:
    """psycopg2's connection, as ``PostgresHook.get_conn()`` returns it. One
    call at a time: a call from another thread while one runs raises
    ``InterfaceError`` (psycopg2 makes it wait)."""

    def __init__(self, core: ConnectionCore) -> None:
        self._core = core

    @property
    def autocommit(self) -> bool:
        """Whether each statement commits on its own (off when opened)."""
        return self._core.autocommit()

    @autocommit.setter
    def autocommit(self, on: bool) -> None:
        self._core.set_autocommit(bool(on))

    def set_session(self, isolation_level: Any = None, readonly: Any = None, deferrable: Any = None, autocommit: Any = None) -> None:
        """psycopg2's ``set_session``: only ``autocommit`` is offered."""
        if isolation_level is not None or readonly is not None or deferrable is not None:
            raise NotSupportedError("set_session: only autocommit is supported; use SET TRANSACTION ... in a statement")
        if autocommit is not None:
            self.autocommit = autocommit

    @property
    def closed(self) -> int:
        """0 while open, 1 once closed (psycopg2's values)."""
        return 1 if self._core.closed else 0

    def cursor(self, name: Optional[str] = None, cursor_factory: Any = None, **kwargs: Any) -> "Cursor":
        """A cursor; rows shaped as the ``cursor`` extra asks, or as
        ``cursor_factory`` (psycopg2.extras' DictCursor, RealDictCursor or
        NamedTupleCursor) does. Named (server-side) cursors are not offered."""
        if name is not None:
            raise NotSupportedError("named (server-side) cursors are not supported")
        if self._core.closed:
            raise InterfaceError("connection already closed")
        shape = self._core.shape
        if cursor_factory is not None:
            factory = getattr(cursor_factory, "__name__", "")
            if factory not in _FACTORY_SHAPES:
                raise NotSupportedError(f"cursor_factory {factory or cursor_factory!r} is not supported")
            shape = _FACTORY_SHAPES[factory]
        return Cursor(self, shape)

    def commit(self) -> None:
        """Commit the open transaction, if any."""
        self._core.commit()

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        self._core.rollback()

    def close(self) -> None:
        """Close the session; an open transaction is rolled back."""
        self._core.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        # psycopg2 2.9: commit on success, roll back on an exception; the
        # connection stays open.
        if kind is None:
            self.commit()
        else:
            self.rollback()


class Cursor:
    """psycopg2's cursor: ``execute`` runs the statement and holds its rows."""

    arraysize = 1

    def __init__(self, connection: Connection, shape: str) -> None:
        self.connection = connection
        self._shape = shape
        self._rows: Optional[List[Any]] = None
        self._next = 0
        self.description: Optional[List[Tuple[Any, ...]]] = None
        self.rowcount = -1
        self.closed = False

    @property
    def rownumber(self) -> int:
        """The index of the next row to fetch."""
        return self._next

    def _open(self) -> None:
        if self.closed:
            raise InterfaceError("cursor already closed")

    def execute(self, query: str, vars: Parameters = None) -> None:
        """Run ``query`` with ``vars`` interpolated as psycopg2 does."""
        self._open()
        # A failed statement leaves no result behind, as in psycopg2.
        self.description, self._rows, self._next, self.rowcount = None, None, 0, -1
        described, rows, count = self.connection._core.execute(query, vars)
        if described is None:
            self.description, self._rows = None, None
        else:
            # (name, type_code, display_size, internal_size, precision, scale, null_ok);
            # type_code is PostgreSQL's type name, where psycopg2 gives its OID.
            self.description = [(name, type_name, None, None, None, None, None) for name, type_name in described]
            self._rows = _shaped(self._shape, [name for name, _ in described], rows)
        self._next = 0
        self.rowcount = count

    def executemany(self, query: str, vars_list: Sequence[Parameters]) -> None:
        """``execute`` once per set of parameters; ``rowcount`` sums them."""
        total = 0
        for vars in vars_list:
            self.execute(query, vars)
            total += max(self.rowcount, 0)
        self.description, self._rows, self.rowcount = None, None, total

    def _fetched(self) -> List[Any]:
        self._open()
        if self._rows is None:
            raise InterfaceError("no results to fetch")
        return self._rows

    def fetchone(self) -> Any:
        """The next row, or None."""
        rows = self._fetched()
        if self._next >= len(rows):
            return None
        self._next += 1
        return rows[self._next - 1]

    def fetchmany(self, size: Optional[int] = None) -> List[Any]:
        """The next ``size`` rows (``arraysize`` by default)."""
        rows = self._fetched()
        size = self.arraysize if size is None else size
        chunk = rows[self._next : self._next + size]
        self._next += len(chunk)
        return chunk

    def fetchall(self) -> List[Any]:
        """The rows not yet fetched."""
        rows = self._fetched()
        chunk, self._next = rows[self._next :], len(rows)
        return chunk

    def __iter__(self) -> Iterator[Any]:
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def copy_expert(self, sql: str, file: Any, size: int = 8192) -> None:
        """``COPY ... FROM STDIN`` or ``COPY ... TO STDOUT`` against a file
        under the hook's root, in the connection's transaction: ``file`` is
        a path (a relative one under the root) or a file object opened on
        one, at its start. The host streams the rows, reading the whole file
        or replacing it: a file object must be at position 0, and what is
        written through it after a ``COPY ... TO STDOUT`` goes to the file
        it replaced. In-memory files (io.StringIO) are not offered."""
        self._open()
        loaded, rows = self.connection._core.copy_expert(sql, _copy_path(file))
        self.description, self._rows, self.rowcount = None, None, rows

    def close(self) -> None:
        """Close the cursor; the connection stays open."""
        self.closed = True
        self._rows = None

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> None:
        self.close()


def _copy_path(file: Any) -> str:
    """The path ``copy_expert`` streams: ``file`` itself if a path, else the
    file a file object is open on, as an absolute path (its ``name`` is
    relative to the current directory, not to the hook's root)."""
    if isinstance(file, (str, os.PathLike)):
        return _text_path(file)
    if isinstance(file, tempfile._TemporaryFileWrapper):  # NamedTemporaryFile()
        file = file.file
    _check_plain(file)
    name = getattr(file, "name", None)
    if not isinstance(name, (str, os.PathLike)):
        raise NotSupportedError("copy_expert needs a file on disk (a path, or a file object opened on one)")
    path = os.path.abspath(_text_path(name))
    fileno = getattr(file, "fileno", None)
    if fileno is not None:
        opened, named = os.fstat(fileno()), _stat(path)
        if named is None or (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
            raise NotSupportedError(f"copy_expert: the file object's name {path!r} no longer names the file it has open")
    if hasattr(file, "flush"):
        file.flush()
    if "a" in getattr(file, "mode", "") or (hasattr(file, "tell") and file.tell() != 0):
        raise NotSupportedError(
            "copy_expert streams a whole file: the file object must be at its start and not opened for appending"
        )
    return path


def _check_plain(file: Any) -> None:
    """Refuse a file object whose bytes are not what Python reads or writes
    through it, since the host streams the file itself: only ``open()``'s
    objects (a ``FileIO``, buffered or not, or text over one in UTF-8, the
    session's encoding) pass; a gzip or bz2 file, or text in another
    encoding, does not."""
    raw = file
    if isinstance(raw, io.TextIOWrapper):
        encoding = codecs.lookup(raw.encoding).name
        if encoding not in ("utf-8", "ascii"):
            raise NotSupportedError(
                f"copy_expert streams the file's bytes as UTF-8, the session's encoding: "
                f"open it with encoding='utf-8', not {raw.encoding!r}"
            )
        raw = raw.buffer
    if isinstance(raw, (io.BufferedReader, io.BufferedWriter, io.BufferedRandom)):
        raw = raw.raw
    if not isinstance(raw, io.FileIO):
        raise NotSupportedError(
            f"copy_expert streams the file on disk itself, so it takes a path or a file from open(), "
            f"not a {type(file).__name__} (which would change the bytes)"
        )


def _text_path(path: Union[str, os.PathLike]) -> str:
    named = os.fspath(path)
    if not isinstance(named, str):
        raise NotSupportedError("copy_expert needs a text path, not bytes")
    return named


def _stat(path: str) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except OSError:
        return None
