#!/usr/bin/env bash
# Packet-generator workflow over net_memif: dpdk-testpmd in txonly mode
# (--txonly-multi-flow: the source address varies per packet) generates
# 64-byte UDP frames to a VIP; pmdlb receives them over a memif, forwards to
# net_null (the sink); the script reports offered vs delivered pps and loss.
#
#   testpmd txonly (lcore 1) --memif--> pmdlb worker (lcore 0) --> net_null
#
# On a 2-core machine the generator and pmdlb each get one core and share
# the main lcores: this shows the workflow (the same pmdlb config a real
# generator such as pktgen-dpdk or TRex would drive through NICs), not a
# throughput claim — the generator's own cost limits the offered rate.
#
# Usage: scripts/bench-memif.sh [--secs S] [--service nonpersistent|fwmark]
#                               [--no-build]
set -euo pipefail

cd "$(dirname "$0")/.."
SECS=8
SERVICE=fwmark
BUILD=1
while (($#)); do
  case "$1" in
    --secs) SECS=$2; shift ;;
    --service) SERVICE=$2; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) echo "bench-memif.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if ((BUILD)); then cargo build --release --bin pmdlb >&2; fi
PMDLB=$CARGO_TARGET_DIR/release/pmdlb
TESTPMD=$(command -v dpdk-testpmd)

case $SERVICE in
  nonpersistent) DPORT=53 ;;
  fwmark) DPORT=443 ;;
  *) echo "bench-memif.sh: --service nonpersistent|fwmark" >&2; exit 2 ;;
esac

WORK=$(mktemp -d /tmp/pmdlb-memif.XXXXXX)
PREFIX=pmdlb-memif-$$
SOCK=/run/$PREFIX.sock
LB_MAC=02:00:00:00:00:aa
VIP=10.0.0.100
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -INT "$p" 2>/dev/null || true; done
  # pmdlb drains and cleans up on SIGINT; give it time before forcing.
  for _ in $(seq 1 100); do
    alive=0
    for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -f /dev/hugepages/"$PREFIX"* "$SOCK" /run/pmdlb/"$PREFIX"*.sock 2>/dev/null || true
  rm -rf /var/run/dpdk/"$PREFIX"* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

servers() {
  for i in 1 2 3 4; do
    printf '[[service.server]]\naddr = "10.0.1.1%d"\nmac = "02:00:00:00:01:1%d"\n' "$i" "$i"
  done
}
cat >"$WORK/pmdlb.toml" <<EOF
[eal]
lcores = "0-1"
main_lcore = 1
hugepages = true
file_prefix = "$PREFIX-lb"
vdevs = ["net_memif0,role=server,socket=$SOCK,id=0,mac=$LB_MAC", "net_null0,no-rx=1"]

[ports]
rx = "net_memif0"
tx = "net_null0"

[workers]
count = 1
stats_interval_s = 1

[neighbours]
gratuitous_arp = false

[[vip]]
addr = "$VIP"

[[mark]]
dst = "$VIP"
ports = [80, 443]
mark = 1

[[service]]
vip = "$VIP"
port = 53
proto = "udp"
scheduler = "wlc"
$(servers)

[[service]]
fwmark = 1
scheduler = "wlc"
persistent = 300
$(servers)
EOF

"$PMDLB" run --config "$WORK/pmdlb.toml" >"$WORK/pmdlb.log" 2>&1 &
LB=$!
PIDS+=("$LB")
sleep 2
# Generator: main lcore 0, forwarding lcore 1, memif client.
"$TESTPMD" -l 0-1 --main-lcore 0 -n 1 --file-prefix "$PREFIX-gen" \
  --vdev "net_memif0,role=client,socket=$SOCK,id=0" -- \
  --forward-mode=txonly --txonly-multi-flow --nb-cores=1 --stats-period 1 \
  --eth-peer="0,$LB_MAC" --tx-ip="10.16.0.1,$VIP" --tx-udp="40000,$DPORT" \
  --txpkts=64 </dev/null >"$WORK/gen.log" 2>&1 &
GEN=$!
PIDS+=("$GEN")
sleep $((SECS + 2))
kill -INT "$GEN" 2>/dev/null || true
wait "$GEN" 2>/dev/null || true
sleep 1
kill -TERM "$LB" 2>/dev/null || true
wait "$LB" || true
PIDS=()

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
offered=$(awk '/Tx-pps:/ {print $2/1e6}' "$WORK/gen.log" | tail -n +3 | median)
delivered=$(grep -o 'fwd=[0-9]* ([0-9.]*/s)' "$WORK/pmdlb.log" | sed 's/.*(\([0-9.]*\)\/s)/\1/' |
  awk '$1 > 0 {print $1/1e6}' | tail -n +3 | median)
field() { # name -> last value of "name: N" in the generator's log
  awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) v = $(i + 1)} END {print v + 0}' "$WORK/gen.log"
}
gen_tx=$(field TX-packets:)
gen_drop=$(field TX-dropped:)
# totals from pmdlb's exit table (the `total` column)
lb_rx=$(awk '$1 == "rx" {v=$NF} END {print v}' "$WORK/pmdlb.log")
lb_fwd=$(awk '$1 == "forwarded" {v=$NF} END {print v}' "$WORK/pmdlb.log")

echo "memif workflow, service $SERVICE (udp dport $DPORT), ${SECS} s; generator and pmdlb share 2 cores"
echo "generator (testpmd txonly multi-flow): offered ${offered} Mpps (median), sent ${gen_tx}, refused by the memif ring ${gen_drop}"
echo "pmdlb: received ${lb_rx:-?}, forwarded ${lb_fwd:-?} to net_null, delivered ${delivered} Mpps (median)"
if [[ -n ${lb_fwd:-} && $gen_tx -gt 0 ]]; then
  awk -v s="$gen_tx" -v f="$lb_fwd" 'BEGIN {printf "loss between generator and sink: %d frames (%.3f%%; includes frames left in the memif ring at the stop)\n", s - f, 100 * (s - f) / s}'
fi
grep -E 'drop=|tx_refused' "$WORK/pmdlb.log" | tail -1 | sed 's/^/pmdlb last stats: /'
