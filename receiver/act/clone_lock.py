"""Exclusive use of the git provider's cached clone: one rollback at a time, on the whole host.

Every gunicorn worker and `monitor` share the default clone directory, so a thread lock alone
is not enough: two processes fetching and committing into one clone at once fail on git's own
ref and config locks ("cannot lock ref") or trip over each other's first `git init`. Each use
of the clone takes its in-process lock, then an OS lock (`flock`) on a file beside the clone,
both within one deadline. The kernel drops a flock when its holder exits, however it exits,
so the lock file is never stale; git's own `*.lock` files inside the clone, which a killed
git leaves behind, are cleared once the flock is ours.

The lock file's text says how its last holder left: its pid while it holds the clone,
`free` once it let go after a clean use. Any other text (a pid: the holder was killed; an
empty, new file) or a use that raised (a git killed at its timeout is one) makes the next
holder look for git's leftovers; after a clean use there are none to look for. The text is
rewritten in place, padded to a fixed width (readers strip it), so no use truncates the file.

Each process opens the lock file once per clone and keeps it open between uses (a use takes
the flock and lets it go with LOCK_UN). Once the flock is held, the path must still name the
file that was opened: a lock file removed or replaced meanwhile (a /tmp cleaner) would be a
lock nobody else sees, so it is opened again. A forked child opens its own: a descriptor
inherited through fork shares the parent's flock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from receiver.act.gitops_common import STAGE
from receiver.act.polling import Deadline, Pacing
from receiver.errors import ActionError

log = logging.getLogger("receiver.gitops")

# Longer than a normal restore (a dozen git commands, a few queued behind each other);
# a holder past it is stuck on the network or rebuilding on a branch that keeps moving.
CLONE_WAIT_SECONDS = 30.0
POLL_SECONDS = 0.05  # flock has no timeout: a non-blocking try this often
RELEASED = "free"  # the lock file's text after a clean use: no git leftovers to look for
HOLDER_WIDTH = 16  # bytes of the lock file's text, padded: a pid or `free` always fits
# The lock files git takes at the top of a bare repository (refs/**/*.lock besides).
GIT_LOCK_FILES = ("HEAD.lock", "config.lock", "packed-refs.lock", "shallow.lock", "index.lock")


@dataclass
class _Handle:
    """One clone directory's lock in this process: the thread lock, the open lock file."""

    thread_lock: threading.Lock
    fd: int = -1  # the lock file, open while `pid` is this process; -1 before the first use
    pid: int = 0  # the process that opened `fd`
    file: tuple[int, int] = (0, 0)  # st_dev, st_ino of `fd`


# One handle per clone directory per process, shared by every GitRevert of that directory.
_HANDLES: dict[str, _Handle] = {}
_HANDLES_GUARD = threading.Lock()


