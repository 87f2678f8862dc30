"""The helpers every slow test runs DVC through: no wait is unbounded, no daemon can block the caller."""

from __future__ import annotations

import os
import signal
import sys
import time

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


def test_a_command_past_its_timeout_is_killed_with_its_group(tmp_path):
    started = time.monotonic()
    with pytest.raises(AssertionError, match="did not finish in 2s"):
        run_logged(["sh", "-c", "echo begun; sleep 120 & sleep 120"], tmp_path, dict(os.environ), timeout=2)
    assert time.monotonic() - started < 40
