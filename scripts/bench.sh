#!/usr/bin/env bash
# Whole-process benchmark: pmdlb against dpdk-testpmd (mac-fwd: the floor
# for any DR forwarder; io-fwd: no header touched) on the same virtual
# devices, pcap and forwarding core, interleaved, several repetitions,
# medians. See benches/README.md for the method and the figures.
#
# One forwarding core (lcore 1; lcore 0 is pmdlb's control plane / testpmd's
# main lcore) reads net_pcap with infinite_rx=1 (the pcap is loaded into
# mbufs once and replayed, each packet copied into a fresh mbuf — the same
# per-packet cost for both programs) and transmits to net_null,no-rx=1.
#
# Usage: scripts/bench.sh [--quick] [--reps N] [--secs S] [--warmup W]
#                         [--clients "1 1024 65536"] [--tcp] [--no-build]
#                         [--pdump-ab] [--tunnel-ab]
#   --quick   64k clients only, 1 repetition, 4 s runs.
#   --tcp     also TCP (SYN then ACK per client) at the largest client count.
#   --pdump-ab  pmdlb only, eal.pdump = true against false, interleaved:
#             the cost of serving live capture while nobody captures.
#   --tunnel-ab pmdlb only, the same servers as DR, ipip and GUE tunnel
#             servers, interleaved: the cost of the encapsulation.
# Needs root, hugepages (scripts/setup-hugepages.sh) and dpdk-testpmd.
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=3
SECS=6
WARMUP=2
CLIENTS="1 1024 65536"
TCP=0
BUILD=1
PDUMP_AB=0
PDUMP=true
TUNNEL_AB=0
FORWARD=dr
while (($#)); do
  case "$1" in
    --quick) REPS=1; SECS=4; CLIENTS="65536" ;;
    --reps) REPS=$2; shift ;;
    --secs) SECS=$2; shift ;;
    --warmup) WARMUP=$2; shift ;;
    --clients) CLIENTS=$2; shift ;;
    --tcp) TCP=1 ;;
    --no-build) BUILD=0 ;;
    --pdump-ab) PDUMP_AB=1 ;;
    --tunnel-ab) TUNNEL_AB=1 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if ((BUILD)); then
  cargo build --release --bin pmdlb --example gen_pcap >&2
fi
PMDLB=$CARGO_TARGET_DIR/release/pmdlb
GEN=$CARGO_TARGET_DIR/release/examples/gen_pcap
TESTPMD=$(command -v dpdk-testpmd)

WORK=$(mktemp -d /tmp/pmdlb-bench.XXXXXX)
PREFIX=pmdlb-bench-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do [[ -n $p ]] && kill -INT "$p" 2>/dev/null || true; done
  # pmdlb and testpmd clean up on SIGINT; give them time before forcing.
  for _ in $(seq 1 100); do
    alive=0
    for p in "${PIDS[@]}"; do [[ -n $p ]] && kill -0 "$p" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for p in "${PIDS[@]}"; do [[ -n $p ]] && kill -KILL "$p" 2>/dev/null || true; done
  rm -f /dev/hugepages/"$PREFIX"* /run/pmdlb/"$PREFIX"*.sock 2>/dev/null || true
  rm -rf /var/run/dpdk/"$PREFIX"* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# net_pcap's port MAC: fixed 02:70:63:61:70:<index> ("\x02pcap" + port).
RX_MAC=02:70:63:61:70:00
VIP=10.0.0.100
# kind -> destination port (the pcap's); all three services are in one config
declare -A DPORT=([nonpersistent]=53 [persistent]=54 [fwmark]=443)
KINDS="nonpersistent persistent fwmark"

# mbufs: the replayed pcap stays in the pool; room for the queues on top.
mbufs_for() { # frames
  local n=$(( $1 + 16384 )) m=8191
  while ((m < n)); do m=$(( m * 2 + 1 )); done
  echo "$m"
}

