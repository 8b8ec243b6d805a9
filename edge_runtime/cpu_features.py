"""Which CPU this is, as the model runtimes see it: the instruction-set family that picks their kernels.

An int8 file can be right on one CPU and wrong on another: onnxruntime's uint8 x int8 kernels sum in
saturating int16 on x86 without VNNI and in int32 with it; ARM cores with and without dot-product
instructions take different paths too (ARCHITECTURE.md, "CPU portability"). The runtime keys its
per-device file ranking by :func:`cpu_key`, and the CPU check of the export names each family it ran on
with :func:`kernel_family`.

The features come from numpy's dispatch table, which asks the CPU itself (CPUID on x86, the kernel's
hardware capabilities on ARM) and so is right under user-mode emulation too, where ``/proc/cpuinfo``
describes the host; ``/proc/cpuinfo`` is the fallback.
"""

from __future__ import annotations

import hashlib
import json
import platform
from functools import lru_cache

# numpy's names; the ARM ones are also the Linux ``Features`` names upper-cased.
_X86_VNNI = ("AVX512VNNI", "AVX_VNNI", "AVXVNNI")
_FAMILY_FEATURES = ("AVX2", "AVX512F", *_X86_VNNI, "AVX512BF16", "ASIMD", "ASIMDHP", "ASIMDDP", "I8MM", "SVE")


def _numpy_features() -> frozenset[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as table  # numpy >= 2
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as table  # numpy 1.x
        except ImportError:
            return frozenset()
    return frozenset(k for k, on in table.items() if on)


def cpuinfo_field(*keys: str) -> str | None:
    """The value of the first line of Linux's ``/proc/cpuinfo`` whose name starts with one of ``keys``
    (case-insensitive); None where there is no such line or no such file."""
    try:
        text = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return None
    wanted = tuple(k.lower() for k in keys)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower().startswith(wanted):
            return value.strip()
    return None


def _cpuinfo_features() -> frozenset[str]:
    flags = cpuinfo_field("flags", "features") or ""
    return frozenset(f.upper().replace("AVX512_VNNI", "AVX512VNNI") for f in flags.split())


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; under emulation the host's), else the platform's word for it."""
    return cpuinfo_field("model name", "hardware", "cpu model") or platform.processor() or platform.machine() \
        or "unknown"


@lru_cache(maxsize=1)
def cpu_features() -> frozenset[str]:
    """The SIMD features this CPU offers, upper-case (``AVX2``, ``AVX512VNNI``, ``ASIMDDP``, ...)."""
    return _numpy_features() or _cpuinfo_features()


def machine() -> str:
    """``x86_64`` or ``arm64`` (``aarch64`` and ``AMD64`` normalised), else what the platform says."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "aarch64": "arm64"}.get(m, m)


def kernel_family(features: frozenset[str] | None = None, arch: str | None = None) -> str:
    """The family whose int8 kernels this CPU runs, e.g. ``x86-64 AVX-512 VNNI``, ``x86-64 AVX2 (no VNNI)``,
    ``arm64 dot product``, ``arm64 NEON (no dot product)``."""
    f = cpu_features() if features is None else features
    arch = machine() if arch is None else arch
    if arch == "x86_64":
        vnni = any(v in f for v in _X86_VNNI)
        if "AVX512F" in f:
            return "x86-64 AVX-512 VNNI" if vnni else "x86-64 AVX-512 (no VNNI)"
        if "AVX2" in f:
            return "x86-64 AVX2 + AVX-VNNI" if vnni else "x86-64 AVX2 (no VNNI)"
        return "x86-64 SSE (no AVX2)"
    if arch == "arm64":
        return "arm64 dot product" if "ASIMDDP" in f else "arm64 NEON (no dot product)"
    return arch


def cpu_identity() -> dict[str, object]:
    """What a per-device measurement depends on: the architecture, the kernel family, the features that
    pick kernels, and the model name the OS reports (under emulation: the host's)."""
    f = cpu_features()
    return {"machine": machine(), "family": kernel_family(f), "model": cpu_model(),
            "features": sorted(x for x in _FAMILY_FEATURES if x in f)}


def cpu_key() -> str:
    """A short stable key of :func:`cpu_identity` (16 hex digits) for per-CPU caches."""
    blob = json.dumps(cpu_identity(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
