#!/usr/bin/env bash
# Makes `ipvsadm` run `pmdlb admin`: a symlink DIR/ipvsadm -> the pmdlb
# binary (pmdlb behaves as `pmdlb admin` when invoked as ipvsadm).
#
# Idempotent: an existing link to the same binary is left as it is, a link
# to another pmdlb binary is repointed. It refuses to replace anything else
# at DIR/ipvsadm (a real ipvsadm binary, a script, a link to something that
# is not pmdlb) and exits 1.
#
# Usage: scripts/install-ipvsadm-link.sh [DIR] [PMDLB_BINARY]
#   DIR           default /usr/local/sbin
#   PMDLB_BINARY  default: target/release/pmdlb of this checkout, else
#                 target/debug/pmdlb, else `pmdlb` on PATH
# With a link in place, `PMDLB_CONFIG=/etc/pmdlb.toml ipvsadm -Ln` talks
# to the instance that config describes (default file prefix "pmdlb").
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n 2,15p "$0"; exit 0 ;;
esac
DIR=${1:-/usr/local/sbin}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${2:-}
if [[ -z $BIN ]]; then
  for c in "$ROOT/target/release/pmdlb" "$ROOT/target/debug/pmdlb"; do
    if [[ -x $c ]]; then BIN=$c; break; fi
  done
fi
if [[ -z $BIN ]]; then BIN=$(command -v pmdlb || true); fi
if [[ -z $BIN || ! -x $BIN ]]; then
  echo "install-ipvsadm-link.sh: no pmdlb binary found; build it (cargo build --release) or give its path" >&2
  exit 1
fi
BIN=$(readlink -f "$BIN")
if [[ $(basename "$BIN") != pmdlb ]]; then
  echo "install-ipvsadm-link.sh: $BIN is not a pmdlb binary" >&2
  exit 1
fi
if [[ ! -d $DIR ]]; then
  echo "install-ipvsadm-link.sh: $DIR is not a directory" >&2
  exit 1
fi
LINK=$DIR/ipvsadm

if [[ -L $LINK ]]; then
  target=$(readlink -f "$LINK" || true)
  if [[ $target == "$BIN" ]]; then
    echo "$LINK -> $BIN (already in place)"
    exit 0
  fi
  if [[ $(basename "$target") != pmdlb ]]; then
    echo "install-ipvsadm-link.sh: $LINK links to $target, which is not pmdlb; not replacing it" >&2
    exit 1
  fi
elif [[ -e $LINK ]]; then
  echo "install-ipvsadm-link.sh: $LINK exists and is not a link to pmdlb (a real ipvsadm?); not replacing it" >&2
  exit 1
fi
ln -sfn "$BIN" "$LINK"
echo "$LINK -> $BIN"