write_config() { # file pcap frames
  cat >"$1" <<EOF
[eal]
lcores = "0-1"
hugepages = true
file_prefix = "$PREFIX-lb"
pdump = $PDUMP
vdevs = ["net_pcap0,rx_pcap=$2,infinite_rx=1", "net_null0,no-rx=1"]

[ports]
rx = "net_pcap0"
tx = "net_null0"
mbufs = $(mbufs_for "$3")
tx_addr = "10.0.1.1"

[workers]
count = 1
burst = 32
stats_interval_s = 1

[tables]
connections = 1048576
persistence = 1048576

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
vip = "$VIP"
port = 54
proto = "udp"
scheduler = "wlc"
persistent = 300
$(servers)

[[service]]
fwmark = 1
scheduler = "wlc"
persistent = 300
$(servers)

[[service]]
vip = "$VIP"
port = 55
proto = "tcp"
scheduler = "wlc"
$(servers)

[[service]]
vip = "$VIP"
port = 56
proto = "tcp"
scheduler = "wlc"
persistent = 300
$(servers)
EOF
}
servers() {
  for i in 1 2 3 4; do
    printf '[[service.server]]\naddr = "10.0.1.1%d"\nmac = "02:00:00:00:01:1%d"\n' "$i" "$i"
    case $FORWARD in
      ipip) printf 'forward = "tunnel"\n' ;;
      gue) printf 'forward = "tunnel"\ntun_type = "gue"\ntun_port = 6080\n' ;;
    esac
  done
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# Forwarded pps of pmdlb: the fwd rate of each stats line after the warm-up.
run_pmdlb() { # config -> Mpps (median over the measured seconds)
  local log=$WORK/pmdlb.log
  "$PMDLB" run --config "$1" >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  sleep $((WARMUP + SECS + 1))
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || echo "bench.sh: pmdlb exited $? (log: $(tail -3 "$log"))" >&2
  PIDS=("${PIDS[@]/$pid}")
  grep -o 'fwd=[0-9]* ([0-9.]*/s)' "$log" | sed 's/.*(\([0-9.]*\)\/s)/\1/' |
    tail -n +$((WARMUP + 1)) | head -n "$SECS" | awk '{print $1/1e6}' | median
}

# testpmd: Tx-pps of port 1 (net_null) from --stats-period 1 blocks.
run_testpmd() { # mode pcap frames -> Mpps
  local log=$WORK/testpmd.log
  "$TESTPMD" -l 0-1 -n 1 --file-prefix "$PREFIX-tp" \
    --vdev "net_pcap0,rx_pcap=$2,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
    --forward-mode="$1" --nb-cores=1 --stats-period 1 \
    --total-num-mbufs="$(mbufs_for "$3")" </dev/null >"$log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  sleep $((WARMUP + SECS + 1))
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  PIDS=("${PIDS[@]/$pid}")
  awk '/NIC statistics for port/ {port=$(NF-1)} /Tx-pps:/ && port==1 {print $2/1e6}' "$log" |
    tail -n +$((WARMUP + 1)) | head -n "$SECS" | median
}

describe_machine() {
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
    "hugepages $(awk '/HugePages_Total/ {t=$2} /HugePages_Free/ {f=$2} /Hugepagesize/ {s=$2} END {print t" x "s" kB ("f" free)"}' /proc/meminfo);" \
    "DPDK $(pkg-config --modversion libdpdk 2>/dev/null || echo '?'); kernel $(uname -r)"
}

describe_machine
echo "method: 1 forwarding core, net_pcap infinite_rx=1 -> net_null, 60-byte frames;" \
  "${REPS} reps x ${SECS} s after ${WARMUP} s warm-up, medians of per-second rates"

# cases: "proto clients kind"
CASES=()
for n in $CLIENTS; do for k in $KINDS; do CASES+=("udp $n $k"); done; done
if ((TCP)); then
  n=${CLIENTS##* }
  CASES+=("tcp $n nonpersistent" "tcp $n persistent")
fi

declare -A R M
pcap_of() { # proto clients kind -> path (generated once)
  local dport=${DPORT[$3]}
  if [[ $1 == tcp ]]; then
    case $3 in nonpersistent) dport=55 ;; persistent) dport=56 ;; fwmark) dport=443 ;; esac
  fi
  local f=$WORK/$1-$2-$dport.pcap
  [[ -f $f ]] || "$GEN" "$f" --clients "$2" --proto "$1" --dport "$dport" --dst-mac "$RX_MAC" --vip "$VIP" 2>/dev/null
  echo "$f"
}
frames_of() { if [[ $1 == tcp ]]; then echo $(( $2 * 2 )); else echo "$2"; fi; }

