"""Ctrl-C during a query: the statement is cancelled on the server and the
call raises KeyboardInterrupt at once. Run in a process of its own, whose
main thread the signal interrupts (as a terminal's Ctrl-C does)."""

from __future__ import annotations

import json

import pytest

from conftest import run_python

CHILD = r"""
import json, os, signal, sys, threading, time, _thread
import pghook

uri, how = sys.argv[1], sys.argv[2]
hook = pghook.PostgresHook("c", connections={"c": uri})
hook.get_first("select 1")  # the core loaded and a login done: only the query is timed
interrupt = {
    "kill": lambda: os.kill(os.getpid(), signal.SIGINT),
    "interrupt_main": _thread.interrupt_main,
}[how]
threading.Timer(0.5, interrupt).start()
started = time.monotonic()
outcome = {"interrupted": False}
try:
    hook.get_first("select pg_sleep(60) as pghook_ctrl_c")
except KeyboardInterrupt:
    outcome = {"interrupted": True, "after": time.monotonic() - started}
# A second hook, while this process still holds its sessions: is the
# statement still running on the server?
watcher = pghook.PostgresHook("c", connections={"c": uri})
deadline = time.monotonic() + 5
while True:
    running = watcher.get_records(
        "select pid from pg_stat_activity where state = 'active' and query like %s and pid <> pg_backend_pid()",
        ["%pghook_ctrl_c%"],
    )
    if not running or time.monotonic() > deadline:
        break
    time.sleep(0.05)
outcome["still_running"] = len(running)
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("how", ["kill", "interrupt_main"])
def test_ctrl_c_cancels_the_statement_on_the_server(uri: str, tmp_path, how: str) -> None:
    out = run_python(CHILD, {}, cwd=str(tmp_path), args=[uri, how], timeout=60)
    outcome = json.loads(out.strip().splitlines()[-1])
    assert outcome["interrupted"], "pg_sleep(60) ran to its end: Ctrl-C did not stop it"
    assert outcome["after"] < 3, f"KeyboardInterrupt came {outcome['after']:.1f}s after the signal's 0.5s"
    assert outcome["still_running"] == 0, "the statement still runs on the server"
