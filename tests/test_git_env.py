"""The git processes' environment: the receiver's own without GIT_*, kept until it changes."""

from __future__ import annotations

import pytest

from receiver.act.git_env import inherited_environment


def test_git_variables_are_left_out_and_changes_are_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_DIR", "/elsewhere")  # would point every git command at another repo
    monkeypatch.setenv("ROLLBACK_TEST_VAR", "one")
    first = inherited_environment()
    assert "GIT_DIR" not in first and first["ROLLBACK_TEST_VAR"] == "one"
    first["ROLLBACK_TEST_VAR"] = "changed by a caller"  # a copy: the next caller gets its own
    assert inherited_environment()["ROLLBACK_TEST_VAR"] == "one"
    monkeypatch.setenv("ROLLBACK_TEST_VAR", "two")
    assert inherited_environment()["ROLLBACK_TEST_VAR"] == "two"
    monkeypatch.delenv("ROLLBACK_TEST_VAR")
    assert "ROLLBACK_TEST_VAR" not in inherited_environment()
