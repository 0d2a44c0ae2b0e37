"""``pid_alive``: the one liveness check for lock holders, runners and private servers."""

import os
import signal

from snapkeep.processes import pid_alive


def _fork_child(read_fd: int, write_fd: int) -> int:
    pid = os.fork()
    if pid == 0:  # child: run until the parent closes the pipe, then exit
        try:
            os.close(write_fd)
            os.read(read_fd, 1)
        finally:
            os._exit(0)
    return pid


def test_a_running_child_is_alive_and_its_zombie_is_not() -> None:
    r, w = os.pipe()
    pid = _fork_child(r, w)
    try:
        assert pid_alive(pid)
        os.close(w)  # the child exits
        w = -1
        # wait for the exit without reaping it: the child stays a zombie
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        assert not pid_alive(pid)
    finally:
        if w >= 0:
            os.close(w)
            os.kill(pid, signal.SIGKILL)
        os.close(r)
        os.waitpid(pid, 0)
    assert not pid_alive(pid)  # reaped: gone


def test_this_process_is_alive_and_an_impossible_pid_is_not() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(2**40)  # beyond any pid
