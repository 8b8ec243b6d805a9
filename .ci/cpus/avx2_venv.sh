#!/usr/bin/env bash
# An emulated x86-64 AVX2 CPU (no AVX-512, no VNNI) for `make cpu-check`: WORK/avx2-venv, a view of the
# project's venv whose bin/python runs this machine's Python under `qemu-x86_64 -cpu Haswell-v4`. CPUID then
# says Haswell, so numpy, onnxruntime, LiteRT and torch take their AVX2 kernels; child processes started with
# sys.executable re-enter the emulator through the wrapper (there is no binfmt_misc here). Outputs only:
# emulated timings are not device timings.
# usage: avx2_venv.sh WORK VENV
set -euo pipefail
WORK=$1; VENV=$(cd "$2" && pwd)
E=$WORK/avx2-venv
command -v qemu-x86_64 >/dev/null || { echo "cpu-check: needs qemu-x86_64 (apt-get install qemu-user)" >&2; exit 1; }
REAL=$(readlink -f "$VENV/bin/python")
rm -rf "$E"; mkdir -p "$E/bin"
cp "$VENV/pyvenv.cfg" "$E/"
ln -s "$VENV/lib" "$E/lib"
cat > "$E/bin/python" <<WRAP
#!/bin/sh
exec qemu-x86_64 -cpu \${FACELIVE_QEMU_X86_CPU:-Haswell-v4} -0 "\$0" $REAL "\$@"
WRAP
chmod +x "$E/bin/python"
ln -s python "$E/bin/python3"
family=$("$E/bin/python" -c 'from facelivenet.edge_runtime.cpu_features import kernel_family; print(kernel_family())')
echo "cpu-check: $E/bin/python runs as: $family" >&2
