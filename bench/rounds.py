"""What the benchmarks share: interleaved rounds, the load beside each, a round repeated on a busy machine.

The 1-minute load average counts this benchmark's own threads too (about --threads while a step runs), so
the test for "the machine was busy" is the CPU the *other* processes used during the round, from
/proc/stat less this process's and its children's CPU time: in cores, like a load average.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Callable

MAX_OTHER_LOAD = 1.5
MAX_REPEATS = 3


def _busy_seconds() -> float | None:
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(value) for value in fields[:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_round(measure: Callable[[], list[dict]], label: str, max_load: float = MAX_OTHER_LOAD,
              max_repeats: int = MAX_REPEATS) -> dict:  # fmt: skip
    """Run `measure()` (one interleaved round); repeat it, at most `max_repeats` times more, while other
    processes kept more than `max_load` cores busy. Returns the last attempt with its loads."""
    attempts = []
    for attempt in range(max_repeats + 1):
        load_before = os.getloadavg()[0]
        busy, own, started = _busy_seconds(), _own_seconds(), time.perf_counter()
        rows = measure()
        elapsed = time.perf_counter() - started
        other = None
        if busy is not None:
            other = max(0.0, (_busy_seconds() - busy) - (_own_seconds() - own)) / elapsed
        loads = {"load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2),
                 "other_load": None if other is None else round(other, 2)}  # fmt: skip
        attempts.append(loads)
        busy_machine = (other if other is not None else loads["load_1min_after"]) > max_load
        again = " - busy, repeating the round" if busy_machine and attempt < max_repeats else ""
        print(f"{label}: other processes' load {loads['other_load']}, 1-min load {loads['load_1min_after']}{again}",
              flush=True)  # fmt: skip
        if not busy_machine:
            break
    return {"rows": rows, **loads, "busy": busy_machine, "attempts": attempts}


def time_steps(step: Callable[[], object], warmup: int, steps: int) -> list[float]:
    """Seconds of each of `steps` calls of `step`, after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def median_rate(rates: list[float]) -> float:
    return statistics.median(rates) if rates else 0.0


def without_verdicts(report):
    """A --quick run judges nothing: every goal_met becomes None (its JSON also says "quick": true)."""
    if isinstance(report, dict):
        return {key: None if key == "goal_met" else without_verdicts(value) for key, value in report.items()}
    if isinstance(report, list):
        return [without_verdicts(value) for value in report]
    return report


def machine() -> dict:
    """What a speed figure was measured on: the CPU kind (flags that pick kernels, oneDNN's ISA cap) and
    whether TensorFlow runs oneDNN in this environment. TF_ENABLE_ONEDNN_OPTS and ONEDNN_MAX_CPU_ISA reach
    every worker process; ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU is an emulation of an AVX2-only CPU's
    oneDNN kernels, not such a CPU (its caches, clocks and memory are the AVX-512 machine's). The emulation
    caps XLA's loops too (XLA_FLAGS=--xla_cpu_max_isa=AVX2, recorded), and train_throughput caps torch's code
    outside oneDNN (alexnet.cpu.torch_code_caps, recorded per torch row) except a compiled model's ATen
    kernels."""
    import platform

    from alexnet.cpu import cpu_kind, onednn_in_effect

    return {"cpus": os.cpu_count(), "platform": platform.platform(), **cpu_kind(), **onednn_in_effect()}


def machine_line(info: dict) -> str:
    flags = ", ".join(flag for flag, present in info["flags"].items() if present) or "none of the recorded flags"
    caps = {"oneDNN": info["onednn_isa_cap"], "XLA": info.get("xla_isa_cap"), "torch": info.get("torch_isa_cap")}
    named = ", ".join(f"{name} {cap}" for name, cap in caps.items() if cap)
    cap = f", ISA cap {named} (an emulation)" if named else ""
    onednn = "on" if info["onednn"] else "off"
    return f"{info['cpu']} x{info['cores']} [{flags}]; oneDNN {onednn} ({info['onednn_from']}{cap})"
