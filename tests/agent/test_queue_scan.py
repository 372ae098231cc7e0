"""queue_counts reads the hashed queue folders by name only, itself or through the queue counter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from mailagent.agent import queue_counter
from mailagent.agent.checks.queue_counts import Check
from mailagent.agent.queue_counter import QueueCounterError, answer, ask, bound_listener, serve
from mailagent.agent.queue_scan import count_queues, is_queue_id

FIXTURE_COUNTS = {"maildrop": 1, "incoming": 1, "active": 1, "deferred": 5, "hold": 2}


@pytest.mark.parametrize("name", ["4B1C12A0F3", "ABCDEF", "4jWqGz4YPTzJ9FX", "4jWqHz0000zJ9BB"])
def test_queue_ids_short_and_long(name):
    assert is_queue_id(name)


@pytest.mark.parametrize("name", ["README", "1234567.89", "4b1c12a0f3", "4jWqGz4YPTzJ9Fz",
                                  "abc", ".4B1C12A0F3.tmp", "4aWqGz4YPTzJ9FX"])
def test_not_queue_ids(name):
    assert not is_queue_id(name)


def test_counts_fixture_tree(queue_tree):
    counts = count_queues(queue_tree)
    # deferred: two hash levels, short and long IDs; `sub/` is not a hash folder.
    assert counts.model_dump() == FIXTURE_COUNTS


def test_missing_queue_folder_is_empty(tmp_path):
    (tmp_path / "deferred").mkdir()
    assert sum(count_queues(tmp_path).model_dump().values()) == 0


def test_unreadable_spool_is_an_error_not_zero(queue_tree):
    if os.geteuid() == 0:
        # root reads anything; take the folder away instead of its permissions
        os.rename(queue_tree / "deferred", queue_tree / "gone")
        (queue_tree / "deferred").write_text("not a folder")
        with pytest.raises(NotADirectoryError):
            count_queues(queue_tree)
    else:
        os.chmod(queue_tree / "deferred", 0)
        with pytest.raises(PermissionError):
            count_queues(queue_tree)


def test_check_without_a_counter_reads_the_folders(settings, tmp_path):
    assert Check(settings, counter=tmp_path / "no.sock").run(0).deferred == 5


# The queue counter (agent/queue_counter.py): one request, one line of JSON, nothing else.

def test_count_request_answers_the_counts(queue_tree):
    assert json.loads(answer(b"count\n", queue_tree)) == FIXTURE_COUNTS


@pytest.mark.parametrize("request_", [b"", b"count /etc/shadow\n", b"/etc/shadow\n", b"COUNT\n",
                                      b"count\x00../../etc\n", b"x" * 5000])
def test_anything_else_is_refused_and_names_no_file(queue_tree, request_):
    reply = json.loads(answer(request_, queue_tree))
    assert reply == {"error": "unknown request (the only one is 'count')"}


def test_unreadable_spool_is_an_error_answer(tmp_path):
    (tmp_path / "deferred").write_text("not a folder")
    reply = json.loads(answer(b"count\n", tmp_path))
    assert reply["error"].startswith("NotADirectoryError")


@pytest.fixture()
def counter(queue_tree, tmp_path):
    """A queue counter on a socket of its own, in a thread; its socket path."""
    path = tmp_path / "counter.sock"
    listener = bound_listener(path)
    thread = threading.Thread(target=serve, args=(listener, queue_tree), daemon=True)
    thread.start()
    yield path
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(5)


def test_check_asks_the_counter_when_its_socket_exists(counter, settings, tmp_path):
    settings = settings.model_copy(update={"postfix_spool": tmp_path / "unreadable"})
    assert Check(settings, counter=counter).run(0).model_dump() == FIXTURE_COUNTS
    assert oct(counter.stat().st_mode & 0o777) == "0o660"


def test_the_counter_follows_the_queue(counter, queue_tree):
    (queue_tree / "hold" / "ABCDEF123456").touch()
    assert ask(counter).hold == FIXTURE_COUNTS["hold"] + 1


def test_a_silent_client_does_not_block_the_next(counter, monkeypatch):
    monkeypatch.setattr(queue_counter, "TIMEOUT", 0.3)
    with socket.socket(socket.AF_UNIX) as silent:
        silent.connect(str(counter))
        started = time.monotonic()
        assert ask(counter, timeout=10).deferred == 5
    assert time.monotonic() - started < 8


def test_error_answer_raises(tmp_path):
    (tmp_path / "spool").mkdir()
    (tmp_path / "spool" / "deferred").write_text("not a folder")
    path = tmp_path / "bad.sock"
    listener = bound_listener(path)
    threading.Thread(target=serve, args=(listener, tmp_path / "spool"), daemon=True).start()
    with pytest.raises(QueueCounterError, match="NotADirectoryError"):
        ask(path)
    listener.close()


def test_no_counter_listening_is_a_failed_check(settings, tmp_path):
    path = tmp_path / "dead.sock"
    bound_listener(path).close()  # the file stays, nobody listens (the helper is down)
    with pytest.raises(ConnectionRefusedError):
        Check(settings, counter=path).run(0)


def test_without_a_systemd_socket_the_counter_refuses_to_start():
    result = subprocess.run([sys.executable, "-m", "mailagent.agent.queue_counter"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "no socket from systemd" in result.stderr


def test_systemd_socket_is_taken_from_fd_3(tmp_path):
    path = tmp_path / "sd.sock"
    listener = bound_listener(path)
    # What systemd does before exec: the socket on fd 3, LISTEN_PID and LISTEN_FDS set.
    code = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ['LISTEN_PID'] = str(os.getpid()); "
            "from mailagent.agent.queue_counter import main; sys.exit(main(['--spool', sys.argv[2]]))")
    helper = subprocess.Popen([sys.executable, "-c", code, str(listener.fileno()), str(tmp_path)],
                              pass_fds=(listener.fileno(),), env={**os.environ, "LISTEN_FDS": "1"})
    try:
        assert sum(ask(path, timeout=30).model_dump().values()) == 0
    finally:
        helper.kill()
        helper.wait()
        listener.close()


def test_the_counter_helper_starts_without_pydantic():
    # systemd starts the helper at the agent's first connection; its start-up is on that clock
    code = "import sys, mailagent.agent.queue_counter; print(sorted(m for m in sys.modules if m.startswith('pydantic')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
