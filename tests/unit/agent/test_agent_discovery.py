"""Finding a real Gunicorn master among its workers, through /proc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import psutil
import pytest

from agent.discovery import Discovery, ProcessId, identify, process_title
from agent.errors import MasterNotFound


def test_finds_the_master_not_a_worker(shared_gunicorn: Any) -> None:
    master, title = Discovery(shared_gunicorn.master_title).find_master()
    assert master == ProcessId(shared_gunicorn.proc.pid, psutil.Process(master.pid).create_time())
    assert title == f"gunicorn: master [{shared_gunicorn.name}]"


def test_workers_are_the_masters_live_children(shared_gunicorn: Any) -> None:
    discovery = Discovery(shared_gunicorn.master_title)
    master, _ = discovery.find_master()
    workers = discovery.workers(master)
    assert len(workers) == 2
    for worker in workers:
        proc = psutil.Process(worker.pid)
        assert proc.ppid() == master.pid
        assert process_title(proc.cmdline()) == f"gunicorn: worker [{shared_gunicorn.name}]"
        assert proc.create_time() == worker.create_time
    assert list(workers) == sorted(workers, key=lambda w: (w.create_time, w.pid))


def test_generation_is_the_start_time_of_the_namespace_root() -> None:
    root = Discovery().namespace_root()
    assert root == ProcessId(1, psutil.Process(1).create_time())


def test_the_master_is_never_the_namespace_root_or_the_agent(shared_gunicorn: Any) -> None:
    master_pid = shared_gunicorn.proc.pid
    as_root = Discovery(shared_gunicorn.master_title, namespace_root_pid=master_pid)
    with pytest.raises(MasterNotFound, match=r"excluding pids \[.*\]"):
        as_root.find_master()
    as_itself = Discovery(shared_gunicorn.master_title, own_pid=master_pid)
    with pytest.raises(MasterNotFound):
        as_itself.find_master()


def test_no_master_is_reported_with_what_was_seen() -> None:
    discovery = Discovery(r"^no such title$")
    with pytest.raises(MasterNotFound) as info:
        discovery.wait_for_master(timeout=0.2, interval=0.05)
    message = str(info.value)
    assert "no Gunicorn master appeared within 0.2 s" in message
    assert "pid: 'service:backend'" in message
    assert info.value.last_seen


def test_identity_includes_the_start_time(shared_gunicorn: Any) -> None:
    discovery = shared_gunicorn.discovery
    master, _ = discovery.find_master()
    assert discovery.is_alive(master)
    assert discovery.is_master(master)
    recycled = ProcessId(master.pid, master.create_time - 100)
    assert not discovery.is_alive(recycled)
    assert not discovery.is_master(recycled)
    with pytest.raises(MasterNotFound, match="is gone"):
        discovery.workers(recycled)
    worker = discovery.workers(master)[0]
    assert discovery.is_alive(worker)
    assert not discovery.is_master(worker)


def test_a_process_that_exited_is_gone() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    ident = identify(proc.pid)
    assert ident is not None
    assert Discovery().is_alive(ident)
    proc.communicate(b"", timeout=10)
    assert not Discovery().is_alive(ident)
    assert identify(proc.pid) is None or identify(proc.pid) != ident


def test_without_setproctitle_the_master_is_the_one_with_gunicorn_children(
    shared_gunicorn: Any,
) -> None:
    # A pattern that also matches the workers, as a plain command line would: workers are the
    # master's children, so only the master remains.
    name = re.escape(shared_gunicorn.name)
    discovery = Discovery(rf"^gunicorn: (master|worker) \[{name}\]")
    master, _ = discovery.find_master()
    assert master.pid == shared_gunicorn.proc.pid


def test_own_pid_defaults_to_this_process() -> None:
    assert Discovery().own_pid == os.getpid()
