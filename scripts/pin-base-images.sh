#!/usr/bin/env bash
# Pins every FROM line of the Dockerfile to the current digest of its tag.
#
#   FROM node:24-bookworm-slim@sha256:<old> AS build   ->   FROM node:24-bookworm-slim@sha256:<new> AS build
#
# The digest is that of what the tag points at now: for multi-arch images the image index
# (manifest list), so one pin serves amd64 and arm64. The tag stays in the line, for people
# and for Renovate, whose dockerfile manager keeps tag and digest up to date the same way
# (pinDigests); this script is the manual path, on a machine with registry access.
#
# Usage: scripts/pin-base-images.sh [--check] [DOCKERFILE]     (default: ./Dockerfile)
#   --check   change nothing; exit 1 if a pin is missing or out of date (for a scheduled CI job)
# Resolves with `crane digest` (go-containerregistry) when crane is on PATH, otherwise with
# `docker buildx imagetools inspect`; PIN_TOOL=crane|docker chooses. After a change, build
# the image and run `bash scripts/image-smoke.sh` (it checks the pins' form and Node major).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
check=0
file=""
for arg in "$@"; do
  case "$arg" in
    --check) check=1 ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "pin-base-images: unknown option $arg" >&2; exit 2 ;;
    *) [[ -z "$file" ]] || { echo "pin-base-images: one Dockerfile only" >&2; exit 2; }; file="$arg" ;;
  esac
done
file="${file:-$repo/Dockerfile}"
[[ -f "$file" ]] || { echo "pin-base-images: $file not found" >&2; exit 2; }

tool="${PIN_TOOL:-}"
if [[ -z "$tool" ]]; then
  if command -v crane >/dev/null 2>&1; then tool=crane
  elif command -v docker >/dev/null 2>&1; then tool=docker
  else echo "pin-base-images: needs crane or docker (buildx) on PATH, and registry access" >&2; exit 2
  fi
fi

# Prints the digest (sha256:<64 hex>) the reference image:tag points at now.
resolve() {
  local ref="$1" out
  case "$tool" in
    crane) out="$(crane digest "$ref")" ;;
    docker) out="$(docker buildx imagetools inspect "$ref" | awk '/^Digest:/ { print $2; exit }')" ;;
    *) echo "pin-base-images: PIN_TOOL must be crane or docker, not $tool" >&2; return 2 ;;
  esac
  if [[ ! "$out" =~ ^sha256:[0-9a-f]{64}$ ]]; then
    echo "pin-base-images: $tool gave no digest for $ref (got: ${out:-nothing})" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

declare -A digests=()
declare -A stages=()
declare -A reported=()
tmp="$(mktemp "${file}.pin.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
changed=0
from_re='^([Ff][Rr][Oo][Mm][[:space:]]+)(--platform=[^[:space:]]+[[:space:]]+)?([^[:space:]]+)(.*)$'
as_re='[[:space:]][Aa][Ss][[:space:]]+([^[:space:]]+)'
while IFS= read -r line || [[ -n "$line" ]]; do
  if [[ "$line" =~ $from_re ]]; then
    kw="${BASH_REMATCH[1]}" platform="${BASH_REMATCH[2]}" ref="${BASH_REMATCH[3]}" rest="${BASH_REMATCH[4]}"
    alias=""; [[ "$rest" =~ $as_re ]] && alias="${BASH_REMATCH[1]}"
    name="${ref%%@*}"
    if [[ "$ref" == scratch || -n "${stages[$ref]:-}" ]]; then
      # scratch, or an earlier stage of this file: nothing to pin
      [[ -n "$alias" ]] && stages[$alias]=1
      printf '%s\n' "$line" >>"$tmp"; continue
    fi
    [[ -n "$alias" ]] && stages[$alias]=1
    if [[ "$ref" == *'$'* ]]; then
      echo "pin-base-images: FROM $ref: a build-arg; write the image literally so it can be pinned" >&2; exit 1
    fi
    last="${name##*/}"
    if [[ "$last" != *:* ]]; then
      echo "pin-base-images: FROM $ref: no tag; write image:tag (the tag says what the digest is of)" >&2; exit 1
    fi
    old=""; [[ "$ref" == *@* ]] && old="${ref#*@}"
    if [[ -z "${digests[$name]:-}" ]]; then digests[$name]="$(resolve "$name")"; fi
    new="${digests[$name]}"
    if [[ "$old" != "$new" ]]; then
      changed=1
      [[ -n "${reported[$name $old]:-}" ]] || echo "pin-base-images: $name ${old:-(unpinned)} -> $new" >&2
      reported["$name $old"]=1
    fi
    printf '%s\n' "${kw}${platform}${name}@${new}${rest}" >>"$tmp"
  else
    printf '%s\n' "$line" >>"$tmp"
  fi
done <"$file"

if (( check )); then
  if (( changed )); then echo "pin-base-images: $file is not pinned to the current digests" >&2; exit 1; fi
  echo "pin-base-images: $file: every FROM is pinned to the current digest" >&2
  exit 0
fi
if (( changed )); then
  chmod --reference="$file" "$tmp" 2>/dev/null || true
  mv "$tmp" "$file"
  trap - EXIT
  echo "pin-base-images: updated $file; build it and run bash scripts/image-smoke.sh" >&2
else
  echo "pin-base-images: $file: already at the current digests" >&2
fi
