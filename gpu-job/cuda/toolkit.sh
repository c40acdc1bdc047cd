#!/usr/bin/env bash
# Assembles the CUDA toolkit that `cargo build -p gpu-job --features cuda` needs from NVIDIA's
# PyPI wheels (gpu-job/cuda/requirements.txt, every file pinned by its SHA-256), so that the
# image build (gpu-job/Dockerfile) and the check run before each release (.ci/cuda-build)
# compile with the very same nvcc, headers and libraries.
#
#   gpu-job/cuda/toolkit.sh fetch DIR     download the wheels and unpack them into DIR
#                                         (needs python3 with pip)
#   gpu-job/cuda/toolkit.sh stub DIR      the link-time pieces: unversioned .so links, lib64,
#                                         and lib/stubs/libcuda.so (needs gcc)
#   gpu-job/cuda/toolkit.sh all DIR       both
#   gpu-job/cuda/toolkit.sh runtime DIR OUT
#                                         copy the shared libraries the worker loads at run
#                                         time (cudart, cuBLAS, cuBLASLt, cuRAND, NVRTC) to OUT
#
# DIR then looks like a CUDA installation: DIR/bin/nvcc, DIR/nvvm/bin/cicc, DIR/include,
# DIR/lib (and lib64, a link to it). Use it with PATH=DIR/bin:$PATH CUDA_ROOT=DIR
# CUDA_HOME=DIR.
#
# libcuda.so is the driver's, never part of a toolkit: NVIDIA's own toolkits link against a
# stub (lib/stubs/libcuda.so) and the driver's libcuda.so.1 is loaded at run time. The wheels
# have no stub, so `stub` writes one: every cu* function that include/cuda.h declares (with
# __CUDA_API_VERSION_INTERNAL, so the older _v2 names too), compiled into a library whose
# soname is libcuda.so.1. It only satisfies the linker; the binary records libcuda.so.1 and
# the VM's driver provides the real one (terraform/templates/gpu-startup.sh.tftpl mounts it).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
requirements="$here/requirements.txt"

usage() {
  echo "usage: toolkit.sh fetch|stub|all DIR | runtime DIR OUT" >&2
  exit 2
}

fetch() {
  local dir=$1 wheels
  wheels=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-cache-dir --no-deps \
    --require-hashes --only-binary=:all: --python-version 3.11 \
    --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux_2_12_x86_64 -r "$requirements" -d "$wheels"
  mkdir -p "$dir"
  # Every wheel unpacks under nvidia/cu13/; the tree below it is a CUDA installation.
  python3 - "$wheels" "$dir" <<'PY'
import pathlib, shutil, sys, zipfile
wheels, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
prefix = "nvidia/cu13/"
for wheel in sorted(wheels.glob("*.whl")):
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(prefix) or info.is_dir():
                continue
            rel = info.filename[len(prefix):]
            if rel.endswith("__init__.py") or rel.startswith(".metadata/"):
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
            mode = (info.external_attr >> 16) & 0o777
            if rel.startswith(("bin/", "nvvm/bin/")):
                mode |= 0o755
            target.chmod(mode or 0o644)
PY
  rm -rf "$wheels"
  test -x "$dir/bin/nvcc" && test -x "$dir/nvvm/bin/cicc" && test -f "$dir/include/cuda.h" \
    || { echo "toolkit.sh: the wheels did not give nvcc, cicc and cuda.h" >&2; return 1; }
}

stub() {
  local dir=$1 lib
  lib="$dir/lib"
  ln -sfn lib "$dir/lib64"
  for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libnvvm.so.4; do
    test -f "$lib/$so" || { echo "toolkit.sh: $lib/$so is missing (run fetch first)" >&2; return 1; }
    ln -sfn "$so" "$lib/${so%%.so.*}.so"
  done
  mkdir -p "$lib/stubs"
  gcc -E -P -D__CUDA_API_VERSION_INTERNAL -x c -I"$dir/include" "$dir/include/cuda.h" \
    | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' (' | sort -u \
    | awk '{ printf "int %s(void) { return 999; }\n", $1 }' >"$lib/stubs/libcuda-stub.c"
  # 999 is CUDA_ERROR_UNKNOWN, should the stub ever be loaded instead of the driver's library.
  test "$(wc -l <"$lib/stubs/libcuda-stub.c")" -gt 300 \
    || { echo "toolkit.sh: too few functions found in cuda.h for the libcuda stub" >&2; return 1; }
  gcc -shared -fPIC -fno-builtin -Wl,-soname,libcuda.so.1 -o "$lib/stubs/libcuda.so" "$lib/stubs/libcuda-stub.c"
}

runtime() {
  local dir=$1 out=$2
  mkdir -p "$out"
  for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13 libnvrtc-builtins.so.13.0; do
    install -m 0644 "$dir/lib/$so" "$out/$so"
  done
}

[ "$#" -ge 2 ] || usage
case "$1" in
  fetch) fetch "$2" ;;
  stub) stub "$2" ;;
  all) fetch "$2" && stub "$2" ;;
  runtime) [ "$#" -eq 3 ] || usage; runtime "$2" "$3" ;;
  *) usage ;;
esac
