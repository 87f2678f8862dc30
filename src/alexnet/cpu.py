"""The CPU a speed figure was measured on, read from /proc/cpuinfo without loading TensorFlow."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ONEDNN_SWITCH = "TF_ENABLE_ONEDNN_OPTS"
ONEDNN_ISA_CAP = "ONEDNN_MAX_CPU_ISA"  # oneDNN's own cap: AVX2 emulates an AVX2-only CPU's kernels
# The caps of the code oneDNN does not run, for a whole emulation: XLA's loops (LRN, the optimizer update) and
# torch's own kernels and torch.compile's generated code.
XLA_ISA_CAP_FLAG = "--xla_cpu_max_isa="
TORCH_ISA_CAP = "ATEN_CPU_CAPABILITY"
MKL_ISA_CAP = "MKL_ENABLE_INSTRUCTIONS"  # MKL's GEMMs: torch's fully connected layers
# TensorFlow's own rule (tsl/util/port.cc, IsMklEnabled): oneDNN on by default only with one of these.
TENSORFLOW_ONEDNN_FLAGS = ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16")
RECORDED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_kind() -> dict:
    """The CPU as a speed figure names it: model, cores, the flags that pick kernels, oneDNN's ISA cap."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cores": len(os.sched_getaffinity(0)),
        "flags": {flag: flag in flags for flag in RECORDED_FLAGS},
        "onednn_isa_cap": os.environ.get(ONEDNN_ISA_CAP) or None,
        "xla_isa_cap": xla_isa_cap(),
        "torch_isa_cap": os.environ.get(TORCH_ISA_CAP) or None,
    }


def xla_isa_cap(environ=os.environ) -> str | None:
    """XLA's --xla_cpu_max_isa from XLA_FLAGS (the ISA its compiled loops may use), or None."""
    caps = [flag.removeprefix(XLA_ISA_CAP_FLAG) for flag in environ.get("XLA_FLAGS", "").split()
            if flag.startswith(XLA_ISA_CAP_FLAG)]  # fmt: skip
    return caps[-1] if caps else None


def torch_code_caps(environ=os.environ, compiled: bool = False) -> dict:
    """The caps that carry an AVX2 emulation (ONEDNN_MAX_CPU_ISA=AVX2...) to torch's code outside oneDNN, as
    XLA_FLAGS carries it to XLA's: MKL's GEMMs (MKL_ENABLE_INSTRUCTIONS), the vector width of torch.compile's
    generated loops (inductor's cpp.simdlen, 256 bits) and, for an eager model, ATen's kernels
    (ATEN_CPU_CAPABILITY). A compiled model keeps ATen's AVX-512 kernels: under ATEN_CPU_CAPABILITY=avx2 the
    compiled paper net's backward fails (torch 2.13, scatter_reduce index out of bounds). {} without the
    emulation, or with a cap other than AVX2."""
    if not (environ.get(ONEDNN_ISA_CAP) or "").upper().startswith("AVX2"):
        return {}
    if compiled:
        return {MKL_ISA_CAP: "AVX2", "inductor_simdlen": 256}
    return {MKL_ISA_CAP: "AVX2", TORCH_ISA_CAP: "avx2"}


def tensorflow_default_onednn(flags: set[str] | None = None) -> bool:
    """Whether TensorFlow turns oneDNN on by itself on this CPU (TF_ENABLE_ONEDNN_OPTS unset)."""
    flags = cpu_flags() if flags is None else flags
    return any(flag in flags for flag in TENSORFLOW_ONEDNN_FLAGS)


def environment_onednn(environ=os.environ) -> bool | None:
    """TF_ENABLE_ONEDNN_OPTS as TensorFlow reads it (1/0/true/false), or None when unset or unreadable."""
    value = environ.get(ONEDNN_SWITCH, "").strip().lower()
    return {"1": True, "true": True, "0": False, "false": False}.get(value)


def onednn_in_effect(environ=os.environ) -> dict:
    """For a benchmark's JSON: whether TensorFlow runs oneDNN in this process's environment, and why."""
    from_environment = environment_onednn(environ)
    if from_environment is None:
        enabled, source = tensorflow_default_onednn(), "tensorflow default"
    else:
        enabled, source = from_environment, f"{ONEDNN_SWITCH}={environ[ONEDNN_SWITCH]}"
    return {
        "onednn": enabled,
        "onednn_from": source,
        "onednn_isa_cap": environ.get(ONEDNN_ISA_CAP) or None,
    }
