"""The machine numbers were measured on: CPU model and the flags that pick kernels, cores, load, torch.

``environment()`` is what a report and a sweep row record; ``machine_line()`` heads a benchmark table.
It only reads /proc/cpuinfo and torch's settings.
"""

from __future__ import annotations

import os
import platform

# CPU flags that decide which kernels run (fp32 vector width, int8 dot products, AMX tiles).
KERNEL_FLAGS = (
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
)


def _cpuinfo(path: str = "/proc/cpuinfo") -> tuple[str, list[str]]:
    """(CPU model name, the KERNEL_FLAGS it has) from /proc/cpuinfo; the platform's word elsewhere."""
    model, flags = "", set[str]()
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model or platform.processor() or platform.machine() or "unknown CPU", [f for f in KERNEL_FLAGS if f in flags]


def environment(cpuinfo: str = "/proc/cpuinfo") -> dict[str, str]:
    """Where the numbers were measured: CPU model and kernel flags, cores, load, torch and its kernels."""
    import torch

    model, flags = _cpuinfo(cpuinfo)
    capability = getattr(torch.backends.cpu, "get_cpu_capability", lambda: "n/a")()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "CPU": model,
        "CPU flags (kernels)": " ".join(flags) or "none of " + ", ".join(KERNEL_FLAGS),
        "cores": str(os.cpu_count()),
        "load average (1/5/15 min)": " / ".join(f"{v:.2f}" for v in load),
        "torch": torch.__version__,
        "torch threads": str(torch.get_num_threads()),
        "torch CPU capability": str(capability),
        "int8 engine": f"{torch.backends.quantized.engine} (supported: "
        f"{', '.join(e for e in torch.backends.quantized.supported_engines if e != 'none')})",
        "oneDNN (mkldnn)": "available" if torch.backends.mkldnn.is_available() else "not available",
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "(unset)"),
        "Python": platform.python_version(),
        "OS": f"{platform.system()} {platform.release()}",
    }


def machine_line() -> str:
    """One line for the head of a benchmark table: CPU model, cores, kernel flags, torch, threads, load."""
    env = environment()
    return (
        f"CPU: {env['CPU']} · {env['cores']} cores · flags {env['CPU flags (kernels)']} · torch {env['torch']}, "
        f"{env['torch threads']} thread(s) · load average {env['load average (1/5/15 min)']}"
    )
