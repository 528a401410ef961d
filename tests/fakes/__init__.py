"""Faithful fakes of the remote systems the receiver acts on, shared by unit and end-to-end tests.

- `BareRepo`: a real bare git repository, written with git plumbing (the GitHub fake's store,
  and the remote of the git provider's tests).
- `ServerThread`: serve a WSGI app on a free loopback port in a thread; `stop()` joins it.
- `Faults`: programmable failures, delays and hooks, plus a log of the calls received.

The GitHub fake is in `fakes.github_api` (its git reads in `fakes.git_history`; served from a
process of its own by `fakes.github_process`), the Argo CD fake in `fakes.argocd`.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

ZERO_SHA = "0" * 40

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Dev",
    "GIT_AUTHOR_EMAIL": "dev@example.com",
    "GIT_COMMITTER_NAME": "Dev",
    "GIT_COMMITTER_EMAIL": "dev@example.com",
}


def iso(epoch: float) -> str:
    """GitHub's and Argo CD's timestamp format: RFC 3339 UTC with a Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BareRepo:
    """A real bare git repository driven with git plumbing (no work tree anywhere)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()

    @classmethod
    def create(cls, path: Path | str, branch: str = "main") -> BareRepo:
        """`git init --bare` with `branch` as the initial branch name."""
        subprocess.run(
            ["git", "init", "-q", "--bare", f"--initial-branch={branch}", str(path)],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return cls(path)

    @property
    def url(self) -> str:
        return f"file://{self.path}"

    def git(
        self,
        *args: str,
        stdin: str | bytes | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
    ) -> str:
        """Run git against this repository; stdout as text (stripped of its final newline)."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        full_env.update({**GIT_IDENTITY, **(env or {}), "GIT_DIR": str(self.path)})
        data = stdin.encode() if isinstance(stdin, str) else stdin
        result = subprocess.run(
            ["git", *args],
            input=data,
            capture_output=True,
            env=full_env,
            timeout=30,
            check=False,
        )
        if check and result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, ["git", *args], result.stdout, result.stderr
            )
        return result.stdout.decode(errors="replace").rstrip("\n")

    def resolve(self, rev: str) -> str | None:
        """The full sha of a revision, or None when it does not exist."""
        out = self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        return out or None

    def head(self, branch: str = "main") -> str | None:
        return self.resolve(f"refs/heads/{branch}")

    def object_type(self, sha: str) -> str | None:
        return self.git("cat-file", "-t", sha, check=False) or None

    @contextmanager
    def index(self) -> Iterator[dict[str, str]]:
        """A throwaway index file: the env to pass to git for tree building."""
        with tempfile.TemporaryDirectory(prefix="fake-index-") as tmp:
            yield {"GIT_INDEX_FILE": str(Path(tmp) / "index")}

    def remove_path(self, env: dict[str, str], tree_ish: str | None, path: str) -> bool:
        """Remove every index entry at or under `path`; False when there was none."""
        if tree_ish is None:
            return False
        names = self.git("ls-tree", "-r", "-z", "--name-only", tree_ish, "--", path)
        entries = [n for n in names.split("\0") if n]
        if not entries:
            return False
        info = "".join(f"0 {ZERO_SHA}\t{name}\0" for name in entries)
        self.git("update-index", "-z", "--index-info", stdin=info, env=env)
        return True

    def add_tree(self, env: dict[str, str], tree_sha: str, prefix: str) -> None:
        """Add every entry of a tree under `prefix` to the index."""
        listing = self.git("ls-tree", "-r", "-z", tree_sha)
        info = ""
        for item in listing.split("\0"):
            if not item:
                continue
            meta, name = item.split("\t", 1)
            info += f"{meta}\t{prefix}/{name}\0"
        if info:
            self.git("update-index", "-z", "--index-info", stdin=info, env=env)

    def commit_files(
        self,
        changes: dict[str, str | None],
        message: str = "change",
        branch: str = "main",
        when: float | None = None,
    ) -> str:
        """Commit file contents (None deletes a file or folder) on top of `branch`; its sha."""
        with self._lock, self.index() as env:
            parent = self.head(branch)
            if parent:
                self.git("read-tree", parent, env=env)
            else:
                self.git("read-tree", "--empty", env=env)
            for path, content in changes.items():
                self.remove_path(env, parent, path)
                if content is not None:
                    blob = self.git("hash-object", "-w", "--stdin", stdin=content)
                    self.git(
                        "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=env
                    )
            tree = self.git("write-tree", env=env)
            stamp = f"{int(when if when is not None else time.time())} +0000"
            args = ["commit-tree", tree, "-F", "-"] + (["-p", parent] if parent else [])
            sha = self.git(
                *args, stdin=message, env={"GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
            )
            self.git("update-ref", f"refs/heads/{branch}", sha, parent or ZERO_SHA)
            return sha

    def read(self, rev: str, path: str) -> str | None:
        """A file's content at a revision, or None when absent."""
        out = subprocess.run(
            ["git", "--git-dir", str(self.path), "show", f"{rev}:{path}"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return out.stdout.decode() if out.returncode == 0 else None

    def files(self, rev: str, prefix: str = "") -> dict[str, str]:
        """Every file under `prefix` at a revision, path -> content."""
        args = ["ls-tree", "-r", "-z", "--name-only", rev] + (["--", prefix] if prefix else [])
        names = [n for n in self.git(*args).split("\0") if n]
        return {name: self.read(rev, name) or "" for name in names}

    def message(self, rev: str) -> str:
        return self.git("log", "-1", "--format=%B", rev)

    def parents(self, rev: str) -> list[str]:
        return self.git("log", "-1", "--format=%P", rev).split()

    def changed_paths(self, rev: str) -> list[str]:
        """Paths a commit changed relative to its first parent."""
        out = self.git("diff-tree", "--no-commit-id", "-r", "--name-only", "--root", rev)
        return [line for line in out.splitlines() if line]


class ServerThread:
    """A WSGI app served on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, app: Any) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> str:
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Call:
    """One request a fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Rule:
    """A programmed behaviour for matching requests: fail, delay or run a hook, `times` times."""

    method: str
    pattern: str
    times: int
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # fail after handling (the change happened, the answer is lost)
    delay: float = 0.0
    hook: Callable[[Call], None] | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.pattern, path) is not None


class Faults:
    """Failure injection and a record of calls, shared by the fakes."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.rules: list[Rule] = []
        self._lock = threading.Lock()

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: bool = False,
    ) -> Rule:
        """Answer the next `times` matching requests with `status` and `body`."""
        rule = Rule(
            method, pattern, times, status=status, body=body, headers=headers or {}, after=after
        )
        with self._lock:
            self.rules.append(rule)
        return rule

    def slow(self, method: str, pattern: str, seconds: float, times: int = 1) -> Rule:
        """Delay the next `times` matching requests by `seconds`."""
        rule = Rule(method, pattern, times, delay=seconds)
        with self._lock:
            self.rules.append(rule)
        return rule

    def on(self, method: str, pattern: str, hook: Callable[[Call], None], times: int = 1) -> Rule:
        """Run `hook` before handling the next `times` matching requests (e.g. a racing push)."""
        rule = Rule(method, pattern, times, hook=hook)
        with self._lock:
            self.rules.append(rule)
        return rule

    def take(self, call: Call) -> list[Rule]:
        """Record a call and consume the rules that apply to it."""
        with self._lock:
            self.calls.append(call)
            taken = []
            for rule in self.rules:
                if rule.times > 0 and rule.matches(call.method, call.path):
                    rule.times -= 1
                    taken.append(rule)
            self.rules = [r for r in self.rules if r.times > 0]
            return taken

    def count(self, method: str, pattern: str) -> int:
        """How many received calls match."""
        with self._lock:
            return sum(
                1
                for c in self.calls
                if c.method == method and re.search(pattern, c.path) is not None
            )

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self.rules.clear()
