"""What the fake GitHub reads of a bare repo's history, each git object read once.

Git objects never change, so a commit's fields and the history walked from a commit sha are
read from git once and kept; a branch name is resolved by the caller on every request, so a
moved head is seen at once. A listing "commits of `path` from `head`" is what
`git rev-list head -- path` prints. On a linear history (no merge commit) it is answered from
one walk per head (`git log --raw`: every commit with the paths it changed): a commit is
listed when it changed a file at or under `path`, which is rev-list's own rule when every
commit has one parent (and the root commit "changes" every path it holds). Merges, and paths
git would read as a pattern, are left to `git rev-list` itself.
"""

from __future__ import annotations

import threading

from . import BareRepo

# a commit's fields as `git rev-list --format` prints them, each ended by NUL (%B is last)
COMMIT_FORMAT = "%H%x00%T%x00%P%x00%an%x00%ae%x00%at%x00%cn%x00%ce%x00%ct%x00%B%x00"
COMMIT_FIELDS = 10
_PATTERN_CHARS = set("*?[]\\:!^")


def _plain(path: str) -> bool:
    """A path git matches literally and only as itself or a folder (no pathspec magic)."""
    if not path or set(path) & _PATTERN_CHARS:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


class CommitReader:
    """Commits (fields by sha) and path histories of one bare repo, read once each."""

    def __init__(self, repo: BareRepo) -> None:
        self.repo = repo
        self._lock = threading.Lock()
        self._commits: dict[str, list[str]] = {}
        self._listings: dict[tuple[str, str, int, int], list[str]] = {}
        # head -> {path or folder: shas that changed it, newest first}; None: not linear
        self._walks: dict[str, dict[str, list[str]] | None] = {}

    def known(self, sha: str) -> bool:
        """True for the full sha of a commit already read (it names itself forever)."""
        return sha in self._commits

    def fields(self, sha: str) -> list[str] | None:
        """sha, tree, parents, author name/email/epoch, committer name/email/epoch, message."""
        known = self._commits.get(sha)
        if known is not None:
            return known
        if self.repo.object_type(sha) != "commit":
            return None
        return self._commits[self._read("--no-walk", sha)[0]]  # kept by full sha only

    def history(self, head: str, path: str, skip: int, count: int) -> list[str]:
        """The shas `git rev-list --skip=skip --max-count=count head [-- path]` prints."""
        key = (head, path, skip, count)
        listed = self._listings.get(key)
        if listed is None:
            changed = self._walk(head) if _plain(path) else None
            if changed is not None:
                listed = changed.get(path, [])[skip : skip + count]
                missing = [s for s in listed if s not in self._commits]
                if missing:
                    self._read("--no-walk", *missing)
            else:
                args = [f"--skip={skip}", f"--max-count={count}", head]
                listed = self._read(*args, *(["--", path] if path else []))
            self._listings[key] = listed
        return listed

    def _read(self, *args: str) -> list[str]:
        """Shas of `git rev-list <args>`, each commit's fields kept."""
        out = self.repo.git("rev-list", "--no-commit-header", f"--format={COMMIT_FORMAT}", *args)
        fields = out.split("\0")[:-1]  # each record ends with NUL (then tformat's newline)
        shas = []
        for start in range(0, len(fields), COMMIT_FIELDS):
            record = fields[start : start + COMMIT_FIELDS]
            record[0] = record[0].lstrip("\n")
            self._commits[record[0]] = record
            shas.append(record[0])
        return shas

    def _walk(self, head: str) -> dict[str, list[str]] | None:
        """Every path and folder changed from `head` back, with its commits; None for merges."""
        with self._lock:
            if head in self._walks:
                return self._walks[head]
            out = self.repo.git(
                "-c",
                "log.showRoot=true",
                "log",
                "--no-renames",
                "--no-relative",
                "--raw",
                "--no-abbrev",
                "-z",
                "--format=%x01%H %P",
                head,
            )
            changed: dict[str, list[str]] | None = {}
            tokens = out.split("\0")
            sha, i = "", 0
            while i < len(tokens) and changed is not None:
                token = tokens[i].lstrip("\n")
                if token.startswith(":"):  # a raw diff line; its path is the next token
                    name = tokens[i + 1]
                    parts = name.split("/")
                    for depth in range(1, len(parts) + 1):
                        shas = changed.setdefault("/".join(parts[:depth]), [])
                        if not shas or shas[-1] != sha:
                            shas.append(sha)
                    i += 2
                    continue
                if token.startswith("\x01"):  # a commit: "sha parent ..."
                    sha, *parents = token[1:].split()
                    if len(parents) > 1:
                        changed = None  # a merge: rev-list's history simplification applies
                i += 1
            self._walks[head] = changed
            return changed
