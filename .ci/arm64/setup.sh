#!/usr/bin/env bash
# The emulated ARM64 machine of `make arm64-check`, built once and kept in WORK (outside the repository):
#   qemu-user >= 9 (bookworm's 7.2 segfaults importing onnxruntime; 10 from bookworm-backports works),
#   WORK/root: Debian bookworm arm64 (python3, python3-venv, python3-pip, libstdc++6, libgomp1) by mmdebstrap,
#   WORK/venv: an aarch64 venv whose bin/python3 is a small wrapper running qemu (no binfmt_misc needed, child
#   processes re-enter through it), holding ONLY the project's wheel with its edge extra, resolved by the
#   aarch64 pip itself from the package registries.
# usage: setup.sh WORK REPO X86_PYTHON
set -euo pipefail
WORK=$1; REPO=$2; PY=$3
ROOT=$WORK/root; VENV=$WORK/venv
QEMU_CPU=${FACELIVE_QEMU_CPU:-cortex-a76}  # Raspberry Pi 5's core: NEON + dot product, no SVE
mkdir -p "$WORK"
say() { echo "arm64-check: $*" >&2; }

qemu_ok() { command -v qemu-aarch64 >/dev/null && qemu-aarch64 --version | head -1 | grep -Eq 'version ([9]|[1-9][0-9])\.'; }
if ! qemu_ok || ! command -v mmdebstrap >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    say "needs qemu-user >= 9 and mmdebstrap (Debian: apt-get install -t bookworm-backports qemu-user mmdebstrap)"; exit 1
  fi
  . /etc/os-release
  target=()
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    echo "deb http://deb.debian.org/debian bookworm-backports main" > /etc/apt/sources.list.d/bookworm-backports.list
    target=(-t bookworm-backports)
  fi
  say "installing qemu-user and mmdebstrap with apt-get"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${target[@]}" qemu-user >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null
fi

if [ ! -x "$ROOT/usr/bin/python3.11" ]; then
  say "unpacking Debian bookworm arm64 into $ROOT"
  mmdebstrap --quiet --variant=extract --arch=arm64 \
    --include=python3,python3-venv,python3-pip,libstdc++6,libgomp1 bookworm "$ROOT" 2>/dev/null
fi

if [ ! -f "$VENV/pyvenv.cfg" ]; then
  say "creating the aarch64 venv $VENV"
  qemu-aarch64 -L "$ROOT" "$ROOT/usr/bin/python3" -m venv --without-pip "$VENV"
  rm -f "$VENV/bin/python3"
  cat > "$VENV/bin/python3" <<WRAP
#!/bin/sh
# the aarch64 interpreter under qemu-user (no binfmt_misc here): child processes re-enter through this file
exec qemu-aarch64 -cpu \${FACELIVE_QEMU_CPU:-$QEMU_CPU} -L $ROOT -0 "\$0" $ROOT/usr/bin/python3.11 "\$@"
WRAP
  chmod +x "$VENV/bin/python3"
  "$VENV/bin/python3" -m ensurepip >/dev/null
fi

say "building the project's wheel and installing it with the edge extra (aarch64 pip)"
rm -rf "$WORK/wheels"
"$PY" -m pip wheel -qq --no-deps --no-build-isolation -w "$WORK/wheels" "$REPO"
WHEEL=$(ls "$WORK"/wheels/facelivenet-*.whl)
PIP=("$VENV/bin/python3" -m pip -qq --disable-pip-version-check --cache-dir "$WORK/pip-cache")
"${PIP[@]}" install "$WHEEL[edge]"
"${PIP[@]}" install --force-reinstall --no-deps "$WHEEL"   # this tree's code, same version number
"$VENV/bin/python3" -m pip list --format=json --disable-pip-version-check > "$WORK/pip_list.json"
if "$VENV/bin/python3" -m pip check > "$WORK/pip_check.txt" 2>&1; then echo 0; else echo 1; fi > "$WORK/pip_check.rc"
say "ready: $VENV ($(qemu-aarch64 --version | head -1))"
