"""A fake Argo CD API server (plain HTTP, like ARGOCD_PLAINTEXT) following API-FACTS C.

Endpoints: POST /api/v1/session; GET /api/v1/applications/{name}[?refresh=hard|normal];
POST .../{name}/rollback; POST .../{name}/sync; PATCH .../{name} (merge or JSON patch).
Errors are grpc-gateway bodies {"error", "code", "message", "details"} with Argo CD's real
strings: "no session information" (401, code 16), "Invalid username or password" (401),
"permission denied" for an unknown app (403, code 7), "rollback cannot be initiated when
auto-sync is enabled" (400, code 9), "Cannot sync to <rev>: auto-sync currently set to <rev>"
(400, code 9), "another operation is already in progress" (400, code 9),
"application <ns>/<name> does not have deployment with id <id>" (400, code 3), and plain-text
415 "Invalid content type" for a non-JSON write.

History entries and operations carry `initiatedBy` as Argo CD writes it: `{"username": <the
account of the session or API token>}` for a rollback or sync through the API,
`{"automated": true}` for an auto-sync; seeded history (`revisions`) is `seed_initiated_by`.

The application is a small state machine. A refresh reconciles: the target revision is resolved
(`resolve`, e.g. a git branch head) into `status.sync.revision`; sync status is Synced when the
deployed revision equals it; with auto-sync on (and `autosync_reacts`) an OutOfSync app gets an
automated sync operation. Each GET advances a running operation: after `ticks_to_finish` GETs
it ends in `operation_outcome`; a Succeeded sync appends to `status.history` (ids increase,
`deployedAt` set) and health goes Progressing, then `health_after_sync`.

Use `running_argocd(...)` or `FakeArgoCD().start()` / `.stop()`; `fake.faults` programs
failures (`fail`, `slow`, `on`) and records calls. `lose_answer` performs a request and then
answers an error anyway (a proxy's 502 after Argo CD acted); `answer_late` performs it and
answers only after a delay (the caller times out, the change happened).
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, Response, request

from . import Call, Faults, Rule, ServerThread, iso

CODES = {
    "InvalidArgument": 3,
    "NotFound": 5,
    "PermissionDenied": 7,
    "FailedPrecondition": 9,
    "Unauthenticated": 16,
    "Internal": 13,
    "Unavailable": 14,
}
HTTP = {3: 400, 5: 404, 7: 403, 9: 400, 16: 401, 13: 500, 14: 503}


def grpc_error(code: str, message: str) -> Response:
    """grpc-gateway v1.16 DefaultHTTPError body and status."""
    number = CODES[code]
    body = {"error": message, "code": number, "message": message, "details": []}
    return Response(json.dumps(body), status=HTTP[number], mimetype="application/json")


@dataclass
class FakeApp:
    """One Argo CD Application and the knobs that steer its controller."""

    name: str
    revisions: list[str] = field(default_factory=list)  # deployed history, oldest first
    target_revision: str = "main"
    resolve: Callable[[], str | None] | None = None  # targetRevision -> sha (git head)
    automated: dict[str, Any] | None = None
    namespace: str = "argocd"
    project: str = "default"
    repo_url: str = "https://github.example/acme/gitops"
    path: str = "k8s/overlays/prod"
    health: str = "Healthy"
    health_message: str = ""
    seed_initiated_by: dict[str, Any] = field(default_factory=lambda: {"automated": True})
    # controller behaviour
    autosync_reacts: bool = True
    ticks_to_finish: int = 1
    operation_outcome: str = "Succeeded"  # or "Failed" / "Error"
    health_after_sync: str = "Healthy"  # or "Degraded"
    # state
    history: list[dict[str, Any]] = field(default_factory=list)
    compared_revision: str | None = None
    operation: dict[str, Any] | None = None
    operation_state: dict[str, Any] | None = None
    _ticks: int = 0
    _progressing: bool = False

    def __post_init__(self) -> None:
        start = time.time() - 3600 * len(self.revisions)
        for index, revision in enumerate(self.revisions):
            self._deploy_record(revision, start + 3600 * index, dict(self.seed_initiated_by))
        if self.compared_revision is None and self.revisions:
            self.compared_revision = self._resolved() or self.revisions[-1]

    @property
    def deployed(self) -> str | None:
        return self.history[-1]["revision"] if self.history else None

    def _resolved(self) -> str | None:
        if self.resolve is not None:
            return self.resolve()
        return None

    def _source(self) -> dict[str, Any]:
        return {"repoURL": self.repo_url, "path": self.path, "targetRevision": self.target_revision}

    def _deploy_record(self, revision: str, at: float, initiated: dict[str, Any]) -> None:
        next_id = (self.history[-1]["id"] + 1) if self.history else 0
        self.history.append(
            {
                "id": next_id,
                "revision": revision,
                "deployedAt": iso(at),
                "deployStartedAt": iso(at - 5),
                "source": self._source(),
                "initiatedBy": initiated,
            }
        )

    # -- controller ------------------------------------------------------------------------

    def autosync_on(self) -> bool:
        return self.automated is not None and self.automated.get("enabled", True) is not False

    def reconcile(self) -> None:
        """What a refresh does: compare with the target revision; auto-sync if allowed."""
        self.compared_revision = self._resolved() or self.compared_revision
        if (
            self.autosync_on()
            and self.autosync_reacts
            and self.operation is None
            and self.compared_revision
            and self.compared_revision != self.deployed
        ):
            self.start_operation(self.compared_revision, {"automated": True})

    def start_operation(self, revision: str, initiated: dict[str, Any]) -> None:
        self.operation = {
            "sync": {"revision": revision, "syncStrategy": {"apply": {}}, "source": self._source()},
            "initiatedBy": initiated,
            "retry": {},
        }
        self.operation_state = None
        self._ticks = 0

    def tick(self) -> None:
        """One controller step, run before each GET answers."""
        if self.operation is not None:
            if self.operation_state is None:
                self.operation_state = {
                    "operation": copy.deepcopy(self.operation),
                    "phase": "Running",
                    "message": "",
                    "startedAt": iso(time.time()),
                }
            self._ticks += 1
            if self._ticks > self.ticks_to_finish:
                self._finish()
            return
        if self._progressing:
            self._progressing = False
            self.health = self.health_after_sync

    def _finish(self) -> None:
        assert self.operation is not None and self.operation_state is not None
        revision = self.operation["sync"]["revision"]
        state = self.operation_state
        state["phase"] = self.operation_outcome
        state["finishedAt"] = iso(time.time())
        if self.operation_outcome == "Succeeded":
            state["message"] = "successfully synced (all tasks run)"
            state["syncResult"] = {"revision": revision, "source": self._source(), "resources": []}
            self._deploy_record(revision, time.time(), self.operation["initiatedBy"])
            self.health = "Progressing"
            self._progressing = True
        else:
            state["message"] = (
                'one or more objects failed to apply, reason: Deployment.apps "app" is invalid'
            )
        self.operation = None

    def as_json(self) -> dict[str, Any]:
        sync_status = "Unknown"
        if self.compared_revision is not None and self.deployed is not None:
            sync_status = "Synced" if self.compared_revision == self.deployed else "OutOfSync"
        policy: dict[str, Any] = {"syncOptions": ["CreateNamespace=true"]}
        if self.automated is not None:
            policy["automated"] = copy.deepcopy(self.automated)
        body: dict[str, Any] = {
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "resourceVersion": str(1000 + len(self.history)),
            },
            "spec": {
                "project": self.project,
                "source": self._source(),
                "destination": {
                    "server": "https://kubernetes.default.svc",
                    "namespace": "production",
                },
                "syncPolicy": policy,
            },
            "status": {
                "sync": {
                    "status": sync_status,
                    "revision": self.compared_revision,
                    "comparedTo": {"source": self._source()},
                },
                "health": {
                    "status": self.health,
                    **({"message": self.health_message} if self.health_message else {}),
                },
                "history": copy.deepcopy(self.history),
                "reconciledAt": iso(time.time()),
            },
        }
        if self.operation is not None:
            body["operation"] = copy.deepcopy(self.operation)
        if self.operation_state is not None:
            body["status"]["operationState"] = copy.deepcopy(self.operation_state)
        return body


class FakeArgoCD:
    """The Argo CD REST subset the receiver uses, over plain HTTP on a loopback port."""

    def __init__(
        self,
        username: str = "admin",
        password: str = "argo-pass",
        api_tokens: tuple[str, ...] = (),
        token_account: str = "admin",
    ) -> None:
        self.users = {username: password}
        self.api_tokens = {token: token_account for token in api_tokens}
        self.sessions: dict[str, str] = {}  # session token -> account
        self.apps: dict[str, FakeApp] = {}
        self.faults = Faults()
        self.logins = 0
        self.lock = threading.RLock()
        self.server: ServerThread | None = None
        self.app = self._build_app()

    def add(self, app: FakeApp) -> FakeApp:
        self.apps[app.name] = app
        return app

    def lose_answer(self, method: str, pattern: str, status: int = 502, times: int = 1) -> Rule:
        """Carry out the next matching requests, then answer `status` (the answer is lost)."""
        body = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        rule = Rule(method, pattern, times, status=status, body=body, after=True)
        with self.faults._lock:
            self.faults.rules.append(rule)
        return rule

    def answer_late(self, method: str, pattern: str, seconds: float, times: int = 1) -> Rule:
        """Carry out the next matching requests, then wait `seconds` before answering."""
        rule = Rule(method, pattern, times, delay=seconds, after=True)
        with self.faults._lock:
            self.faults.rules.append(rule)
        return rule

    def expire_sessions(self) -> None:
        """Every session token becomes invalid (as after a server restart or key rotation)."""
        self.sessions.clear()

    def start(self) -> str:
        self.server = ServerThread(self.app)
        self.server.start()
        return self.address

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def address(self) -> str:
        """host:port, the ARGOCD_SERVER form."""
        assert self.server is not None, "start() the fake first"
        return f"127.0.0.1:{self.server.port}"

    def _build_app(self) -> Flask:
        app = Flask(__name__)

        @app.before_request
        def gate() -> Response | None:
            body = request.get_json(silent=True) if request.data else None
            call = Call(
                request.method, request.path, dict(request.args), body, dict(request.headers)
            )
            taken = self.faults.take(call)
            request.environ["fake.after"] = [r for r in taken if r.after]
            rules = [r for r in taken if not r.after]
            for rule in rules:
                if rule.delay:
                    time.sleep(rule.delay)
                if rule.hook is not None:
                    rule.hook(call)
            for rule in rules:
                if rule.status is not None:
                    if isinstance(rule.body, str):
                        return Response(rule.body, status=rule.status, mimetype="text/plain")
                    return Response(
                        json.dumps(rule.body),
                        status=rule.status,
                        mimetype="application/json",
                        headers=rule.headers,
                    )
            if request.method != "GET" and not (request.content_type or "").startswith(
                "application/json"
            ):
                return Response("Invalid content type", status=415, mimetype="text/plain")
            if request.path == "/api/v1/session":
                return None
            auth = request.headers.get("Authorization", "")
            token = (
                auth[len("Bearer ") :]
                if auth.startswith("Bearer ")
                else request.cookies.get("argocd.token", "")
            )
            account = self.sessions.get(token) or self.api_tokens.get(token)
            if account is None:
                return grpc_error("Unauthenticated", "no session information")
            request.environ["fake.account"] = account
            return None

        @app.after_request
        def lost_answer(response: Response) -> Response:
            for rule in request.environ.get("fake.after", []):
                if rule.delay:
                    time.sleep(rule.delay)
                if rule.status is not None:
                    return Response(str(rule.body), status=rule.status, mimetype="text/html")
            return response

        def initiated() -> dict[str, Any]:
            return {"username": request.environ.get("fake.account", "")}

        @app.post("/api/v1/session")
        def login() -> Response:
            body = request.get_json(silent=True) or {}
            if body.get("token"):
                return grpc_error(
                    "Unauthenticated", "token-based session creation no longer supported"
                )
            if self.users.get(str(body.get("username"))) != body.get("password") or not body.get(
                "password"
            ):
                return grpc_error("Unauthenticated", "Invalid username or password")
            token = secrets.token_hex(16)
            with self.lock:
                self.sessions[token] = str(body.get("username"))
                self.logins += 1
            return Response(json.dumps({"token": token}), mimetype="application/json")

        def find(name: str) -> FakeApp | Response:
            found = self.apps.get(name)
            if found is None:
                if request.args.get("project"):
                    return grpc_error("NotFound", f'applications.argoproj.io "{name}" not found')
                return grpc_error("PermissionDenied", "permission denied")
            return found

        def ok(fake: FakeApp) -> Response:
            return Response(json.dumps(fake.as_json()), mimetype="application/json")

        @app.get("/api/v1/applications/<name>")
        def get_app(name: str) -> Response:
            with self.lock:
                fake = find(name)
                if isinstance(fake, Response):
                    return fake
                if request.args.get("refresh"):
                    fake.reconcile()
                fake.tick()
                return ok(fake)

        @app.post("/api/v1/applications/<name>/rollback")
        def rollback(name: str) -> Response:
            body = request.get_json(silent=True) or {}
            with self.lock:
                fake = find(name)
                if isinstance(fake, Response):
                    return fake
                if fake.autosync_on():
                    return grpc_error(
                        "FailedPrecondition",
                        "rollback cannot be initiated when auto-sync is enabled",
                    )
                entry = next((h for h in fake.history if h["id"] == body.get("id")), None)
                if entry is None:
                    return grpc_error(
                        "InvalidArgument",
                        f"application {fake.namespace}/{name} does not have "
                        f"deployment with id {body.get('id')}",
                    )
                if fake.operation is not None:
                    return grpc_error(
                        "FailedPrecondition", "another operation is already in progress"
                    )
                if not body.get("dryRun"):
                    fake.start_operation(entry["revision"], initiated())
                return ok(fake)

        @app.post("/api/v1/applications/<name>/sync")
        def sync(name: str) -> Response:
            body = request.get_json(silent=True) or {}
            with self.lock:
                fake = find(name)
                if isinstance(fake, Response):
                    return fake
                revision = body.get("revision") or ""
                if (
                    revision
                    and fake.autosync_on()
                    and revision != fake.target_revision
                    and not body.get("dryRun")
                ):
                    return grpc_error(
                        "FailedPrecondition",
                        f"Cannot sync to {revision}: auto-sync currently set to "
                        f"{fake.target_revision}",
                    )
                if fake.operation is not None:
                    return grpc_error(
                        "FailedPrecondition", "another operation is already in progress"
                    )
                if not revision or revision == fake.target_revision:
                    revision = fake._resolved() or fake.compared_revision or ""
                if not body.get("dryRun"):
                    fake.start_operation(revision, initiated())
                return ok(fake)

        @app.route("/api/v1/applications/<name>", methods=["PATCH"])
        def patch(name: str) -> Response:
            body = request.get_json(silent=True) or {}
            with self.lock:
                fake = find(name)
                if isinstance(fake, Response):
                    return fake
                kind = body.get("patchType", "")
                try:
                    patch_doc = json.loads(body.get("patch") or "null")
                except ValueError:
                    return grpc_error("InvalidArgument", "invalid patch")
                spec = fake.as_json()["spec"]
                if kind == "merge":
                    merged = _merge_patch({"spec": spec}, patch_doc)
                elif kind in ("json", ""):
                    merged = {"spec": spec}
                    for op in patch_doc or []:
                        if (
                            op.get("op") != "remove"
                            or op.get("path") != "/spec/syncPolicy/automated"
                            or "automated" not in spec.get("syncPolicy", {})
                        ):
                            return grpc_error("InvalidArgument", "unable to apply patch")
                        del merged["spec"]["syncPolicy"]["automated"]
                else:
                    return grpc_error("InvalidArgument", f"Patch type '{kind}' is not supported")
                fake.automated = (merged.get("spec") or {}).get("syncPolicy", {}).get("automated")
                return ok(fake)

        return app


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_patch(result.get(key), value)
    return result


@contextmanager
def running_argocd(
    *apps: FakeApp,
    password: str = "argo-pass",
    api_tokens: tuple[str, ...] = (),
    token_account: str = "admin",
) -> Iterator[FakeArgoCD]:
    """A started FakeArgoCD holding `apps`, stopped on exit."""
    fake = FakeArgoCD(password=password, api_tokens=api_tokens, token_account=token_account)
    for item in apps:
        fake.add(item)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
