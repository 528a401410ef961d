"""A fake of the GitHub REST API subset PyGithub uses to restore a folder, on a real bare repo.

Endpoints (API-FACTS D): GET /repos/{o}/{r}; GET /repos/{o}/{r}/commits?sha=&path= (paginated,
Link header); GET /git/commits/{sha}; GET /git/trees/{sha}[?recursive=1]; POST /git/trees
(base_tree, nested paths, `sha: null` deletes); POST /git/commits; GET /git/ref/{ref} and
/git/refs/{ref}; PATCH /git/refs/{ref} and /git/ref/{ref} (422 "Update is not a fast forward");
POST /git/refs; POST /pulls; issues: POST/GET /issues (state, labels, sort, direction,
per_page, page with a Link header), GET/PATCH /issues/{n}, POST /issues/{n}/comments,
POST /issues/{n}/labels. Every object is a real git object made with plumbing
(hash-object, update-index on a throwaway index, write-tree, commit-tree, update-ref).

Auth: `Authorization: token T` or `Bearer T`; anything else is 401 "Bad credentials".
Errors carry GitHub's bodies: {"message", "documentation_url", "status"}. Issues answer as
GitHub does: 404 "Not Found" for another repository, 410 "Issues are disabled for this repo"
when `issues_enabled` is False, 422 "Validation Failed" with `errors` for a missing title or
a bad state (REST docs "Create an issue" / "Update an issue" status codes; the 410 message as
reported in ingydotnet/git-hub#72 and ossf/allstar#64).

Use `running_github(repo, ...)` (a context manager) or `FakeGitHub(...).start()` / `.stop()`;
`fake.faults` programs failures (`fail`, `slow`, `on`) and records calls;
`fake.secondary_rate_limit(...)` reproduces GitHub's 403/429 with Retry-After.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, request

from . import BareRepo, Call, Faults, ServerThread, iso
from .git_history import CommitReader

DOCS = "https://docs.github.com/rest"
SECONDARY_RATE_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID "
    "0C00:1D2E:3F4A:5B6C:7D8E9F0A."
)
SECONDARY_RATE_LIMIT_DOCS = (
    "https://docs.github.com/free-pro-team@latest/rest/overview/"
    "rate-limits-for-the-rest-api#about-secondary-rate-limits"
)


def error(status: int, message: str, docs: str = DOCS, **extra: Any) -> Response:
    """A GitHub error answer."""
    body = {"message": message, "documentation_url": docs, "status": str(status), **extra}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def answer(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, mimetype="application/json", headers=headers or {}
    )


class FakeGitHub:
    """The GitHub REST subset for one repository `full_name`, stored in a real bare repo."""

    def __init__(
        self,
        repo: BareRepo,
        full_name: str = "acme/gitops",
        token: str = "ghp_fake",
        base_path: str = "",
        default_branch: str = "main",
    ) -> None:
        self.repo = repo
        self.full_name = full_name
        self.token = token
        self.base_path = base_path.rstrip("/")
        self.default_branch = default_branch
        self.faults = Faults()
        self.pulls: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.issues_enabled = True
        self.rate_remaining: int | None = None  # sent as x-ratelimit-remaining when set
        self.history = CommitReader(repo)  # commits and path histories, each read once
        self.server: ServerThread | None = None
        self.app = self._build_app()

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Serve on a free loopback port; returns the API base URL (with base_path)."""
        self.server = ServerThread(self.app)
        self.server.start()
        return self.base_url

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def base_url(self) -> str:
        assert self.server is not None, "start() the fake first"
        return self.server.url + self.base_path

    # -- fault helpers ---------------------------------------------------------------------

    def secondary_rate_limit(
        self,
        method: str,
        pattern: str,
        status: int = 403,
        retry_after: int | None = 1,
        times: int = 1,
    ) -> None:
        """Answer like GitHub's secondary rate limit (403 or 429, Retry-After when given)."""
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4990",
            "x-ratelimit-resource": "core",
        }
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        body = {
            "message": SECONDARY_RATE_LIMIT_MESSAGE,
            "documentation_url": SECONDARY_RATE_LIMIT_DOCS,
        }
        self.faults.fail(method, pattern, status, body, headers, times)

    def race_push(
        self, changes: dict[str, str | None], times: int = 1, branch: str = "main"
    ) -> None:
        """Before the next ref update(s), someone else pushes a commit to `branch`."""
        counter = {"n": 0}

        def push(_: Call) -> None:
            counter["n"] += 1
            self.repo.commit_files(
                {k: (None if v is None else f"{v}-{counter['n']}") for k, v in changes.items()},
                f"concurrent change {counter['n']}",
                branch,
            )

        self.faults.on("PATCH", r"/git/refs?/heads/", push, times)

    # -- JSON shapes -----------------------------------------------------------------------

    @property
    def _api(self) -> str:
        host = request.host_url.rstrip("/")
        return f"{host}{self.base_path}/repos/{self.full_name}"

    def _person(self, name: str, email: str, epoch: str) -> dict[str, str]:
        return {"name": name, "email": email, "date": iso(float(epoch))}

    def _git_commit(self, sha: str) -> dict[str, Any] | None:
        fields = self.history.fields(sha)
        if fields is None:
            return None
        full, tree, parents, an, ae, at, cn, ce, ct, message = fields
        return {
            "sha": full,
            "node_id": f"C_{full[:12]}",
            "url": f"{self._api}/git/commits/{full}",
            "html_url": f"https://github.example/{self.full_name}/commit/{full}",
            "author": self._person(an, ae, at),
            "committer": self._person(cn, ce, ct),
            "tree": {"sha": tree, "url": f"{self._api}/git/trees/{tree}"},
            "message": message.rstrip("\n"),
            "parents": [
                {
                    "sha": p,
                    "url": f"{self._api}/git/commits/{p}",
                    "html_url": f"https://github.example/{self.full_name}/commit/{p}",
                }
                for p in parents.split()
            ],
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
            },
        }

    def _rest_commit(self, sha: str) -> dict[str, Any]:
        git = self._git_commit(sha)
        assert git is not None
        return {
            "sha": git["sha"],
            "node_id": git["node_id"],
            "url": f"{self._api}/commits/{sha}",
            "html_url": git["html_url"],
            "commit": {k: git[k] for k in ("url", "author", "committer", "tree", "message")}
            | {"comment_count": 0, "verification": git["verification"]},
            "author": None,
            "committer": None,
            "parents": git["parents"],
        }

    def _tree(self, sha: str, recursive: bool) -> dict[str, Any]:
        args = ["ls-tree", "-l", "-z"] + (["-r", "-t"] if recursive else []) + [sha]
        entries = []
        for item in self.repo.git(*args).split("\0"):
            if not item:
                continue
            meta, path = item.split("\t", 1)
            mode, kind, obj, size = meta.split()
            entry: dict[str, Any] = {"path": path, "mode": mode, "type": kind, "sha": obj}
            if kind == "blob":
                entry["size"] = int(size)
                entry["url"] = f"{self._api}/git/blobs/{obj}"
            elif kind == "tree":
                entry["url"] = f"{self._api}/git/trees/{obj}"
            entries.append(entry)
        return {
            "sha": sha,
            "url": f"{self._api}/git/trees/{sha}",
            "tree": entries,
            "truncated": False,
        }

    def _ref(self, name: str) -> dict[str, Any] | None:
        sha = self.repo.git("rev-parse", "--verify", "--quiet", f"refs/{name}", check=False)
        if not sha:
            return None
        return {
            "ref": f"refs/{name}",
            "node_id": f"REF_{name}",
            "url": f"{self._api}/git/refs/{name}",
            "object": {"sha": sha, "type": "commit", "url": f"{self._api}/git/commits/{sha}"},
        }

    # -- app -------------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask(__name__)
        prefix = self.base_path + "/repos/<owner>/<name>"

        @app.before_request
        def gate() -> Response | None:
            body = request.get_json(silent=True) if request.data else None
            path = request.path[len(self.base_path) :] if self.base_path else request.path
            call = Call(request.method, path, dict(request.args), body, dict(request.headers))
            rules = self.faults.take(call)
            for rule in rules:
                if rule.delay:
                    time.sleep(rule.delay)
                if rule.hook is not None:
                    rule.hook(call)
            auth = request.headers.get("Authorization", "")
            scheme, _, given = auth.partition(" ")
            if scheme.lower() not in ("token", "bearer") or given != self.token:
                return error(401, "Bad credentials")
            for rule in rules:
                if rule.status is not None and not rule.after:
                    return answer(rule.body, rule.status, rule.headers)
            request.environ["fake.after"] = [r for r in rules if r.status and r.after]
            return None

        @app.after_request
        def lost_answer(response: Response) -> Response:
            for rule in request.environ.get("fake.after", []):
                return answer(rule.body, rule.status or 500, rule.headers)
            if self.rate_remaining is not None:
                response.headers["x-ratelimit-limit"] = "5000"
                response.headers["x-ratelimit-remaining"] = str(self.rate_remaining)
                response.headers["x-ratelimit-reset"] = str(int(time.time()) + 3600)
            return response

        def repo_or_404(owner: str, name: str) -> Response | None:
            if f"{owner}/{name}" != self.full_name:
                return error(404, "Not Found")
            return None

        @app.get(prefix)
        def get_repo(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            return answer(
                {
                    "id": 1,
                    "name": name,
                    "full_name": self.full_name,
                    "owner": {"login": owner},
                    "private": True,
                    "default_branch": self.default_branch,
                    "url": self._api,
                    "html_url": f"https://github.example/{self.full_name}",
                }
            )

        @app.get(prefix + "/commits")
        def list_commits(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            start = request.args.get("sha") or self.default_branch
            if self.history.known(start):  # a full commit sha already read: it names itself
                sha: str | None = start
            else:
                sha = self.repo.resolve(start) or self.repo.resolve(f"refs/heads/{start}")
            if sha is None:
                return error(404, f"No commit found for SHA: {start}")
            per_page = min(int(request.args.get("per_page", 30)), 100)
            page = int(request.args.get("page", 1))
            path = request.args.get("path", "")
            shas = self.history.history(sha, path, (page - 1) * per_page, per_page + 1)
            headers = {}
            if len(shas) > per_page:
                query = "&".join(f"{k}={v}" for k, v in request.args.items() if k != "page")
                headers["Link"] = f'<{self._api}/commits?{query}&page={page + 1}>; rel="next"'
            return answer([self._rest_commit(s) for s in shas[:per_page]], headers=headers)

        @app.get(prefix + "/git/commits/<sha>")
        def get_git_commit(owner: str, name: str, sha: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            commit = self._git_commit(sha)
            return answer(commit) if commit else error(404, "Not Found")

        @app.get(prefix + "/git/trees/<sha>")
        def get_tree(owner: str, name: str, sha: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            kind = self.repo.object_type(sha)
            if kind not in ("tree", "commit"):
                return error(404, "Not Found")
            tree = self.repo.git("rev-parse", f"{sha}^{{tree}}")
            return answer(self._tree(tree, "recursive" in request.args))

        @app.post(prefix + "/git/trees")
        def create_tree(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            body = request.get_json(silent=True) or {}
            base = body.get("base_tree")
            if base is not None and self.repo.object_type(base) != "tree":
                return error(422, f"base_tree {base} is not a valid tree")
            with self.repo.index() as env:
                if base:
                    self.repo.git("read-tree", base, env=env)
                else:
                    self.repo.git("read-tree", "--empty", env=env)
                for entry in body.get("tree", []):
                    path = str(entry.get("path", "")).strip("/")
                    if not path:
                        return error(422, "tree.path is missing")
                    if "sha" in entry and "content" in entry:
                        return error(422, "Must supply either tree.sha or tree.content, not both")
                    if "content" in entry:
                        blob = self.repo.git(
                            "hash-object", "-w", "--stdin", stdin=str(entry["content"])
                        )
                        self.repo.remove_path(env, base, path)
                        self.repo.git(
                            "update-index",
                            "--add",
                            "--cacheinfo",
                            f"{entry.get('mode', '100644')},{blob},{path}",
                            env=env,
                        )
                        continue
                    sha = entry.get("sha")
                    if sha is None:
                        if not self.repo.remove_path(env, base, path):
                            return error(422, f"GitRPC::BadObjectState: {path} does not exist")
                        continue
                    kind = entry.get("type")
                    if self.repo.object_type(sha) != kind:
                        return error(422, f"tree.sha {sha} is not a valid {kind}")
                    self.repo.remove_path(env, base, path)
                    if kind == "tree":
                        self.repo.add_tree(env, sha, path)
                    else:
                        self.repo.git(
                            "update-index",
                            "--add",
                            "--cacheinfo",
                            f"{entry['mode']},{sha},{path}",
                            env=env,
                        )
                tree = self.repo.git("write-tree", env=env)
            return answer(self._tree(tree, False), 201)

        @app.post(prefix + "/git/commits")
        def create_commit(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            body = request.get_json(silent=True) or {}
            tree = body.get("tree")
            if not isinstance(tree, str) or self.repo.object_type(tree) != "tree":
                return error(422, "Tree SHA does not exist")
            parents = body.get("parents") or []
            for parent in parents:
                if self.repo.object_type(parent) != "commit":
                    return error(422, "Parent SHA does not exist or is not a commit object")
            now = str(int(time.time()))
            author = body.get("author") or {
                "name": "rollback-bot",
                "email": "rollback-bot@example.com",
            }
            committer = body.get("committer") or author
            env = {
                "GIT_AUTHOR_NAME": author["name"],
                "GIT_AUTHOR_EMAIL": author["email"],
                "GIT_AUTHOR_DATE": f"{now} +0000",
                "GIT_COMMITTER_NAME": committer["name"],
                "GIT_COMMITTER_EMAIL": committer["email"],
                "GIT_COMMITTER_DATE": f"{now} +0000",
            }
            args = ["commit-tree", tree, "-F", "-"]
            for parent in parents:
                args += ["-p", parent]
            sha = self.repo.git(*args, stdin=str(body.get("message", "")), env=env)
            return answer(self._git_commit(sha), 201)

        def get_ref(owner: str, name: str, ref: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            found = self._ref(ref)
            return answer(found) if found else error(404, "Not Found")

        def update_ref(owner: str, name: str, ref: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            body = request.get_json(silent=True) or {}
            current = self._ref(ref)
            if current is None:
                return error(422, "Reference does not exist")
            sha = str(body.get("sha", ""))
            if self.repo.object_type(sha) != "commit":
                return error(422, "Object does not exist")
            old = current["object"]["sha"]
            if not body.get("force") and not _is_ancestor(self.repo, old, sha):
                return error(
                    422,
                    "Update is not a fast forward",
                    "https://docs.github.com/rest/git/refs#update-a-reference",
                )
            try:  # compare-and-swap: a push between our read and this write is a race too
                self.repo.git("update-ref", f"refs/{ref}", sha, old)
            except subprocess.CalledProcessError:
                return error(
                    422,
                    "Update is not a fast forward",
                    "https://docs.github.com/rest/git/refs#update-a-reference",
                )
            return answer(self._ref(ref))

        for route in ("/git/ref/<path:ref>", "/git/refs/<path:ref>"):
            app.add_url_rule(prefix + route, f"get{route}", get_ref, methods=["GET"])
            app.add_url_rule(prefix + route, f"patch{route}", update_ref, methods=["PATCH"])

        @app.post(prefix + "/git/refs")
        def create_ref(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            body = request.get_json(silent=True) or {}
            ref = str(body.get("ref", ""))
            if not ref.startswith("refs/") or ref.count("/") < 2:
                return error(
                    422, "Reference name must start with 'refs/' and have at least two slashes."
                )
            sha = str(body.get("sha", ""))
            if self.repo.object_type(sha) != "commit":
                return error(422, "Object does not exist")
            if self._ref(ref[len("refs/") :]) is not None:
                return error(422, "Reference already exists")
            self.repo.git("update-ref", ref, sha, "0" * 40)
            return answer(self._ref(ref[len("refs/") :]), 201)

        @app.post(prefix + "/pulls")
        def create_pull(owner: str, name: str) -> Response:
            missing = repo_or_404(owner, name)
            if missing:
                return missing
            body = request.get_json(silent=True) or {}
            head, base = str(body.get("head", "")), str(body.get("base", ""))
            head_sha = self.repo.head(head)
            base_sha = self.repo.head(base)
            if head_sha is None or base_sha is None:
                field = "head" if head_sha is None else "base"
                return error(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "PullRequest", "field": field, "code": "invalid"}],
                )
            if any(p["head"]["ref"] == head and p["state"] == "open" for p in self.pulls):
                return error(
                    422,
                    "Validation Failed",
                    errors=[
                        {
                            "resource": "PullRequest",
                            "code": "custom",
                            "message": f"A pull request already exists for {owner}:{head}.",
                        }
                    ],
                )
            number = len(self.pulls) + 1
            pull = {
                "id": 1000 + number,
                "number": number,
                "state": "open",
                "url": f"{self._api}/pulls/{number}",
                "html_url": f"https://github.example/{self.full_name}/pull/{number}",
                "title": body.get("title"),
                "body": body.get("body"),
                "draft": bool(body.get("draft", False)),
                "merged": False,
                "user": {"login": "rollback-bot"},
                "head": {"ref": head, "sha": head_sha, "label": f"{owner}:{head}"},
                "base": {"ref": base, "sha": base_sha, "label": f"{owner}:{base}"},
            }
            self.pulls.append(pull)
            return answer(pull, 201)

        self._add_issue_routes(app, prefix, repo_or_404)

        @app.errorhandler(404)
        def unknown(_: Exception) -> Response:
            return error(404, "Not Found")

        return app

    # -- issues ----------------------------------------------------------------------------

    def _issue_json(self, issue: dict[str, Any]) -> dict[str, Any]:
        number = issue["number"]
        return {
            **{k: v for k, v in issue.items() if k != "comment_list"},
            "url": f"{self._api}/issues/{number}",
            "html_url": f"https://github.example/{self.full_name}/issues/{number}",
            "comments": len(issue["comment_list"]),
            "labels": [{"id": 1, "name": n, "color": "ededed"} for n in issue["labels"]],
        }

    def issue(self, number: int) -> dict[str, Any]:
        """An issue as stored (labels as names, `comment_list` of comment bodies)."""
        return next(i for i in self.issues if i["number"] == number)

    def _add_issue_routes(self, app: Flask, prefix: str, repo_or_404: Any) -> None:
        issues_docs = "https://docs.github.com/rest/issues/issues"

        def unusable(owner: str, name: str) -> Response | None:
            missing = repo_or_404(owner, name)
            if missing is not None:
                return missing  # type: ignore[no-any-return]
            if not self.issues_enabled:
                return error(410, "Issues are disabled for this repo", issues_docs)
            return None

        def find(number: int) -> dict[str, Any] | None:
            return next((i for i in self.issues if i["number"] == number), None)

        @app.post(prefix + "/issues")
        def create_issue(owner: str, name: str) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            body = request.get_json(silent=True) or {}
            title = body.get("title")
            if not isinstance(title, str) or not title.strip():
                return error(
                    422,
                    "Validation Failed",
                    f"{issues_docs}#create-an-issue",
                    errors=[{"resource": "Issue", "code": "missing_field", "field": "title"}],
                )
            labels = [
                str(x.get("name") if isinstance(x, dict) else x) for x in body.get("labels") or []
            ]
            now = iso(time.time())
            issue = {
                "id": 5000 + len(self.issues) + 1,
                "number": len(self.issues) + len(self.pulls) + 1,
                "title": title,
                "body": body.get("body"),
                "state": "open",
                "state_reason": None,
                "labels": labels,
                "user": {"login": "rollback-bot"},
                "created_at": now,
                "updated_at": now,
                "closed_at": None,
                "comment_list": [],
            }
            self.issues.append(issue)
            return answer(self._issue_json(issue), 201)

        @app.get(prefix + "/issues")
        def list_issues(owner: str, name: str) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            state = request.args.get("state", "open")
            wanted = [x for x in request.args.get("labels", "").split(",") if x]
            found = [
                i
                for i in self.issues
                if (state == "all" or i["state"] == state) and all(x in i["labels"] for x in wanted)
            ]
            found.sort(key=lambda i: i["number"], reverse=request.args.get("direction") != "asc")
            per_page = min(100, int(request.args.get("per_page", 30)))
            page = int(request.args.get("page", 1))
            chunk = found[(page - 1) * per_page : page * per_page]
            headers = {}
            if page * per_page < len(found):
                query = {**request.args, "page": str(page + 1)}
                link = f"{self._api}/issues?" + "&".join(f"{k}={v}" for k, v in query.items())
                headers["Link"] = f'<{link}>; rel="next"'
            return answer([self._issue_json(i) for i in chunk], 200, headers)

        @app.get(prefix + "/issues/<int:number>")
        def get_issue(owner: str, name: str, number: int) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            issue = find(number)
            if issue is None:
                return error(404, "Not Found", f"{issues_docs}#get-an-issue")
            return answer(self._issue_json(issue))

        @app.patch(prefix + "/issues/<int:number>")
        def update_issue(owner: str, name: str, number: int) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            issue = find(number)
            if issue is None:
                return error(404, "Not Found", f"{issues_docs}#update-an-issue")
            body = request.get_json(silent=True) or {}
            if "state" in body and body["state"] not in ("open", "closed"):
                return error(
                    422,
                    "Validation Failed",
                    f"{issues_docs}#update-an-issue",
                    errors=[{"resource": "Issue", "code": "invalid", "field": "state"}],
                )
            if "state" in body:
                issue["state"] = body["state"]
                issue["closed_at"] = iso(time.time()) if body["state"] == "closed" else None
                issue["state_reason"] = body.get("state_reason") or (
                    "completed" if body["state"] == "closed" else "reopened"
                )
            if "labels" in body:
                issue["labels"] = [str(x) for x in body["labels"]]
            for key in ("title", "body"):
                if key in body:
                    issue[key] = body[key]
            issue["updated_at"] = iso(time.time())
            return answer(self._issue_json(issue))

        @app.post(prefix + "/issues/<int:number>/comments")
        def create_comment(owner: str, name: str, number: int) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            issue = find(number)
            if issue is None:
                return error(404, "Not Found", f"{issues_docs}#create-an-issue-comment")
            text = (request.get_json(silent=True) or {}).get("body")
            if not isinstance(text, str) or not text:
                return error(
                    422,
                    "Validation Failed",
                    errors=[{"resource": "IssueComment", "code": "missing_field", "field": "body"}],
                )
            issue["comment_list"].append(text)
            cid = 9000 + sum(len(i["comment_list"]) for i in self.issues)
            return answer(
                {
                    "id": cid,
                    "body": text,
                    "user": {"login": "rollback-bot"},
                    "url": f"{self._api}/issues/comments/{cid}",
                    "html_url": f"https://github.example/{self.full_name}/issues/{number}#issuecomment-{cid}",
                    "created_at": iso(time.time()),
                },
                201,
            )

        @app.post(prefix + "/issues/<int:number>/labels")
        def add_labels(owner: str, name: str, number: int) -> Response:
            refused = unusable(owner, name)
            if refused:
                return refused
            issue = find(number)
            if issue is None:
                return error(404, "Not Found", f"{issues_docs}#add-labels-to-an-issue")
            body = request.get_json(silent=True)
            names = body.get("labels") if isinstance(body, dict) else body
            for label in names or []:
                if str(label) not in issue["labels"]:
                    issue["labels"].append(str(label))
            return answer([{"id": 1, "name": n, "color": "ededed"} for n in issue["labels"]])


def _is_ancestor(repo: BareRepo, old: str, new: str) -> bool:
    """True when `new` contains `old` (a fast-forward)."""
    result = subprocess.run(
        ["git", "--git-dir", str(repo.path), "merge-base", "--is-ancestor", old, new],
        capture_output=True,
        timeout=30,
        check=False,
    )
    return result.returncode == 0


@contextmanager
def running_github(
    repo: BareRepo, full_name: str = "acme/gitops", token: str = "ghp_fake", base_path: str = ""
) -> Iterator[FakeGitHub]:
    """A started FakeGitHub, stopped on exit."""
    fake = FakeGitHub(repo, full_name, token, base_path)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
