#!/usr/bin/env bash
# Builds one Ongi image with BuildKit (docker buildx) and pushes it as :$TAG, with a registry
# cache of EVERY stage. Called by cloudbuild.yaml (one step per image, in parallel, on one
# shared builder); also works on a workstation with Docker and access to the registry.
#
#   cloudbuild/build-image.sh setup                  (once: the shared buildx builder)
#   IMAGE_REPO=us-central1-docker.pkg.dev/PROJECT/ongi TAG=abc1234 cloudbuild/build-image.sh embedding
#
# NAME is one of:
#   embedding category duplicate quality score people style
#               a function image (functions/Dockerfile, FUNCTION=NAME)
#   gpu-job     the GPU worker (gpu-job/Dockerfile)
# The images need the model folder at .models/ (cloudbuild.yaml's fetch-models step); the
# functions' build context leaves out .models/sd15 (functions/Dockerfile.dockerignore).
#
# Caching: a Cloud Build worker starts empty, so the cache lives in the registry as
# ongi-build-cache:<name>, written with mode=max: every stage's layers, the compiled
# dependencies (cargo-chef cook) and the ongi CLI's included, not only the final image's
# (inline cache, which cached the last stage only). The seven function builds run on one
# BuildKit daemon, which builds their common stages once.
#
# Images are pushed by tag only (:$TAG, the commit); nothing is tagged latest. The pushed
# digest is written to .digests/<name> as <image>@sha256:..., which the deploy steps use.
set -euo pipefail

name=${1:?usage: build-image.sh setup|embedding|category|duplicate|quality|score|people|style|gpu-job}
builder=ongi

if [ "$name" = setup ]; then
  # A docker-container builder: the default docker driver cannot export a registry cache.
  docker buildx inspect "$builder" >/dev/null 2>&1 \
    || docker buildx create --name "$builder" --driver docker-container >/dev/null
  docker buildx inspect --bootstrap "$builder"
  exit 0
fi

: "${IMAGE_REPO:?set IMAGE_REPO, e.g. us-central1-docker.pkg.dev/PROJECT/ongi}"
: "${TAG:?set TAG, e.g. the short commit SHA}"
cache="$IMAGE_REPO/ongi-build-cache:$name"
mkdir -p .digests

# build DOCKERFILE IMAGE -- extra docker build arguments
build() {
  local dockerfile=$1 image=$2 metadata digest
  shift 2
  [ "$#" -gt 0 ] && [ "$1" = "--" ] && shift
  metadata=$(mktemp)
  docker buildx build --builder "$builder" --file "$dockerfile" --target runtime \
    --cache-from "type=registry,ref=$cache" \
    --cache-to "type=registry,ref=$cache,mode=max,image-manifest=true,oci-mediatypes=true" \
    --tag "$image:$TAG" --push --metadata-file "$metadata" --progress=plain \
    "$@" .
  digest=$(sed -n 's/.*"containerimage.digest": *"\(sha256:[0-9a-f]\{64\}\)".*/\1/p' "$metadata" | head -1)
  rm -f "$metadata"
  test -n "$digest" || { echo "build-image.sh: no digest for $image:$TAG" >&2; return 1; }
  echo "$image@$digest" >".digests/$name"
  echo "pushed $image:$TAG = $image@$digest"
}

test -d .models || { echo "build-image.sh: no .models/ folder (fetch the model files first)" >&2; exit 1; }
case "$name" in
  embedding | category | duplicate | quality | score | people | style)
    build functions/Dockerfile "$IMAGE_REPO/$name" -- --build-arg "FUNCTION=$name"
    ;;
  gpu-job)
    build gpu-job/Dockerfile "$IMAGE_REPO/gpu-job"
    ;;
  *)
    echo "build-image.sh: unknown image '$name'" >&2
    exit 2
    ;;
esac
