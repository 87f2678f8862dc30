"""The helpers every slow test runs DVC through: no wait is unbounded, no daemon can block the caller."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pytest
from pipeline_copy import run_logged

# A child that leaves a daemon (own session, like `dvc queue start`'s workers) holding its stdout.
LEAVE_A_DAEMON = (
    "import subprocess, sys; "
    "daemon = subprocess.Popen(['sleep', '120'], start_new_session=True); print(daemon.pid, flush=True)"
)


def test_a_daemon_holding_the_output_does_not_block_the_caller(tmp_path):
    started = time.monotonic()
    status, output = run_logged([sys.executable, "-c", LEAVE_A_DAEMON], tmp_path, dict(os.environ), timeout=60)
    daemon = int(output.split()[-1])
    try:
        assert status == 0
        assert time.monotonic() - started < 30, "returned when the command exited, not when its daemon did"
        os.kill(daemon, 0)  # still running: the caller did not wait for it
    finally:
        os.kill(daemon, signal.SIGKILL)


def alive(pid: int) -> bool:
    """Running or stopped; a zombie (killed, not yet reaped by whoever adopted it) counts as gone."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def gone_within(pids: list[int], seconds: float) -> list[int]:
    """The pids still alive after `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(alive(pid) for pid in pids):
        time.sleep(0.1)
    return [pid for pid in pids if alive(pid)]


# A leader with two children in its process group, which print their pids (`sh -c` runs `&` jobs in its own group).
LEADER_WITH_CHILDREN = "sleep 120 & echo child $!; sleep 120 & echo child $!; echo begun; wait"


def test_a_command_past_its_timeout_is_killed_with_its_group(tmp_path):
    started = time.monotonic()
    with pytest.raises(AssertionError, match="did not finish in 2s") as failure:
        run_logged(["sh", "-c", LEADER_WITH_CHILDREN], tmp_path, dict(os.environ), timeout=2)
    assert time.monotonic() - started < 40
    children = [int(pid) for pid in re.findall(r"^child (\d+)$", str(failure.value), re.MULTILINE)]
    assert len(children) == 2, str(failure.value)
    survivors = gone_within(children, 10)
    for pid in survivors:  # leave nothing behind, then fail
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"the leader was killed but its children {survivors} were not"
