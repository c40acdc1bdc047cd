#!/usr/bin/env bash
# Builds one Ongi image with BuildKit, reusing the registry cache, and pushes it tagged
# $TAG and latest. Called by cloudbuild.yaml (one step per image, in parallel); also works
# on a workstation with Docker and access to the registry.
#
#   IMAGE_REPO=us-central1-docker.pkg.dev/PROJECT/ongi TAG=abc1234 cloudbuild/build-image.sh embedding
#
# NAME is one of:
#   deps        the dependency layer shared by the functions (functions/Dockerfile, target
#               cook), pushed as ongi-build-cache:deps-latest for the next build's --cache-from
#   embedding category duplicate quality score people style
#               a function image (functions/Dockerfile, FUNCTION=NAME)
#   gpu-job     the GPU worker (gpu-job/Dockerfile); its CUDA dependency layer is pushed as
#               ongi-build-cache:gpu-deps-latest
# The function and gpu-job images need the model folder at .models/ (cloudbuild.yaml's
# fetch-models step).
set -euo pipefail

name=${1:?usage: build-image.sh deps|embedding|category|duplicate|quality|score|people|style|gpu-job}
: "${IMAGE_REPO:?set IMAGE_REPO, e.g. us-central1-docker.pkg.dev/PROJECT/ongi}"
: "${TAG:?set TAG, e.g. the short commit SHA}"
export DOCKER_BUILDKIT=1
cache="$IMAGE_REPO/ongi-build-cache"

# build DOCKERFILE TARGET IMAGE:TAG... -- extra docker build arguments
build() {
  local dockerfile=$1 target=$2
  shift 2
  local tags=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do
    tags+=(--tag "$1")
    shift
  done
  [ "$#" -gt 0 ] && shift
  docker build --file "$dockerfile" --target "$target" \
    --build-arg BUILDKIT_INLINE_CACHE=1 \
    --progress=plain \
    "${tags[@]}" "$@" .
}

push() {
  local ref
  for ref in "$@"; do
    docker push "$ref"
  done
}

case "$name" in
  deps)
    build functions/Dockerfile cook "$cache:deps-latest" -- \
      --cache-from "$cache:deps-latest"
    push "$cache:deps-latest"
    ;;
  embedding | category | duplicate | quality | score | people | style)
    test -d .models || { echo "build-image.sh: no .models/ folder (fetch the model files first)" >&2; exit 1; }
    image="$IMAGE_REPO/$name"
    build functions/Dockerfile runtime "$image:$TAG" "$image:latest" -- \
      --build-arg "FUNCTION=$name" \
      --cache-from "$cache:deps-latest" \
      --cache-from "$image:latest"
    push "$image:$TAG" "$image:latest"
    ;;
  gpu-job)
    test -d .models || { echo "build-image.sh: no .models/ folder (fetch the model files first)" >&2; exit 1; }
    image="$IMAGE_REPO/gpu-job"
    build gpu-job/Dockerfile cook "$cache:gpu-deps-latest" -- \
      --cache-from "$cache:gpu-deps-latest"
    push "$cache:gpu-deps-latest"
    build gpu-job/Dockerfile runtime "$image:$TAG" "$image:latest" -- \
      --cache-from "$cache:gpu-deps-latest" \
      --cache-from "$image:latest"
    push "$image:$TAG" "$image:latest"
    ;;
  *)
    echo "build-image.sh: unknown image '$name'" >&2
    exit 2
    ;;
esac
