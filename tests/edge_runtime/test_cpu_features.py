"""The CPU family the runtimes' kernels depend on, read from the CPU itself."""

from __future__ import annotations

import re

import pytest

from facelivenet.edge_runtime.cpu_features import cpu_features, cpu_identity, cpu_key, kernel_family


@pytest.mark.parametrize("features, arch, family", [
    ({"AVX2", "AVX512F", "AVX512VNNI"}, "x86_64", "x86-64 AVX-512 VNNI"),
    ({"AVX2", "AVX512F"}, "x86_64", "x86-64 AVX-512 (no VNNI)"),
    ({"AVX2", "FMA3"}, "x86_64", "x86-64 AVX2 (no VNNI)"),
    ({"AVX2", "AVX_VNNI"}, "x86_64", "x86-64 AVX2 + AVX-VNNI"),
    ({"SSE42"}, "x86_64", "x86-64 SSE (no AVX2)"),
    ({"ASIMD", "ASIMDHP", "ASIMDDP"}, "arm64", "arm64 dot product"),
    ({"ASIMD"}, "arm64", "arm64 NEON (no dot product)"),
])
def test_the_kernel_family_follows_the_features(features, arch, family):
    assert kernel_family(frozenset(features), arch) == family


def test_this_cpu_has_an_identity_and_a_stable_key():
    ident = cpu_identity()
    assert ident["family"] == kernel_family() and set(ident["features"]) <= cpu_features()
    assert re.fullmatch(r"[0-9a-f]{16}", cpu_key()) and cpu_key() == cpu_key()
