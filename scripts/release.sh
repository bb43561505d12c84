#!/usr/bin/env bash
# Builds the binary Strata's nodes run: a static `strata` for linux/amd64 and
# linux/arm64 (no cgo, no libc), into dist/ with a SHA256SUMS file whose
# lines are the binary_sha256 the Terraform modules ask for.
#
#   scripts/release.sh            # dist/strata-linux-amd64, dist/strata-linux-arm64, dist/SHA256SUMS
#   DIST=/tmp/out scripts/release.sh
set -euo pipefail
cd "$(dirname "$0")/.."

dist="${DIST:-dist}"
mkdir -p "$dist"
for arch in amd64 arm64; do
  out="$dist/strata-linux-$arch"
  echo "building $out" >&2
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath -ldflags "-s -w" -o "$out" ./cmd/strata
done
(cd "$dist" && sha256sum strata-linux-amd64 strata-linux-arm64 >SHA256SUMS)
cat "$dist/SHA256SUMS"
