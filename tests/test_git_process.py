"""The git provider's spawn gives git what `subprocess.run` gives it, and keeps its timeout."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from receiver.act.git_process import run_git

ENV = dict(os.environ)


def reference(args: list[str], stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, env=ENV, timeout=10, check=False)


def test_output_error_text_and_exit_code_are_those_subprocess_run_reports() -> None:
    script = "printf 'out\\n%.0s' 1 2 3; printf 'err' >&2; exit 3"
    ran = run_git(["sh", "-c", script], ENV, 10)
    expected = reference(["sh", "-c", script])
    assert (ran.returncode, ran.stdout, ran.stderr) == (3, b"out\nout\nout\n", b"err")
    assert (ran.returncode, ran.stdout, ran.stderr) == (
        expected.returncode,
        expected.stdout,
        expected.stderr,
    )


def test_a_large_output_on_both_streams_is_read_whole() -> None:
    script = "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2"
    ran = run_git(["sh", "-c", script], ENV, 10)
    assert (len(ran.stdout), len(ran.stderr), ran.returncode) == (300000, 200000, 0)


def test_the_child_sees_the_environment_given_and_a_signal_kill_is_a_negative_code() -> None:
    ran = run_git(["sh", "-c", 'printf %s "$ONLY_HERE"; kill -9 $$'], {**ENV, "ONLY_HERE": "x"}, 10)
    assert ran.stdout == b"x"
    assert ran.returncode == -9


GLIBC_INTERNAL = (1 << 31) | (1 << 32)  # signals 32 and 33, ignored in any posix_spawn child


def signal_sets(ran: subprocess.CompletedProcess[bytes]) -> dict[str, int]:
    fields = dict(line.split(":\t") for line in ran.stdout.decode().splitlines())
    return {name: int(mask, 16) & ~GLIBC_INTERNAL for name, mask in fields.items()}


def test_the_child_gets_the_signal_mask_and_dispositions_subprocess_run_gives() -> None:
    """SIGPIPE (ignored by Python) is back to its default in the child, as with restore_signals."""
    args = ["sh", "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status"]
    assert signal_sets(run_git(args, ENV, 10)) == signal_sets(reference(args))
    assert signal_sets(run_git(args, ENV, 10))["SigIgn"] & (1 << 12) == 0  # SIGPIPE (13)


def test_a_descriptor_this_process_made_inheritable_is_not_passed_to_git() -> None:
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    try:
        args = ["sh", "-c", f"test -e /proc/self/fd/{write_end} && echo leaked || echo closed"]
        assert run_git(args, ENV, 10).stdout == b"closed\n"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_a_command_past_its_timeout_is_killed_and_reaped() -> None:
    began = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run_git(["sh", "-c", "echo started; exec sleep 30"], ENV, 0.3)
    assert time.monotonic() - began < 5
    assert "sleep" not in children_commands()  # no child left behind, not even a zombie


def children_commands() -> list[str]:
    """The command names of this process's children, zombies included."""
    names = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as listing:
            for child in listing.read().split():
                try:
                    with open(f"/proc/{child}/comm") as comm:
                        names.append(comm.read().strip())
                except OSError:
                    continue
    return names


def test_input_reaches_the_command() -> None:
    ran = run_git(["sh", "-c", "tr a-z A-Z"], ENV, 10, stdin=b"restore\n")
    assert (ran.returncode, ran.stdout) == (0, b"RESTORE\n")


def test_a_missing_command_raises_like_subprocess() -> None:
    with pytest.raises(FileNotFoundError):
        run_git(["no-such-git-binary-here"], ENV, 10)
