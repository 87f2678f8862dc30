"""bench/gpu_check.py on CPU with tiny settings, in a process where TensorFlow cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys

from pipeline_copy import REPO, environment

# Any `import tensorflow` fails, as on a machine where it is not installed.
_WITHOUT_TENSORFLOW = """
import runpy, sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, NoTensorFlow())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
assert "tensorflow" not in sys.modules
"""


def test_gpu_check_trains_without_tensorflow_and_reports(tmp_path):
    out = tmp_path / "gpu_check.json"
    tiny = ["--size", "64", "--batch", "8", "--steps", "6", "--width", "0.25", "--fc-units", "64", "--classes", "10"]
    command = [sys.executable, "-c", _WITHOUT_TENSORFLOW, str(REPO / "bench/gpu_check.py"), *tiny, "--json", str(out)]
    result = subprocess.run(command, cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    report = json.loads(out.read_text())
    assert report["platform"] == "cpu" and report["precision"] == "mixed_bfloat16"
    assert report["input"] == 64 and report["batch"] == 8 and report["steps"] == 6
    assert report["images_per_second"] > 0 and report["peak_memory_bytes"] > 0
    assert report["loss_fell"], report
    assert "img/s (median of 6 steps" in result.stdout and "loss" in result.stdout