class CloneLock:
    """The lock of one clone directory: a thread lock in this process, a flock on the host."""

    def __init__(self, clone: Path, label: str) -> None:
        self.clone = clone
        self.label = label  # the repository, already redacted
        self.path = clone.with_suffix(".lock")  # beside the clone: it exists before the clone
        self._path = str(self.path)
        self.pacing = Pacing(POLL_SECONDS)
        with _HANDLES_GUARD:
            self._handle = _HANDLES.setdefault(str(clone), _Handle(threading.Lock()))
        self._thread_lock = self._handle.thread_lock

    @contextmanager
    def held(self, wait: float, details: Mapping[str, Any] | None = None) -> Iterator[None]:
        """Hold the clone for the block; ActionError if it is not free within `wait` seconds."""
        deadline = self.pacing.deadline(wait)
        if not self._thread_lock.acquire(blocking=False):
            self._waiting("another rollback in this process")
            if not self._thread_lock.acquire(timeout=max(wait, 0.0)):
                raise self._busy("another rollback in this process", wait, details)
        try:
            fd = self._locked(deadline, wait, details)
            try:
                if _read_holder(fd) != RELEASED:  # killed holder, new file, or a use that raised
                    self._clear_stale_git_locks()
                _write_holder(fd, str(os.getpid()))
                clean = False
                try:
                    yield
                    clean = True
                finally:
                    _write_holder(fd, RELEASED if clean else "")
            finally:
                self._unlock(fd)
        finally:
            self._thread_lock.release()

    def _locked(self, deadline: Deadline, wait: float, details: Mapping[str, Any] | None) -> int:
        """The open lock file, its flock taken, still the file the path names."""
        while True:
            fd = self._open(details)
            self._flock(fd, deadline, wait, details)
            if self._still_named():
                return fd
            self._forget(fd)  # removed or replaced since it was opened: closing unlocks it
            if deadline.passed():
                raise self._busy("a lock file that keeps being replaced", wait, details)

    def _still_named(self) -> bool:
        """Whether the lock file's path still names the file this process holds open."""
        try:
            named = os.stat(self._path)
        except OSError:
            return False
        return (named.st_dev, named.st_ino) == self._handle.file

    def _unlock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            self._forget(fd)  # closing releases the flock too

    def _forget(self, fd: int) -> None:
        self._handle.fd = -1
        with suppress(OSError):
            os.close(fd)

    def _clear_stale_git_locks(self) -> None:
        """Remove git's own `*.lock` files a killed process left in the clone.

        Holding the flock means no receiver process uses the clone now, so any such file is a
        leftover (a worker killed mid-fetch or mid-push): left there, every later fetch fails
        with "Unable to create '...lock': File exists" until someone deletes it by hand.
        """
        if not self.clone.is_dir():
            return
        found = [self.clone / name for name in GIT_LOCK_FILES]
        refs = self.clone / "refs"
        found += list(refs.rglob("*.lock")) if refs.is_dir() else []
        removed = []
        for path in found:
            with suppress(FileNotFoundError):
                path.unlink()
                removed.append(str(path.relative_to(self.clone)))
        if removed:
            log.warning(
                "removed git lock files a killed process left in the clone",
                extra={"clone": str(self.clone), "repo": self.label, "files": removed},
            )

    def _open(self, details: Mapping[str, Any] | None) -> int:
        """This process's open lock file (opened on first use, and again after a fork)."""
        handle, pid = self._handle, os.getpid()
        if handle.fd >= 0 and handle.pid == pid:
            return handle.fd
        if handle.fd >= 0:  # inherited through fork: close our copy, never unlock the parent's
            with suppress(OSError):
                os.close(handle.fd)
            handle.fd = -1
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ActionError(
                STAGE,
                f"cannot open the lock file {self.path} of the git clone of {self.label}: "
                f"{exc.strerror}",
                dict(details or {}),
            ) from None
        opened = os.fstat(fd)
        handle.fd, handle.pid, handle.file = fd, pid, (opened.st_dev, opened.st_ino)
        return fd

    def _flock(
        self, fd: int, deadline: Deadline, wait: float, details: Mapping[str, Any] | None
    ) -> None:
        """Take the flock, trying every POLL_SECONDS until the deadline."""
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                pass
            holder = f"another process{self._holder(fd)}"
            if deadline.passed():
                raise self._busy(holder, wait, details)
            if not told:
                told = True
                self._waiting(holder)
            deadline.wait()

    @staticmethod
    def _holder(fd: int) -> str:
        """` (pid N)` as the holder wrote it into the lock file; nothing when unknown."""
        pid = _read_holder(fd)
        return f" (pid {pid})" if pid.isdigit() else ""

    def _waiting(self, holder: str) -> None:
        log.info(
            "waiting for the git clone: held by %s",
            holder,
            extra={"clone": str(self.clone), "repo": self.label},
        )

    def _busy(self, holder: str, wait: float, details: Mapping[str, Any] | None) -> ActionError:
        return ActionError(
            STAGE,
            f"the git clone {self.clone} of {self.label} is held by {holder} and was not "
            f"free within {wait:g} s; nothing was changed (lock file {self.path})",
            dict(details or {}),
        )


def _read_holder(fd: int) -> str:
    """The lock file's text (a pid, `free`, or nothing), stripped; empty when unreadable."""
    try:
        return os.pread(fd, 64, 0).decode("ascii", errors="replace").strip()
    except OSError:
        return ""


def _write_holder(fd: int, text: str) -> None:
    """Replace the lock file's text in place, padded; best effort, it only feeds messages."""
    with suppress(OSError):
        os.pwrite(fd, f"{text:<{HOLDER_WIDTH - 1}}\n".encode(), 0)
