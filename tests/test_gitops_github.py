"""The GitHub provider, driven through PyGithub against a fake GitHub backed by a real bare repo."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from receiver.act.base import ActionContext, RollbackJob
from receiver.act.gitops_common import GitOpsOptions, is_rollback_commit, parse_trailers
from receiver.act.gitops_github import GitHubRevert
from receiver.config import Secret
from receiver.errors import ActionError, LockLost
from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub, running_github
from tests.gitops_support import PATH, Sleeps, commit_of, ctx, gitops_job, seed_manifests

TOKEN = "ghp_s3cr3t_token_value"


@pytest.fixture
def repo(tmp_path: Path) -> BareRepo:
    return seed_manifests(tmp_path / "gitops.git")


@pytest.fixture
def github(repo: BareRepo) -> Iterator[FakeGitHub]:
    with running_github(repo, "acme/gitops", TOKEN) as fake:
        yield fake


def options(token: str = TOKEN, repo: str = "acme/gitops", **changes: Any) -> GitOpsOptions:
    changes.setdefault("sleep", Sleeps())
    return GitOpsOptions(repo, PATH, "main", Secret("GITOPS_TOKEN", token), **changes)


def action(
    github: FakeGitHub,
    sleep: Sleeps | None = None,
    *,
    pull_request: bool = False,
    push_attempts: int = 3,
    **kwargs: Any,
) -> GitHubRevert:
    given = options(pull_request=pull_request, push_attempts=push_attempts, sleep=sleep or Sleeps())
    return GitHubRevert(given, api_url=github.base_url, **{"write_pause": 0.0, **kwargs})


def job(**changes: Any) -> RollbackJob:
    return gitops_job("acme/gitops", **changes)


def test_a_write_pause_spaces_the_three_writes_of_a_rollback_and_no_read(
    repo: BareRepo, github: FakeGitHub
) -> None:
    sleeps = Sleeps()
    action(github, sleeps, write_pause=0.25).execute(job(), ctx())
    assert sleeps.waits == [0.25, 0.25, 0.25]  # create tree, create commit, update branch


def test_a_rollback_restores_the_path_to_its_previous_version_in_one_commit(
    repo: BareRepo, github: FakeGitHub
) -> None:
    head_before = repo.head()
    context = ctx()
    action(github).execute(job(), context)

    head = repo.head()
    assert head == context.details["revert_commit"]
    assert repo.parents(head) == [head_before]
    assert repo.files(head, PATH) == repo.files(commit_of(repo, "v2"), PATH)
    assert repo.read(head, f"{PATH}/new.yaml") is None  # added since the target: deleted
    assert repo.read(head, f"{PATH}/old.yaml") == "kind: ConfigMap"  # removed since: restored
    assert repo.read(head, "other/app.yaml") == "image: other:v10"  # other paths untouched
    assert all(p.startswith(PATH + "/") for p in repo.changed_paths(head))
    assert context.details["target_commit"] == commit_of(repo, "unrelated")
    assert context.details["rolled_back_from"] == commit_of(repo, "v3")


def test_the_commit_message_names_service_shas_reason_and_trailers(
    repo: BareRepo, github: FakeGitHub
) -> None:
    context = ctx()
    action(github).execute(job(), context)
    message = repo.message(repo.head() or "")
    v3, target = commit_of(repo, "v3"), context.details["target_commit"]
    summary = message.splitlines()[0]
    assert "checkout" in summary and v3[:7] in summary and target[:7] in summary
    assert "error budget 85% consumed" in message
    assert parse_trailers(message) == {
        "Rollback-Id": "rb-0001",
        "Rollback-Of": v3,
        "Rollback-To": target,
        "Alert-Fingerprint": "4f1e2d3c",
    }
    assert is_rollback_commit(message)


def test_inspect_reports_current_target_and_the_newest_change(
    repo: BareRepo, github: FakeGitHub
) -> None:
    facts = action(github).inspect(job())
    v3 = commit_of(repo, "v3")
    assert facts.current == v3
    assert facts.target == repo.parents(v3)[0]
    assert facts.last_change_at == float(repo.git("log", "-1", "--format=%ct", v3))
    assert facts.already_rolled_back is False
    assert github.faults.count("POST", "") == 0 and github.faults.count("PATCH", "") == 0


def test_inspect_says_already_rolled_back_after_a_rollback_commit(
    repo: BareRepo, github: FakeGitHub
) -> None:
    action(github).execute(job(), ctx())
    facts = action(github).inspect(job(rollback_id="rb-0002"))
    assert facts.already_rolled_back is True
    assert facts.current == repo.head()


def test_the_target_skips_revisions_on_the_bad_revision_list(
    repo: BareRepo, github: FakeGitHub
) -> None:
    v1, v2 = commit_of(repo, "v1"), commit_of(repo, "v2")
    context = ctx()
    action(github).execute(job(bad_revisions=frozenset({v2[:10]})), context)
    assert context.details["target_commit"] == v1
    assert repo.files(repo.head() or "", PATH) == repo.files(v1, PATH)


def test_target_commit_overrides_the_automatic_choice(repo: BareRepo, github: FakeGitHub) -> None:
    v1 = commit_of(repo, "v1")
    context = ctx()
    action(github).execute(job(target_commit=v1[:12], automatic=False), context)
    assert context.details["target_commit"] == v1
    assert repo.read(repo.head() or "", f"{PATH}/deploy.yaml") == "image: app:v1"


def test_a_path_missing_at_the_target_is_deleted(repo: BareRepo, github: FakeGitHub) -> None:
    first = repo.commit_files({f"{PATH}/extra/x.yaml": "x"}, "extra")
    repo.commit_files({f"{PATH}/extra/x.yaml": "y"}, "extra 2")
    action(github).execute(job(target_commit=repo.parents(first)[0]), ctx())
    assert repo.read(repo.head() or "", f"{PATH}/extra/x.yaml") is None
    assert repo.read(repo.head() or "", f"{PATH}/deploy.yaml") == "image: app:v3"


def test_a_concurrent_push_is_retried_on_the_new_head(repo: BareRepo, github: FakeGitHub) -> None:
    github.race_push({"other/app.yaml": "image: other:v11"}, times=1)
    context = ctx()
    action(github).execute(job(), context)
    head = repo.head() or ""
    assert context.details["revert_commit"] == head
    assert repo.message(repo.parents(head)[0]) == "concurrent change 1"  # their push kept
    assert repo.read(head, "other/app.yaml") == "image: other:v11-1"
    assert repo.files(head, PATH) == repo.files(commit_of(repo, "v2"), PATH)
    assert github.faults.count("PATCH", r"/git/refs?/heads/main") == 2


def test_a_branch_that_keeps_moving_fails_after_bounded_attempts(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.race_push({"other/app.yaml": "image: x"}, times=10)
    with pytest.raises(ActionError) as caught:
        action(github, push_attempts=3).execute(job(), ctx())
    assert caught.value.stage == "gitops"
    assert "Update is not a fast forward" in caught.value.message
    assert github.faults.count("PATCH", r"/git/refs?/heads/main") == 3
    assert not is_rollback_commit(repo.message(repo.head() or ""))


@pytest.mark.parametrize("status", [403, 429])
def test_a_secondary_rate_limit_is_waited_out_for_retry_after(
    repo: BareRepo, github: FakeGitHub, status: int
) -> None:
    github.secondary_rate_limit("POST", r"/git/trees$", status=status, retry_after=7)
    sleeps = Sleeps()
    context = ctx()
    action(github, sleeps).execute(job(), context)
    assert 7.0 in sleeps.waits
    assert repo.head() == context.details["revert_commit"]
    assert github.faults.count("POST", r"/git/trees$") == 2


def test_a_rate_limit_asking_for_too_long_a_wait_fails_clearly(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.secondary_rate_limit("GET", r"/commits$", retry_after=3600)
    with pytest.raises(ActionError) as caught:
        action(github).execute(job(), ctx())
    assert "rate limit" in caught.value.message and "3600" in caught.value.message


def test_a_persistent_rate_limit_fails_after_bounded_tries(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.secondary_rate_limit("POST", r"/git/commits$", retry_after=1, times=10)
    head = repo.head()
    with pytest.raises(ActionError) as caught:
        action(github, call_attempts=3).execute(job(), ctx())
    assert "rate limit" in caught.value.message
    assert github.faults.count("POST", r"/git/commits$") == 3
    assert repo.head() == head


def test_server_errors_are_retried_with_backoff(repo: BareRepo, github: FakeGitHub) -> None:
    github.faults.fail("GET", r"/git/trees/", 502, {"message": "Server Error"}, times=2)
    sleeps = Sleeps()
    context = ctx()
    action(github, sleeps).execute(job(), context)
    assert repo.head() == context.details["revert_commit"]
    assert sleeps.waits[:2] == [0.5, 1.0]


def test_a_lost_answer_to_the_ref_update_does_not_make_a_second_commit(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.faults.fail(
        "PATCH", r"/git/refs?/heads/main", 502, {"message": "Server Error"}, after=True
    )
    head = repo.head()
    context = ctx()
    action(github).execute(job(), context)
    assert repo.parents(repo.head() or "") == [head]
    assert context.details["revert_commit"] == repo.head()


def test_bad_credentials_fail_at_once_without_the_token(repo: BareRepo, github: FakeGitHub) -> None:
    wrong = GitHubRevert(options(token="ghp_wrong_value"), api_url=github.base_url)
    with pytest.raises(ActionError) as caught:
        wrong.execute(job(), ctx())
    assert "401" in caught.value.message and "Bad credentials" in caught.value.message
    assert "ghp_wrong_value" not in caught.value.message
    assert len(github.faults.calls) == 1


def test_an_unknown_repository_fails_at_once_with_a_clear_error(github: FakeGitHub) -> None:
    missing = GitHubRevert(options(repo="acme/nope"), api_url=github.base_url)
    with pytest.raises(ActionError) as caught:
        missing.inspect(job())
    assert "404" in caught.value.message and "GITOPS_REPO" in caught.value.message
    assert len(github.faults.calls) == 1


def test_a_lost_lock_stops_before_the_branch_moves(repo: BareRepo, github: FakeGitHub) -> None:
    head = repo.head()
    calls = {"n": 0}

    def ensure_owned() -> None:
        calls["n"] += 1
        if calls["n"] >= 3:  # the lease is lost after the tree and commit were written
            raise LockLost("lost the lock of checkout: lease expired")

    with pytest.raises(LockLost):
        action(github).execute(job(), ActionContext(ensure_owned=ensure_owned))
    assert repo.head() == head
    assert github.faults.count("PATCH", "") == 0


def test_pull_request_mode_opens_a_pull_request_and_leaves_the_branch(
    repo: BareRepo, github: FakeGitHub
) -> None:
    head = repo.head()
    context = ctx()
    action(github, pull_request=True).execute(job(), context)
    assert repo.head() == head
    pull = github.pulls[0]
    assert pull["base"]["ref"] == "main" and pull["head"]["ref"] == "rollback/checkout-rb-0001"
    assert pull["title"].startswith("rollback(checkout)")
    branch_head = repo.head("rollback/checkout-rb-0001") or ""
    assert repo.parents(branch_head) == [head]
    assert repo.files(branch_head, PATH) == repo.files(commit_of(repo, "v2"), PATH)
    assert context.details["pull_request"] == pull["html_url"]
    assert context.details["pull_request_number"] == 1
    assert context.details["validated"] is False


def test_github_enterprise_api_urls_work(repo: BareRepo) -> None:
    with running_github(repo, "acme/gitops", TOKEN, base_path="/api/v3") as fake:
        assert fake.base_url.endswith("/api/v3")
        context = ctx()
        action(fake).execute(job(), context)
    assert repo.head() == context.details["revert_commit"]


def test_restoring_what_is_already_there_fails_without_a_commit(
    repo: BareRepo, github: FakeGitHub
) -> None:
    head = repo.head() or ""
    with pytest.raises(ActionError) as caught:
        action(github).execute(job(target_commit=head), ctx())
    assert "nothing to restore" in caught.value.message
    assert repo.head() == head


def test_inspect_reads_the_history_as_one_page_of_the_commit_listing(
    repo: BareRepo, github: FakeGitHub
) -> None:
    action(github).inspect(job())
    listings = [c for c in github.faults.calls if c.path.endswith("/commits")]
    assert [(c.query["sha"], c.query["path"], c.query["per_page"]) for c in listings] == [
        (repo.head(), PATH, "30")
    ]


def test_a_commit_listing_github_did_not_shape_as_a_list_fails_the_inspect_clearly(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.faults.fail("GET", r"/commits$", 200, {"message": "not a list"})
    with pytest.raises(ActionError) as caught:
        action(github).inspect(job())
    assert caught.value.message == f"list commits of {PATH}: GitHub answered an unexpected body"


def test_inspect_does_not_retry_because_it_runs_in_the_webhook_request(
    repo: BareRepo, github: FakeGitHub
) -> None:
    github.faults.fail("GET", r"/commits$", 502, {"message": "Server Error"})
    sleeps = Sleeps()
    with pytest.raises(ActionError) as caught:
        action(github, sleeps).inspect(job())
    assert "502" in caught.value.message
    assert github.faults.count("GET", r"/commits$") == 1 and sleeps.waits == []
