#!/usr/bin/env bash
# Builds DPDK's own l3fwd example (Debian package dpdk-doc, DPDK 22.11) as
# the C reference for scripts/bench.sh, with two changes so that it runs on
# net_pcap (scripts/l3fwd-pcap.patch, both in main.c):
#
#  1. main.c:123 `port_conf.rxmode.offloads = RTE_ETH_RX_OFFLOAD_CHECKSUM`
#     becomes 0. net_pcap offers no RX offload, and rte_eth_dev_configure
#     refuses a port asked for one the driver does not have, so l3fwd would
#     exit at "Cannot configure device". l3fwd never reads the checksum
#     flags: its RFC 1812 checks (l3fwd.h:162 is_valid_ipv4_pkt, "2. The
#     IP checksum must be correct. this is checked in H/W") look at length
#     and version only, so its per-packet work does not change (and, unlike
#     pmdlb, it never verifies the header checksum in software).
#  2. main.c:749-754 `NB_MBUF(nports)`, the pool size, is at least 8192
#     mbufs; the floor comes from the environment (L3FWD_NB_MBUF) instead.
#     net_pcap with infinite_rx=1 copies the whole pcap into mbufs of the
#     RX queue's pool at queue setup and keeps them, so a pcap of 65,536
#     frames needs a pool larger than that on top of the rings.
#
# The sources are copied to target/l3fwd/src (never built in place), built
# with the example's own Makefile (pkg-config libdpdk, -O3), and the binary
# is target/l3fwd/l3fwd. Prints its path. Rebuilds only when the patch or
# this script is newer than the binary.
set -euo pipefail

cd "$(dirname "$0")/.."
EX=${DPDK_EXAMPLES:-/usr/share/dpdk/examples}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
OUT=$TARGET/l3fwd
BIN=$OUT/l3fwd
PATCH=$PWD/scripts/l3fwd-pcap.patch

if [[ ! -f $EX/l3fwd/main.c ]]; then
  echo "build-l3fwd: $EX/l3fwd not found: install dpdk-doc (scripts/install-deps.sh)" >&2
  exit 1
fi
if [[ -x $BIN && $BIN -nt $PATCH && $BIN -nt $0 ]]; then
  echo "$BIN"
  exit 0
fi

rm -rf "$OUT/src"
mkdir -p "$OUT/src"
# l3fwd's Makefile adds -I../common
cp -r "$EX/l3fwd" "$EX/common" "$OUT/src/"
patch -s -d "$OUT/src/l3fwd" -p1 <"$PATCH"
make -s -C "$OUT/src/l3fwd" >&2
cp "$OUT/src/l3fwd/build/l3fwd-shared" "$BIN"
echo "$BIN"
