"""A hook and its connections across threads, signals, fork() and a
connection source that calls pghook itself: never a hang, never a session
left open behind a closed connection."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

import pghook
from conftest import CONN_ID, run_python

FORKED = r"""
import json, os, signal, sys
import pghook

hook = pghook.PostgresHook("c", connections={"c": sys.argv[1]})
conn = hook.get_conn()
conn.cursor().execute("select 1")
hook.get_first("select 1")  # the runtime started in the parent, as a DAG file's hook would
child = os.fork()
if child == 0:
    signal.alarm(20)  # a hang ends the child, and the test fails
    outcome = {"hook": hook.get_first("select 2")[0], "new_hook": pghook.PostgresHook("c", connections={"c": sys.argv[1]}).get_first("select 3")[0]}
    try:
        conn.cursor().execute("select 4")
        outcome["parents_connection"] = "used"
    except pghook.InterfaceError as e:
        outcome["parents_connection"] = str(e)
    print(json.dumps(outcome), flush=True)
    os._exit(0)
_, status = os.waitpid(child, 0)
cur = conn.cursor()
cur.execute("select 5")
print(json.dumps({"child_status": status, "parent": hook.get_first("select 6")[0], "parents_connection": cur.fetchone()[0]}))
"""


def test_a_forked_child_makes_its_own_runtime(uri: str, tmp_path) -> None:
    out = run_python(FORKED, {}, cwd=str(tmp_path), args=[uri], timeout=60).strip().splitlines()
    child, parent = json.loads(out[-2]), json.loads(out[-1])
    assert child["hook"] == 2 and child["new_hook"] == 3, child
    assert "another process" in child["parents_connection"], child
    assert parent == {"child_status": 0, "parent": 6, "parents_connection": 5}


REENTRANT = r"""
import sys, threading
import pghook
from pghook._pghook import Core

uri = sys.argv[1]

def lookup(conn_id):
    # A secrets backend that itself reads through a hook.
    return pghook.PostgresHook("inner", connections={"inner": uri}).get_first("select %s", [uri])[0]

core = Core("outer", connection_source=lookup)
results = []
def call():
    results.append(core.get_first("select 7")[2][0][0])
threads = [threading.Thread(target=call) for _ in range(4)]
[t.start() for t in threads]
[t.join() for t in threads]
print(results)
"""


def test_a_connection_source_may_call_pghook(uri: str, tmp_path) -> None:
    out = run_python(REENTRANT, {}, cwd=str(tmp_path), args=[uri], timeout=60)
    assert out.strip().splitlines()[-1] == "[7, 7, 7, 7]"


def backend_of(conn) -> int:
    cur = conn.cursor()
    cur.execute("select pg_backend_pid()")
    return cur.fetchone()[0]


def alive(hook, pid: int) -> bool:
    deadline = time.monotonic() + 5
    while hook.get_first("select 1 from pg_stat_activity where pid = %s", [pid]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return bool(hook.get_first("select 1 from pg_stat_activity where pid = %s", [pid]))


def test_close_during_another_threads_call_closes_when_it_ends(hook) -> None:
    conn = hook.get_conn()
    pid = backend_of(conn)
    busy = conn.cursor()
    slow = threading.Thread(target=busy.execute, args=("select pg_sleep(0.5)",))
    slow.start()
    time.sleep(0.2)
    conn.close()
    slow.join()
    assert conn.closed
    with pytest.raises(pghook.InterfaceError, match="closed"):
        busy.execute("select 1")
    assert not alive(hook, pid), "the session outlived close()"


class Stopped(Exception):
    pass


def test_a_signal_handled_as_the_call_ends_closes_the_connection(hook) -> None:
    """A handler that raises (Airflow's execution_timeout) stops the call; if
    the statement ended first, the connection is closed all the same, and
    the next call says so instead of raising a stray KeyboardInterrupt."""

    def slow_handler(signum, frame):
        time.sleep(0.5)  # the statement ends meanwhile
        raise Stopped()

    conn = hook.get_conn()
    cur = conn.cursor()
    previous = signal.signal(signal.SIGALRM, slow_handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        with pytest.raises(Stopped):
            cur.execute("select pg_sleep(0.2)")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert conn.closed
    with pytest.raises(pghook.InterfaceError, match="closed"):
        cur.execute("select 1")
