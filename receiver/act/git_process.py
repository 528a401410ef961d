"""Running one git command: `subprocess.run(capture_output=True, timeout=...)`, made cheap.

The webhook spawns a git fetch for every first delivery, and `subprocess.Popen` costs the
worker about half a millisecond of CPU per spawn (the environment and the PATH search are
encoded in Python, then a selector loop reads the pipes and a sleep loop waits for the exit).
Here `os.posix_spawnp` does the spawn (the environment encoded in C, a vfork underneath) and
one `poll` waits on both pipes and on a pidfd of the child within the timeout.

The child gets what `subprocess.run` gives it: the same arguments, environment and stdin,
the caller's signal mask, SIGPIPE and SIGXFSZ back to their defaults, and no descriptor above
2 (Python opens every descriptor close-on-exec; any this process made inheritable is closed
in the child, as close_fds does). One glibc difference: its two internal signals (32 and 33,
which no program but glibc itself handles) start ignored, as in every posix_spawn child.

On a timeout the child is killed and reaped, then `TimeoutExpired` is raised as
`subprocess.run` would. Where this cannot work (no pidfd, no /proc, a standard stream
closed, or stdin to feed) the command runs through `subprocess.run` itself.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Sequence
from contextlib import suppress
from functools import cache

_RESET_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ") if hasattr(signal, name)
)
_CHUNK = 65536


def run_git(
    args: Sequence[str], env: dict[str, str], timeout: float, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run `args` (args[0] looked up on PATH) and capture stdout and stderr, within `timeout`."""
    inherited = None if stdin is not None or not _pidfd_works() else _inheritable_descriptors()
    if inherited is None:
        return _by_subprocess(args, env, timeout, stdin)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if min(out_r, out_w, err_r, err_w) <= 2:  # a standard stream is closed: let subprocess cope
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        return _by_subprocess(args, env, timeout, stdin)
    try:
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ]
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited]
        pid = os.posix_spawnp(
            args[0],
            list(args),
            env,
            file_actions=actions,
            setsigmask=signal.pthread_sigmask(signal.SIG_BLOCK, ()),  # the caller's, as fork's
            setsigdef=_RESET_SIGNALS,
        )
    except BaseException:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    os.close(out_w)
    os.close(err_w)
    return _collect(pid, list(args), out_r, err_r, timeout)


def _by_subprocess(
    args: Sequence[str], env: dict[str, str], timeout: float, stdin: bytes | None
) -> subprocess.CompletedProcess[bytes]:
    """The same command through `subprocess.run` itself, where the spawn path cannot work."""
    return subprocess.run(
        list(args), input=stdin, capture_output=True, env=env, timeout=timeout, check=False
    )


def _collect(
    pid: int, args: list[str], out_r: int, err_r: int, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """Read both pipes to their end and reap the child, or kill it at the deadline."""
    deadline = time.monotonic() + timeout
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    status: int | None = None
    pidfd = -1
    try:
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        for fd in (out_r, err_r, pidfd):
            poller.register(fd, select.POLLIN)
        open_pipes = 2
        while open_pipes or status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise subprocess.TimeoutExpired(args, timeout)
            for fd, _event in poller.poll(left * 1000):
                if fd == pidfd:
                    poller.unregister(pidfd)
                    status = _reap(pid)
                    continue
                data = os.read(fd, _CHUNK)
                if data:
                    chunks[fd].append(data)
                else:
                    poller.unregister(fd)
                    open_pipes -= 1
    finally:
        if status is None:  # timed out or interrupted: the child must not outlive the call
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _reap(pid)
        for fd in (out_r, err_r, pidfd):
            if fd >= 0:
                os.close(fd)
    assert status is not None  # the loop ends once the child was reaped
    code = os.waitstatus_to_exitcode(status)
    out, err = b"".join(chunks[out_r]), b"".join(chunks[err_r])
    return subprocess.CompletedProcess(args, code, out, err)


def _reap(pid: int) -> int:
    """The child's wait status; 0 when it was reaped elsewhere (as subprocess assumes)."""
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


@cache
def _pidfd_works() -> bool:
    """Whether this kernel gives process descriptors (Linux 5.3 and later, not every sandbox)."""
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


def _inheritable_descriptors() -> list[int] | None:
    """This process's descriptors above 2 that a child would inherit; None without /proc."""
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return None
    found = []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:  # the listing's own descriptor, closed by now
                continue
    return found
