"""A quiet console: TensorFlow's start-up lines are filtered from stderr; real errors and failures are kept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet import quiet

REPO = Path(__file__).resolve().parents[1]

# What `import tensorflow` then listing devices printed on a 2-core machine without a GPU (TensorFlow 2.21).
STARTUP = """\
WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796193883.460705    4492 port.cc:153] oneDNN custom operations are on. You may see slightly \
different numerical results due to floating-point round-off errors from different computation orders. To turn them \
off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.
I0000 00:00:1796193883.461509    4492 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not \
be used.
E0000 00:00:1796193887.417894    4492 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call \
to cuInit: UNKNOWN ERROR (303)
"""
REAL_ERROR = "E0000 00:00:1796193887.5    4492 op_kernel.cc:1857] OP_REQUIRES failed: something real\n"
PYTHON_WARNING = "/x/y.py:3: UserWarning: a warning from Python code\n"
# What a user must never see when nothing failed.
ALARMING = re.compile(r"^(E0000|W0000|F0000|WARNING: All log messages)|failed call to cuInit", re.MULTILINE)


def test_the_startup_noise_goes_and_everything_else_stays():
    text = STARTUP + REAL_ERROR + PYTHON_WARNING
    assert quiet.without_startup_noise(text, driver_present=False) == REAL_ERROR + PYTHON_WARNING


def test_with_an_nvidia_driver_a_failing_cuinit_is_a_real_error_and_stays():
    kept = quiet.without_startup_noise(STARTUP, driver_present=True)
    assert kept.splitlines() == [STARTUP.splitlines()[-1]], "only the INFO lines and the preamble go"


def test_the_filter_works_on_file_descriptor_2(capfd, monkeypatch):
    """C++ logging writes to fd 2 directly, not through sys.stderr: that is what is captured and filtered."""
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setattr(quiet, "nvidia_driver_present", lambda: False)
    with quiet.startup_noise_filtered():
        os.write(2, (STARTUP + REAL_ERROR).encode())
    assert capfd.readouterr().err == REAL_ERROR


def test_when_the_import_fails_every_line_is_shown(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    monkeypatch.setattr(quiet, "nvidia_driver_present", lambda: False)
    with pytest.raises(ImportError), quiet.startup_noise_filtered():
        os.write(2, STARTUP.encode())
        raise ImportError("libtensorflow_framework.so.2: cannot open shared object file")
    assert capfd.readouterr().err == STARTUP


def test_asking_tensorflow_for_info_logs_turns_the_filter_off(capfd, monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "0")
    with quiet.startup_noise_filtered():
        os.write(2, STARTUP.encode())
    assert capfd.readouterr().err == STARTUP


def test_a_stage_script_start_prints_nothing_alarming(tmp_path):
    """What train, evaluate and figure1 do first (import alexnet.backend), then a TensorFlow op and a Keras layer:
    on this machine, with or without a GPU, stderr holds no absl preamble, E0000/W0000 line or cuInit failure."""
    shutil.copy(REPO / "params.yaml", tmp_path / "params.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TF_CPP", "KERAS_BACKEND"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    script = (
        "import alexnet.backend\nimport keras\nimport tensorflow as tf\n"
        "print(float(tf.reduce_sum(keras.layers.Dense(2)(tf.ones((1, 3))))) != 0.0)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "True"
    assert not ALARMING.search(result.stderr), result.stderr[-3000:]
    if not quiet.nvidia_driver_present():
        assert not result.stderr.strip(), f"expected a silent start on a machine without a GPU:\n{result.stderr}"
