"""The fake GitHub itself: its caches never hide a push; it can run in its own process."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.fakes import BareRepo
from tests.fakes.github_api import FakeGitHub
from tests.fakes.github_process import GitHubProcess

TOKEN = "ghp_fake_token"
AUTH = {"Authorization": f"token {TOKEN}"}


def seeded(tmp_path: Path) -> BareRepo:
    repo = BareRepo.create(tmp_path / "gitops.git")
    repo.commit_files({"k8s/a/deploy.yaml": "image: v1", "k8s/b/deploy.yaml": "b1"}, "v1")
    repo.commit_files({"k8s/a/deploy.yaml": "image: v2"}, "v2\n\nbody")
    return repo


def test_a_listing_by_branch_name_shows_a_commit_pushed_after_the_first_listing(
    tmp_path: Path,
) -> None:
    repo = seeded(tmp_path)
    client = FakeGitHub(repo, "acme/gitops", TOKEN).app.test_client()
    url = "/repos/acme/gitops/commits?sha=main&path=k8s/a"
    before = [c["commit"]["message"] for c in client.get(url, headers=AUTH).get_json()]
    pushed = repo.commit_files({"k8s/a/deploy.yaml": "image: v3"}, "v3")
    after = client.get(url, headers=AUTH).get_json()
    assert before == ["v2\n\nbody", "v1"]
    assert after[0]["sha"] == pushed
    assert [c["commit"]["message"] for c in after] == ["v3", "v2\n\nbody", "v1"]


def test_a_listing_from_a_commit_sha_pages_with_a_link_to_the_next_page(tmp_path: Path) -> None:
    repo = seeded(tmp_path)
    head = repo.head()
    client = FakeGitHub(repo, "acme/gitops", TOKEN).app.test_client()
    first = client.get(f"/repos/acme/gitops/commits?sha={head}&per_page=1", headers=AUTH)
    again = client.get(f"/repos/acme/gitops/commits?sha={head}&per_page=1", headers=AUTH)
    second = client.get(f"/repos/acme/gitops/commits?sha={head}&per_page=1&page=2", headers=AUTH)
    assert first.get_json() == again.get_json()
    assert [c["sha"] for c in first.get_json()] == [head]
    assert 'rel="next"' in first.headers["Link"] and "page=2" in first.headers["Link"]
    assert [c["commit"]["message"] for c in second.get_json()] == ["v1"]
    assert "Link" not in second.headers


def test_the_fake_in_its_own_process_answers_and_reports_each_call_by_method_and_path(
    tmp_path: Path,
) -> None:
    repo = seeded(tmp_path)
    github = GitHubProcess(repo, "acme/gitops", TOKEN).start()
    try:
        ref = requests.get(
            f"{github.url}/repos/acme/gitops/git/ref/heads/main", headers=AUTH, timeout=5
        )
        denied = requests.get(f"{github.url}/repos/acme/gitops/commits", timeout=5)
        calls = github.calls()
        pid = github.pid
    finally:
        github.stop()
    assert ref.json()["object"]["sha"] == repo.head()
    assert denied.status_code == 401 and denied.json()["message"] == "Bad credentials"
    assert calls == [  # its own /_fake/ endpoints are not calls
        ("GET", "/repos/acme/gitops/git/ref/heads/main"),
        ("GET", "/repos/acme/gitops/commits"),
    ]
    assert not Path(f"/proc/{pid}").exists()  # stopped by PID and reaped


def _listed(client: object, head: str, path: str) -> list[str]:
    url = f"/repos/acme/gitops/commits?sha={head}&path={path}&per_page=100"
    return [c["sha"] for c in client.get(url, headers=AUTH).get_json()]  # type: ignore[attr-defined]


def test_a_path_listing_is_what_git_rev_list_prints_on_a_linear_history(tmp_path: Path) -> None:
    repo = seeded(tmp_path)
    repo.commit_files({"k8s/a": None}, "delete a")
    repo.commit_files({"k8s/a": "now a file", "k8s/b/deploy.yaml": "b2"}, "a becomes a file")
    repo.commit_files({"k8s/a": None, "k8s/a/x/y.yaml": "a folder again"}, "and a folder")
    head = repo.head()
    assert head is not None
    client = FakeGitHub(repo, "acme/gitops", TOKEN).app.test_client()
    for path in ("k8s", "k8s/a", "k8s/a/x", "k8s/a/deploy.yaml", "k8s/b", "k8s/c", "k8/a"):
        expected = repo.git("rev-list", head, "--", path).split()
        assert _listed(client, head, path) == expected, path
    assert len(_listed(client, head, "k8s/a")) == 5


def test_a_path_listing_across_a_merge_is_what_git_rev_list_prints(tmp_path: Path) -> None:
    repo = seeded(tmp_path)
    base = repo.head()
    assert base is not None
    repo.git("update-ref", "refs/heads/side", base)
    side = repo.commit_files({"k8s/b/deploy.yaml": "b-side"}, "side work", branch="side")
    main = repo.commit_files({"k8s/a/deploy.yaml": "image: v3"}, "main work")
    with repo.index() as env:  # the merge keeps main's k8s/a and the side's k8s/b
        repo.git("read-tree", main, env=env)
        blob = repo.git("hash-object", "-w", "--stdin", stdin="b-side")
        repo.git("update-index", "--cacheinfo", f"100644,{blob},k8s/b/deploy.yaml", env=env)
        tree = repo.git("write-tree", env=env)
    merge = repo.git("commit-tree", tree, "-p", main, "-p", side, "-m", "merge side")
    repo.git("update-ref", "refs/heads/main", merge)
    client = FakeGitHub(repo, "acme/gitops", TOKEN).app.test_client()
    for path in ("k8s", "k8s/a", "k8s/b"):
        assert _listed(client, merge, path) == repo.git("rev-list", merge, "--", path).split()
    assert side in _listed(client, merge, "k8s/b")
