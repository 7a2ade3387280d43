"""copy_expert, bulk_load and bulk_dump against files: paths and path-like
objects under the root, and file objects meaning the file Python opened."""

from __future__ import annotations

import bz2
import gzip
import pathlib
import tempfile

import pytest

import pghook
from conftest import CONN_ID


@pytest.fixture
def table(hook) -> str:
    hook.run("drop table if exists copy_files; create table copy_files (a int, b text)")
    yield "copy_files"
    hook.run("drop table if exists copy_files")


def test_path_like_file_names(hook, table, tmp_path) -> None:
    (tmp_path / "in.tsv").write_text("1\tone\n")
    hook.bulk_load(table, pathlib.Path("in.tsv"))
    hook.bulk_dump(table, pathlib.Path("out.tsv"))
    hook.copy_expert(f"COPY {table} TO STDOUT", tmp_path / "abs.tsv")
    assert (tmp_path / "out.tsv").read_text() == (tmp_path / "abs.tsv").read_text() == "1\tone\n"


def test_a_file_object_means_the_file_python_opened(uri, table, tmp_path, monkeypatch) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "cwd"
    root.mkdir()
    elsewhere.mkdir()
    hook = pghook.PostgresHook(CONN_ID, connections={CONN_ID: uri}, root=str(root))
    (root / "data.tsv").write_text("1\troot's file\n")
    (elsewhere / "data.tsv").write_text("2\tthe opened file\n")
    monkeypatch.chdir(elsewhere)
    cur = hook.get_conn().cursor()
    # Opened outside the root: refused, never the root's file of that name.
    with open("data.tsv") as f, pytest.raises(pghook.SandboxDenied):
        cur.copy_expert(f"COPY {table} FROM STDIN", f)
    cur.connection.rollback()
    monkeypatch.chdir(root)
    with open("data.tsv") as f:
        cur.copy_expert(f"COPY {table} FROM STDIN", f)
    with open("out.tsv", "w") as f:
        cur.copy_expert(f"COPY {table} TO STDOUT", f)
    assert (root / "out.tsv").read_text() == "1\troot's file\n"


def test_a_file_object_not_at_its_start_is_refused(hook, table, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.tsv").write_text("1\tone\n2\ttwo\n")
    cur = hook.get_conn().cursor()
    with open("data.tsv") as f, pytest.raises(pghook.InterfaceError, match="at its start"):
        f.readline()
        cur.copy_expert(f"COPY {table} FROM STDIN", f)
    with open("out.tsv", "w") as f, pytest.raises(pghook.InterfaceError, match="at its start"):
        f.write("a header\n")
        cur.copy_expert(f"COPY {table} TO STDOUT", f)
    assert (tmp_path / "out.tsv").read_text() == "a header\n"
    with open("data.tsv", "a") as f, pytest.raises(pghook.InterfaceError, match="appending"):
        cur.copy_expert(f"COPY {table} TO STDOUT", f)
    assert (tmp_path / "data.tsv").read_text() == "1\tone\n2\ttwo\n"


def test_only_files_from_open_are_streamed(hook, table, tmp_path, monkeypatch) -> None:
    """The host streams the file on disk itself: a file object whose bytes
    differ from what Python reads through it is refused, not copied raw."""
    monkeypatch.chdir(tmp_path)
    cur = hook.get_conn().cursor()
    with gzip.open("data.tsv.gz", "wt") as f:
        f.write("1\tone\n")
    for opened in (gzip.open("data.tsv.gz", "rb"), bz2.open("data.bz2", "wb")):
        with opened as f, pytest.raises(pghook.NotSupportedError, match="takes a path or a file from open"):
            cur.copy_expert(f"COPY {table} FROM STDIN", f)
    (tmp_path / "latin.tsv").write_bytes("1\tcaf\xe9\n".encode("latin-1"))
    with open("latin.tsv", encoding="latin-1") as f, pytest.raises(pghook.NotSupportedError, match="UTF-8"):
        cur.copy_expert(f"COPY {table} FROM STDIN", f)
    # open()'s objects in UTF-8, binary or text, and NamedTemporaryFile's.
    with tempfile.NamedTemporaryFile("w+", dir=tmp_path, suffix=".tsv", encoding="utf-8") as f:
        f.write("2\tcaf\u00e9\n")
        f.seek(0)
        cur.copy_expert(f"COPY {table} FROM STDIN", f)
    with open("out.tsv", "wb") as f:
        cur.copy_expert(f"COPY {table} TO STDOUT", f)
    assert (tmp_path / "out.tsv").read_text(encoding="utf-8") == "2\tcaf\u00e9\n"
    # Its transaction would hold the table's lock past the test.
    cur.connection.close()