if ((TUNNEL_AB)); then
  for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
      read -r proto n kind <<<"$c"
      pcap=$(pcap_of "$proto" "$n" "$kind")
      frames=$(frames_of "$proto" "$n")
      for FORWARD in dr ipip gue; do
        write_config "$WORK/pmdlb.toml" "$pcap" "$frames"
        R["$c $FORWARD $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
        echo "rep $rep: $c $FORWARD pmdlb ${R["$c $FORWARD $rep"]} Mpps" >&2
      done
    done
  done
  printf '\n%-5s %8s %-14s %8s %8s %8s %8s %8s\n' proto clients service dr ipip gue ipip/dr gue/dr
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    for f in dr ipip gue; do
      M[$f]=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c $f $rep"]}"; done | median)
    done
    printf '%-5s %8s %-14s %8.2f %8.2f %8.2f %8.3f %8.3f\n' "$proto" "$n" "$kind" \
      "${M[dr]}" "${M[ipip]}" "${M[gue]}" \
      "$(awk -v a="${M[ipip]}" -v b="${M[dr]}" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
      "$(awk -v a="${M[gue]}" -v b="${M[dr]}" 'BEGIN {print (b > 0 ? a / b : 0)}')"
  done
  echo "(Mpps, medians of $REPS interleaved runs)"
  exit 0
fi

if ((PDUMP_AB)); then
  for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
      read -r proto n kind <<<"$c"
      pcap=$(pcap_of "$proto" "$n" "$kind")
      frames=$(frames_of "$proto" "$n")
      for PDUMP in true false; do
        write_config "$WORK/pmdlb.toml" "$pcap" "$frames"
        R["$c $PDUMP $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
        echo "rep $rep: $c pdump=$PDUMP pmdlb ${R["$c $PDUMP $rep"]} Mpps" >&2
      done
    done
  done
  printf '\n%-5s %8s %-14s %10s %10s %8s\n' proto clients service pdump-on pdump-off on/off
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    on=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c true $rep"]}"; done | median)
    off=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c false $rep"]}"; done | median)
    printf '%-5s %8s %-14s %10.2f %10.2f %8.3f\n' "$proto" "$n" "$kind" "$on" "$off" \
      "$(awk -v a="$on" -v b="$off" 'BEGIN {print (b > 0 ? a / b : 0)}')"
  done
  echo "(Mpps, medians of $REPS interleaved runs)"
  exit 0
fi

for ((rep = 1; rep <= REPS; rep++)); do
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    pcap=$(pcap_of "$proto" "$n" "$kind")
    frames=$(frames_of "$proto" "$n")
    # the baselines once per pcap shape (same size and count for every kind)
    base="$proto $n"
    if [[ $kind == nonpersistent ]]; then
      R["$base mac $rep"]=$(run_testpmd mac "$pcap" "$frames")
      echo "rep $rep: $proto $n clients testpmd mac-fwd ${R["$base mac $rep"]} Mpps" >&2
    fi
    write_config "$WORK/pmdlb.toml" "$pcap" "$frames"
    R["$c $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
    echo "rep $rep: $c pmdlb ${R["$c $rep"]} Mpps" >&2
    if [[ $kind == persistent ]]; then
      R["$base io $rep"]=$(run_testpmd io "$pcap" "$frames")
      echo "rep $rep: $proto $n clients testpmd io-fwd ${R["$base io $rep"]} Mpps" >&2
    fi
  done
done

med_of() { for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$1 $rep"]}"; done | median; }
printf '\n%-5s %8s %-14s %10s %12s %11s %9s\n' proto clients service pmdlb testpmd-mac testpmd-io pmdlb/mac
for c in "${CASES[@]}"; do
  read -r proto n kind <<<"$c"
  p=$(med_of "$c")
  m=$(med_of "$proto $n mac")
  i=$(med_of "$proto $n io")
  printf '%-5s %8s %-14s %10.2f %12.2f %11.2f %9.2f\n' "$proto" "$n" "$kind" "$p" "$m" "$i" \
    "$(awk -v a="$p" -v b="$m" 'BEGIN {print (b > 0 ? a / b : 0)}')"
done
echo "(Mpps, medians of $REPS runs)"
