#!/bin/sh
# scripts/jwks.sh [--kid KID] KEY.pem [MORE.pem ...]
# Print the JWK Set to host at your jku URL (the same document as
# epic_fdw_public_jwks() in SQL), from PEM keys; only public halves are printed.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
${CC:-gcc} -std=gnu11 -O2 -Wall -Wextra -Werror -I"$here/src" -o "$tmp/epic_fdw_jwks" \
	"$here/tools/epic_fdw_jwks.c" "$here/src/auth.c" -lssl -lcrypto -ljansson
"$tmp/epic_fdw_jwks" "$@"
