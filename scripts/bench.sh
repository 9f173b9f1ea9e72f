#!/usr/bin/env bash
# Whole-process benchmark: pmdlb against dpdk-testpmd (mac-fwd: the floor
# for any DR forwarder; io-fwd: no header touched) and DPDK's C l3fwd in
# exact-match mode (the same flows as rules; scripts/build-l3fwd.sh) on the
# same virtual devices, pcap and forwarding core, interleaved, several
# repetitions, medians; draws Mpps against clients as a PNG. See
# benches/README.md for the method and the figures.
#
# One forwarding core (lcore 1; lcore 0 is pmdlb's control plane / testpmd's
# main lcore) reads net_pcap with infinite_rx=1 (the pcap is loaded into
# mbufs once and replayed, each packet copied into a fresh mbuf — the same
# per-packet cost for both programs) and transmits to net_null,no-rx=1.
#
# Usage: scripts/bench.sh [--quick] [--reps N] [--secs S] [--warmup W]
#                         [--clients "1 1024 65536"] [--tcp] [--no-build]
#                         [--pdump-ab] [--memory-ab] [--tunnel-ab] [--ab OLD_PMDLB]
#                         [--no-l3fwd]
#                         [--perf] [--flood [--flood-clients N]]
#   --quick   64k clients only, 1 repetition, 4 s runs.
#   --no-l3fwd  leave DPDK's l3fwd out of the series (it is also left out,
#             with a message, when the hugepages for its hashes are short).
#   --tcp     also TCP (SYN then ACK per client) at the largest client count.
#   --pdump-ab  pmdlb only, eal.pdump = true against false, interleaved:
#             the cost of serving live capture while nobody captures.
#   --memory-ab pmdlb only, [tables] memory = "dpdk" against "heap",
#             interleaved: the tables in DPDK's hugepage heap against the
#             process heap with the transparent-huge-page hint.
#   --ab OLD_PMDLB  this build's pmdlb against another pmdlb binary (a
#             build of an earlier commit), interleaved run by run, with
#             testpmd mac-fwd in the same series: new/old and both / mac.
#   --tunnel-ab pmdlb only, the same servers as DR, ipip and GUE tunnel
#             servers, interleaved: the cost of the encapsulation.
#   --flood   the new-client flood instead of the client series: UDP (and
#             with --tcp a SYN flood: one SYN per client, tcp_syn_recv = 1),
#             every packet from a client whose entry (and template) expired,
#             so every packet creates a connection (the stats line's new=
#             rate; the table gives new/fwd, 1.00 when every packet did).
#             FLOOD_CLIENTS (default 8,000,000, --flood-clients) distinct
#             clients in the pcap, timeouts udp = 1 and persistent = 1, so a
#             client comes back after its entry expired as long as the pcap
#             lasts longer than 1 s (2 s persistent) at the hit rate; small
#             mbufs (mbuf_size 384, mtu 200) keep the pool at ~4.8 GB of
#             hugepages (scripts/setup-hugepages.sh 2600; 3215 to hold
#             pmdlb's 1.7 GB of tables there too). pmdlb's warm-up
#             starts after the first pass through the pcap. testpmd mac-fwd
#             on the same pcap and mbuf size is the floor; no l3fwd. With
#             --ab OLD_PMDLB, each pmdlb run is followed by one of OLD
#             (which must know ports.mbuf_size).
#   --table N  pmdlb's [tables] connections and persistence: at least N
#             (default 1,048,576; a bigger pcap gets one per frame). The
#             table's size, not its load, sets how far apart its lines lie.
#   --perf    also profile the forwarding core (perf record -C 1, software
#             clock) over each pmdlb run's measured seconds: writes
#             target/bench/perf-DATE-CASE.data and prints its top symbols.
# Needs root, hugepages (scripts/setup-hugepages.sh) and dpdk-testpmd;
# l3fwd needs dpdk-doc and more hugepages (see L3FWD_HASH_MB); the plot
# needs gnuplot (scripts/install-deps.sh installs both).
# Writes target/bench/bench-DATE.tsv (every run), -medians.tsv and -udp.png.
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
MEMORY_AB=0
TABLE_MEMORY=auto
TUNNEL_AB=0
AB_OLD=
FORWARD=dr
L3FWD_ON=1
PERF=0
PERF_TAG=run
FLOOD=0
FLOOD_CLIENTS=8000000
TABLE_MIN=1048576
SKIP_RX=0
# bytes of hugepage memory per mbuf: the data room plus the mbuf header
# and the mempool's object header (measured: 2,368 for the default 2,176)
MBUF_SIZE=2176
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
    --memory-ab) MEMORY_AB=1 ;;
    --tunnel-ab) TUNNEL_AB=1 ;;
    --ab) AB_OLD=$2; shift ;;
    --no-l3fwd) L3FWD_ON=0 ;;
    --perf) PERF=1 ;;
    --flood) FLOOD=1 ;;
    --flood-clients) FLOOD_CLIENTS=$2; shift ;;
    --table) TABLE_MIN=$2; shift ;;
    -h|--help) sed -n 2,58p "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
if ((BUILD)); then
  cargo build --release --bin pmdlb --example gen_pcap >&2
fi
PMDLB=$CARGO_TARGET_DIR/release/pmdlb
OUTDIR=$CARGO_TARGET_DIR/bench
mkdir -p "$OUTDIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
GEN=$CARGO_TARGET_DIR/release/examples/gen_pcap
TESTPMD=$(command -v dpdk-testpmd)
for f in "$PMDLB" "$GEN"; do
  [[ -x $f ]] || { echo "bench.sh: $f is not built (run without --no-build, or cargo build --release --bin pmdlb --example gen_pcap)" >&2; exit 1; }
done
if ((PDUMP_AB || MEMORY_AB || TUNNEL_AB || FLOOD)) || [[ -n $AB_OLD ]]; then L3FWD_ON=0; fi
if ((FLOOD)); then
  MBUF_SIZE=384
  CLIENTS=$FLOOD_CLIENTS
fi
MBUF_BYTES=$((MBUF_SIZE + 192))
if [[ -n $AB_OLD && ! -x $AB_OLD ]]; then
  echo "bench.sh: --ab $AB_OLD: not an executable pmdlb" >&2
  exit 2
fi
L3FWD=
if ((L3FWD_ON)); then
  if ! L3FWD=$(scripts/build-l3fwd.sh); then
    echo "bench.sh: l3fwd skipped: it did not build (dpdk-doc installed? scripts/install-deps.sh)" >&2
    L3FWD_ON=0
  fi
fi

WORK=$(mktemp -d /tmp/pmdlb-bench.XXXXXX)
PREFIX=pmdlb-bench-$$
cleanup() {
  # Every forwarder runs inside $(...), where this shell cannot track
  # them: find them by their files under WORK (config, pcap) instead.
  pkill -INT -f -- "$WORK/" 2>/dev/null || true
  # pmdlb and testpmd clean up on SIGINT; give them time (a pool of
  # millions of mbufs takes seconds to unmap) before forcing.
  for _ in $(seq 1 300); do
    pgrep -f -- "$WORK/" >/dev/null || break
    sleep 0.1
  done
  pkill -KILL -f -- "$WORK/" 2>/dev/null || true
  rm -f /dev/hugepages/"$PREFIX"* /run/pmdlb/"$PREFIX"*.sock 2>/dev/null || true
  rm -rf /var/run/dpdk/"$PREFIX"* 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# Ctrl-C or a kill stops the series once the run in progress ends (bash
# runs a trap when its foreground command returns; a trap that only
# cleaned up went on with the next run)
trap 'exit 130' INT TERM

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

# The flood's keys: small mbufs (net_pcap cannot set the MTU, so pmdlb
# warns; every frame is 60 bytes), the shortest timeouts IPVS allows.
PERSISTENT=300
if ((FLOOD)); then PERSISTENT=1; fi
flood_ports() { if ((FLOOD)); then printf 'mbuf_size = %s\nmtu = 200\n' "$MBUF_SIZE"; fi; }
flood_timeouts() { if ((FLOOD)); then printf '\n[timeouts]\nudp = 1\ntcp_syn_recv = 1\n'; fi; }
# Tables: a million entries, or one per frame for a bigger pcap (the flood
# keeps about a pcap's worth of entries, expired ones included, until the
# sweep or the next packet of their client takes them).
table_for() { # frames
  local t=$TABLE_MIN
  while ((t < $1)); do t=$((t * 2)); done
  echo "$t"
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
$(flood_ports)

[workers]
count = 1
burst = 32
stats_interval_s = 1

[tables]
connections = $(table_for "$3")
persistence = $(table_for "$3")
memory = "$TABLE_MEMORY"
$(flood_timeouts)

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
persistent = $PERSISTENT
$(servers)

[[service]]
fwmark = 1
scheduler = "wlc"
persistent = $PERSISTENT
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
persistent = $PERSISTENT
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
# The figures of series KEY over the repetitions (from the array R, or
# the one named), those that are numbers; and their median.
runs_of() { # key [array]
  local -n runs_arr=${2:-R}
  for ((rep = 1; rep <= REPS; rep++)); do echo "${runs_arr["$1 $rep"]:-}"; done | grep -E '^[0-9.]+$' || true
}
med_of() { runs_of "$@" | median; }

# Forwarded pps of pmdlb: the fwd rate of each stats line after the warm-up.
run_pmdlb() { # config [binary] -> Mpps (median over the measured seconds)
  local log=$WORK/pmdlb.log
  "${2:-$PMDLB}" run --config "$1" >"$log" 2>&1 &
  local pid=$!
  # the warm-up counts from the first stats line (a large pool takes
  # seconds to fill before the workers start), in a flood from the end of
  # the first pass through the pcap (SKIP_RX frames: until then no client
  # comes back to an expired entry, it is new to an empty table)
  wait_for "$log" "pmdlb: rx=" 300 "$pid" ||
    echo "bench.sh: pmdlb not forwarding (it exited, or 300 s passed; log: $(tail -2 "$log"))" >&2
  if ((SKIP_RX)); then
    wait_for_rx "$log" "$SKIP_RX" 120 "$pid" ||
      echo "bench.sh: pmdlb did not receive $SKIP_RX frames in 120 s" >&2
  fi
  if ((PERF)); then
    sleep $((WARMUP + 1))
    profile_core "$OUTDIR/perf-$STAMP-$PERF_TAG.data"
    sleep 1
  else
    sleep $((WARMUP + SECS + 1))
  fi
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || echo "bench.sh: pmdlb exited $? (log: $(tail -3 "$log"))" >&2
  rate_of fwd "$log" >"$WORK/last-fwd"
  rate_of new "$log" >"$WORK/last-new"
  # the final statistics' totals: templates created per connection created
  awk '$1 == "conn_created" {c = $NF} $1 == "templates_created" {t = $NF}
    END {print (c > 0 ? t / c : 0)}' "$log" >"$WORK/last-tmpl"
  cat "$WORK/last-fwd"
}

# A stats-line rate (fwd=N (R/s), new=N (R/s)) in millions per second,
# the median over the measured seconds after the warm-up (which starts
# after the line whose rx reached SKIP_RX).
rate_of() { # field log
  awk -v skip="$SKIP_RX" '/^pmdlb: rx=/ {
      if (on) print
      else { rx = $2; sub(/^rx=/, "", rx); if (rx + 0 >= skip) on = 1 }
    }' "$2" |
    grep -o " $1=[0-9]* ([0-9.]*/s)" | sed 's/.*(\([0-9.]*\)\/s)/\1/' |
    tail -n +$((WARMUP + 1)) | head -n "$SECS" | awk '{print $1/1e6}' | median
}

# Waits until a stats line of LOG shows rx >= FRAMES, at most SECONDS and
# no longer than process PID lives.
wait_for_rx() { # log frames seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    awk -v n="$2" '/^pmdlb: rx=/ {rx = $2; sub(/^rx=/, "", rx); if (rx + 0 >= n) f = 1} END {exit !f}' "$1" &&
      return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# The forwarding core's profile over the measured seconds (--perf): the
# VM has no hardware counters, so the software clock; no call graph (the
# release build keeps no frame pointers, so its chains come out empty); the
# top symbols with their shared objects go to stderr, the data file stays
# for perf report / perf annotate. When perf fails the run still lasts its
# measured seconds, so its median is taken over as many as the others'.
profile_core() { # data-file
  perf record -q -e cpu-clock -C 1 -o "$1" -- sleep "$SECS" >/dev/null 2>&1 || {
    echo "bench.sh: perf record failed (is perf installed? scripts/install-deps.sh)" >&2
    sleep "$SECS"
    return 0
  }
  echo "bench.sh: profile of lcore 1 ($PERF_TAG): $1" >&2
  perf report -q -i "$1" --no-children --sort dso,sym --percent-limit 1.5 --stdio 2>/dev/null |
    grep -v '^$' | grep -v '^ *|' | grep -v '^ *-' | head -25 | sed 's/^/  /' >&2
}

# Waits until PATTERN shows in LOG, at most SECONDS, and no longer than
# process PID lives; fails if it did not show.
wait_for() { # log pattern seconds pid
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    kill -0 "$4" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# testpmd: Tx-pps of port 1 (net_null) from --stats-period 1 blocks. The
# warm-up counts from its first block, when it forwards: with a large pool
# (1M clients: 2M mbufs) its set-up alone outlasts a fixed wait.
run_testpmd() { # mode pcap frames -> Mpps
  local log=$WORK/testpmd.log
  "$TESTPMD" -l 0-1 -n 1 --file-prefix "$PREFIX-tp" \
    --vdev "net_pcap0,rx_pcap=$2,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
    --forward-mode="$1" --nb-cores=1 --stats-period 1 --mbuf-size="$MBUF_SIZE" \
    --total-num-mbufs="$(mbufs_for "$3")" </dev/null >"$log" 2>&1 &
  local pid=$!
  wait_for "$log" "Tx-pps:" 300 "$pid" ||
    echo "bench.sh: testpmd $1 not forwarding (it exited, or 300 s passed; log: $(tail -2 "$log"))" >&2
  sleep $((WARMUP + SECS + 1))
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  awk '/NIC statistics for port/ {port=$(NF-1)} /Tx-pps:/ && port==1 {print $2/1e6}' "$log" |
    tail -n +$((WARMUP + 1)) | head -n "$SECS" | median
}

# l3fwd-em rules (--rule_ipv4, em_route_parse.c em_parse_v4_rule:
# "R<dst> <src> <dst port> <src port> <proto> <out port>") for exactly the
# flows gen_pcap writes: client 10.16.0.0 + i, source port 40000 + i % 16,
# to VIP:dport, every one out of port 1 (net_null). l3fwd also insists on
# an IPv6 rule file with at least one rule: one flow nobody sends.
em_rules_of() { # proto clients dport -> path
  local f=$WORK/em-$1-$2-$3.rules
  if [[ ! -f $f ]]; then
    awk -v n="$2" -v dport="$3" -v proto=$([[ $1 == tcp ]] && echo 6 || echo 17) -v vip="$VIP" 'BEGIN {
      base = 10 * 16777216 + 16 * 65536
      for (i = 0; i < n; i++) {
        a = base + i
        printf "R%s %d.%d.%d.%d %d %d %d 1\n", vip, int(a / 16777216), int(a / 65536) % 256,
          int(a / 256) % 256, a % 256, dport, 40000 + i % 16, proto
      }
    }' >"$f"
    echo "R2001:db8::1 2001:db8::2 9 9 17 1" >"$WORK/em-v6.rules"
  fi
  echo "$f"
}

# l3fwd prints no rates: its TX port's opackets read through the telemetry
# socket once a second (scripts/ethdev-rate.py), the same per-second,
# after-warm-up sampling as testpmd's Tx-pps of the null port.
# EAL lcore 1 only: l3fwd gives every port one TX queue per EAL lcore and
# net_pcap has one, so its main lcore (1) is the forwarding lcore, the
# same core as testpmd's and pmdlb's worker. --huge-unlink: l3fwd leaves
# its hugepage files behind otherwise, 400 pages the next run would lack.
run_l3fwd() { # pcap frames rules -> Mpps, or "nan" if it fails (the caller stops running it)
  local log=$WORK/l3fwd.log rates=$WORK/l3fwd.rates
  L3FWD_NB_MBUF=$(mbufs_for "$2") "$L3FWD" -l 1 -n 1 --no-pci --huge-unlink --file-prefix "$PREFIX-l3" \
    --vdev "net_pcap0,rx_pcap=$1,infinite_rx=1" --vdev net_null0,no-rx=1 -- \
    -p 0x3 --config "(0,0,1),(1,0,1)" --lookup em --parse-ptype \
    --rule_ipv4 "$3" --rule_ipv6 "$WORK/em-v6.rules" </dev/null >"$log" 2>&1 &
  local pid=$!
  local ok=1
  scripts/ethdev-rate.py "$PREFIX-l3" 1 $((WARMUP + SECS)) >"$rates" 2>>"$log" || ok=0
  kill -INT "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f /dev/hugepages/"$PREFIX"-l3* 2>/dev/null || true
  rm -rf /var/run/dpdk/"$PREFIX"-l3 2>/dev/null || true
  if ((!ok)); then
    echo "bench.sh: l3fwd failed, left out from here on; its log ends:" >&2
    grep -v '^EM: Adding route' "$log" | tail -5 | sed 's/^/  /' >&2
    echo nan
    return
  fi
  tail -n +$((WARMUP + 1)) "$rates" | head -n "$SECS" | median
}

describe_machine() {
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
    "caches $(lscpu 2>/dev/null | awk -F: '/^L[123][di]? cache/ {gsub(/^ +/, "", $2); printf "%s%s %s", sep, $1, $2; sep=", "}');" \
    "hugepages $(awk '/HugePages_Total/ {t=$2} /HugePages_Free/ {f=$2} /Hugepagesize/ {s=$2} END {print t" x "s" kB ("f" free)"}' /proc/meminfo);" \
    "DPDK $(pkg-config --modversion libdpdk 2>/dev/null || echo '?'); kernel $(uname -r)"
}

describe_machine
echo "method: 1 forwarding core, net_pcap infinite_rx=1 -> net_null, 60-byte frames;" \
  "${REPS} reps x ${SECS} s after ${WARMUP} s warm-up, medians of per-second rates"

# l3fwd creates two hashes of L3FWD_HASH_ENTRIES (4M on 64-bit, l3fwd.h:53)
# entries, IPv4 and IPv6, in hugepage memory whatever the rule count. This
# is what they and the EAL took here (22.11.11, measured: 413 pages in use
# with a pool of 131,071 mbufs, less the pool's ~296 MiB, plus a margin);
# the pool comes on top (~2.3 KiB an mbuf).
L3FWD_HASH_MB=${L3FWD_HASH_MB:-560}
FREE_MB=$(awk '/HugePages_Free/ {f=$2} /Hugepagesize/ {s=$2} END {print int(f * s / 1024)}' /proc/meminfo)
l3fwd_fits() { # proto clients -> true when l3fwd's hashes and pool fit in the free hugepages
  local need_mb=$(( L3FWD_HASH_MB + $(mbufs_for "$(frames_of "$1" "$2")") * MBUF_BYTES / 1048576 + 64 ))
  if ((FREE_MB >= need_mb)); then return 0; fi
  if [[ -z ${L3FWD_SAID["$1 $2"]:-} ]]; then
    L3FWD_SAID["$1 $2"]=1
    echo "bench.sh: l3fwd skipped for $1 $2 clients: its 4M-entry IPv4 and IPv6 hashes and" \
      "mbuf pool need about $need_mb MiB of hugepages, $FREE_MB MiB are free" \
      "(scripts/setup-hugepages.sh $(( (need_mb + 64) / 2 )) reserves enough 2 MiB pages)" >&2
  fi
  return 1
}
declare -A L3FWD_SAID

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
  local gen_proto=$1
  # the TCP flood: one SYN per client (a SYN flood), not SYN then ACK
  if ((FLOOD)) && [[ $1 == tcp ]]; then gen_proto=syn; fi
  [[ -f $f ]] || "$GEN" "$f" --clients "$2" --proto "$gen_proto" --dport "$dport" --dst-mac "$RX_MAC" --vip "$VIP" 2>/dev/null
  echo "$f"
}
frames_of() { if [[ $1 == tcp ]] && ((!FLOOD)); then echo $(( $2 * 2 )); else echo "$2"; fi; }

# A shape whose replayed pcap does not fit the free hugepages (every
# forwarder keeps it in its pool, ~2.3 KiB an mbuf) is left out with a
# message instead of failing run after run (TCP at 1M clients: 2M frames).
fits_pool() { # proto clients -> true when a forwarder's pool fits
  local need_mb=$(( $(mbufs_for "$(frames_of "$1" "$2")") * MBUF_BYTES / 1048576 + 64 ))
  ((FREE_MB >= need_mb)) && return 0
  echo "bench.sh: $1 $2 clients left out: the pcap's pool needs about $need_mb MiB of" \
    "hugepages, $FREE_MB MiB are free (scripts/setup-hugepages.sh $(( (need_mb + 64) / 2 )))" >&2
  return 1
}
# pmdlb's tables come on top of its pool in the hugepages ([tables] memory
# = "auto": a table that does not fit goes to the process heap, with a
# warning in the run's log); `pmdlb check` says what they take.
tables_fit() { # proto clients -> says so when pmdlb's tables will not fit
  local frames; frames=$(frames_of "$1" "$2")
  write_config "$WORK/fit.toml" "$WORK/none.pcap" "$frames"
  local tables_mb
  tables_mb=$("$PMDLB" check --config "$WORK/fit.toml" | awk '/^ +memory [a-z]+: / {print int($(NF - 1))}')
  local need_mb=$(( $(mbufs_for "$frames") * MBUF_BYTES / 1048576 + tables_mb + 64 ))
  ((FREE_MB >= need_mb)) && return 0
  echo "bench.sh: $1 $2 clients: pmdlb's pool and tables ($tables_mb MiB) need about $need_mb MiB" \
    "of hugepages, $FREE_MB MiB are free: a table that does not fit runs on the process heap" \
    "(scripts/setup-hugepages.sh $(( (need_mb + 64) / 2 )) avoids it)" >&2
  return 1
}
KEPT=()
declare -A POOL_SAID
for c in "${CASES[@]}"; do
  read -r proto n _ <<<"$c"
  if [[ -z ${POOL_SAID["$proto $n"]:-} ]]; then
    if fits_pool "$proto" "$n"; then POOL_SAID["$proto $n"]=ok; else POOL_SAID["$proto $n"]=no; fi
    [[ ${POOL_SAID["$proto $n"]} == no ]] || tables_fit "$proto" "$n" || true
  fi
  if [[ ${POOL_SAID["$proto $n"]} == ok ]]; then KEPT+=("$c"); fi
done
CASES=("${KEPT[@]}")

if ((FLOOD)); then
  declare -A NEW TMPL
  for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
      read -r proto n kind <<<"$c"
      pcap=$(pcap_of "$proto" "$n" "$kind")
      if [[ $kind == nonpersistent ]]; then
        R["$proto mac $rep"]=$(run_testpmd mac "$pcap" "$n")
        echo "rep $rep: $proto flood of $n clients testpmd mac-fwd ${R["$proto mac $rep"]} Mpps" >&2
      fi
      write_config "$WORK/pmdlb.toml" "$pcap" "$n"
      SKIP_RX=$n
      PERF_TAG="flood-$proto-$kind-$rep"
      R["$c $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
      NEW["$c $rep"]=$(cat "$WORK/last-new")
      TMPL["$c $rep"]=$(cat "$WORK/last-tmpl")
      echo "rep $rep: $proto flood $kind pmdlb ${R["$c $rep"]} Mpps, ${NEW["$c $rep"]} M new conn/s" >&2
      if [[ -n $AB_OLD ]]; then
        PERF_TAG="flood-$proto-$kind-$rep-old"
        R["$c old $rep"]=$(run_pmdlb "$WORK/pmdlb.toml" "$AB_OLD")
        echo "rep $rep: $proto flood $kind old pmdlb ${R["$c old $rep"]} Mpps" >&2
      fi
      SKIP_RX=0
    done
  done
  printf '\n%-5s %-14s %8s %12s %8s %9s %12s %10s %13s\n' proto service pmdlb new-conn/s new/fwd tmpl/new testpmd-mac pmdlb/mac 'spread(pmdlb)'
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    vals=$(runs_of "$c" | sort -g)
    p=$(median <<<"$vals")
    nc=$(med_of "$c" NEW)
    tm=$(med_of "$c" TMPL)
    mac=$(med_of "$proto mac")
    if awk -v a="$nc" -v b="$p" 'BEGIN {exit !(b > 0 && a / b < 0.99)}'; then
      echo "bench.sh: $proto $kind: not every packet created a connection (new/fwd < 0.99):" \
        "the pcap comes round before the entries expire; raise --flood-clients" >&2
    fi
    printf '%-5s %-14s %8.2f %11.2fM %8.2f %9.2f %12.2f %10.2f %12.0f%%\n' "$proto" "$kind" "$p" "$nc" \
      "$(awk -v a="$nc" -v b="$p" 'BEGIN {print (b > 0 ? a / b : 0)}')" "$tm" "$mac" \
      "$(awk -v a="$p" -v b="$mac" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
      "$(awk -v a="$(head -1 <<<"$vals")" -v b="$(tail -1 <<<"$vals")" -v m="$p" 'BEGIN {print (m > 0 ? (b - a) / m * 100 : 0)}')"
  done
  if [[ -n $AB_OLD ]]; then
    printf '\n%-5s %-14s %8s %8s %8s\n' proto service new old new/old
    for c in "${CASES[@]}"; do
      read -r proto _ kind <<<"$c"
      a=$(med_of "$c")
      b=$(med_of "$c old")
      printf '%-5s %-14s %8.2f %8.2f %8.3f\n' "$proto" "$kind" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {print (b > 0 ? a / b : 0)}')"
    done
    echo "(old = $AB_OLD, run after each new run)"
  fi
  echo "(new-client flood of $n clients, UDP datagrams or TCP SYNs; Mpps forwarded and new" \
    "connections a second, medians of $REPS interleaved runs; tmpl/new = templates created" \
    "per connection over the whole run; spread = (max - min) / median)"
  exit 0
fi

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

if [[ -n $AB_OLD ]]; then
  for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
      read -r proto n kind <<<"$c"
      pcap=$(pcap_of "$proto" "$n" "$kind")
      frames=$(frames_of "$proto" "$n")
      write_config "$WORK/pmdlb.toml" "$pcap" "$frames"
      if [[ $kind == nonpersistent ]]; then
        R["$proto $n mac $rep"]=$(run_testpmd mac "$pcap" "$frames")
        echo "rep $rep: $proto $n clients testpmd mac-fwd ${R["$proto $n mac $rep"]} Mpps" >&2
      fi
      PERF_TAG="$proto-$n-$kind-$rep-new"
      R["$c new $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
      PERF_TAG="$proto-$n-$kind-$rep-old"
      R["$c old $rep"]=$(run_pmdlb "$WORK/pmdlb.toml" "$AB_OLD")
      echo "rep $rep: $c pmdlb new ${R["$c new $rep"]} old ${R["$c old $rep"]} Mpps" >&2
    done
  done
  printf '\n%-5s %8s %-14s %8s %8s %8s %8s %8s %8s\n' proto clients service new old mac new/old new/mac old/mac
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    for f in new old; do
      M[$f]=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c $f $rep"]}"; done | median)
    done
    M[mac]=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$proto $n mac $rep"]}"; done | median)
    printf '%-5s %8s %-14s %8.2f %8.2f %8.2f %8.3f %8.3f %8.3f\n' "$proto" "$n" "$kind" \
      "${M[new]}" "${M[old]}" "${M[mac]}" \
      "$(awk -v a="${M[new]}" -v b="${M[old]}" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
      "$(awk -v a="${M[new]}" -v b="${M[mac]}" 'BEGIN {print (b > 0 ? a / b : 0)}')" \
      "$(awk -v a="${M[old]}" -v b="${M[mac]}" 'BEGIN {print (b > 0 ? a / b : 0)}')"
  done
  echo "(Mpps, medians of $REPS interleaved runs; old = $AB_OLD)"
  exit 0
fi

# pmdlb only, one configuration variable ($1) at two values ($2, $3),
# interleaved run by run; $4 and $5 head the columns.
config_ab() {
  local var=$1 a=$2 b=$3 v
  for ((rep = 1; rep <= REPS; rep++)); do
    for c in "${CASES[@]}"; do
      read -r proto n kind <<<"$c"
      pcap=$(pcap_of "$proto" "$n" "$kind")
      frames=$(frames_of "$proto" "$n")
      for v in "$a" "$b"; do
        printf -v "$var" '%s' "$v"
        write_config "$WORK/pmdlb.toml" "$pcap" "$frames"
        R["$c $v $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
        echo "rep $rep: $c $var=$v pmdlb ${R["$c $v $rep"]} Mpps" >&2
      done
    done
  done
  printf '\n%-5s %8s %-14s %10s %10s %8s\n' proto clients service "$4" "$5" "$4/$5"
  for c in "${CASES[@]}"; do
    read -r proto n kind <<<"$c"
    on=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c $a $rep"]}"; done | median)
    off=$(for ((rep = 1; rep <= REPS; rep++)); do echo "${R["$c $b $rep"]}"; done | median)
    printf '%-5s %8s %-14s %10.2f %10.2f %8.3f\n' "$proto" "$n" "$kind" "$on" "$off" \
      "$(awk -v a="$on" -v b="$off" 'BEGIN {print (b > 0 ? a / b : 0)}')"
  done
  echo "(Mpps, medians of $REPS interleaved runs)"
}

if ((PDUMP_AB)); then
  config_ab PDUMP true false pdump-on pdump-off
  exit 0
fi
if ((MEMORY_AB)); then
  config_ab TABLE_MEMORY dpdk heap dpdk heap
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
    PERF_TAG="$proto-$n-$kind-$rep"
    R["$c $rep"]=$(run_pmdlb "$WORK/pmdlb.toml")
    echo "rep $rep: $c pmdlb ${R["$c $rep"]} Mpps" >&2
    if [[ $kind == persistent ]]; then
      R["$base io $rep"]=$(run_testpmd io "$pcap" "$frames")
      echo "rep $rep: $proto $n clients testpmd io-fwd ${R["$base io $rep"]} Mpps" >&2
      if ((L3FWD_ON)) && l3fwd_fits "$proto" "$n"; then
        dport=$(basename "$pcap" .pcap)
        dport=${dport##*-}
        R["$base l3fwd $rep"]=$(run_l3fwd "$pcap" "$frames" "$(em_rules_of "$proto" "$n" "$dport")")
        [[ ${R["$base l3fwd $rep"]} == nan ]] && L3FWD_ON=0
        echo "rep $rep: $proto $n clients l3fwd-em ${R["$base l3fwd $rep"]} Mpps" >&2
      fi
    fi
  done
done

# every run, then the medians and the plot, under target/bench (OUTDIR)
RAW=$OUTDIR/bench-$STAMP.tsv
MEDS=$OUTDIR/bench-$STAMP-medians.tsv
PNG=$OUTDIR/bench-$STAMP-udp.png
series_of() { # proto clients -> the series keys measured for that shape
  local k
  for k in $KINDS mac io l3fwd; do
    if [[ -n ${R["$1 $2 $k 1"]+x} ]]; then echo "$1 $2 $k"; fi
  done
}
SHAPES=$(for c in "${CASES[@]}"; do read -r proto n _ <<<"$c"; echo "$proto $n"; done | uniq)
{
  printf 'proto\tclients\tseries\trep\tmpps\n'
  while read -r proto n; do
    while read -r key; do
      for ((rep = 1; rep <= REPS; rep++)); do
        if [[ -n ${R["$key $rep"]+x} ]]; then
          read -r a b k <<<"$key"
          printf '%s\t%s\t%s\t%s\t%s\n' "$a" "$b" "$k" "$rep" "${R["$key $rep"]}"
        fi
      done
    done < <(series_of "$proto" "$n")
  done <<<"$SHAPES"
} >"$RAW"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (a == "nan" || b == "nan" || b <= 0) print "-"; else printf "%.2f", a / b}'; }
fmt() { if [[ $1 == nan ]]; then echo "-"; else printf '%.2f' "$1"; fi; }
printf '\n%-5s %8s %-14s %8s %9s %12s %11s %10s %10s\n' proto clients service pmdlb l3fwd-em testpmd-mac testpmd-io pmdlb/mac l3fwd/mac
for c in "${CASES[@]}"; do
  read -r proto n kind <<<"$c"
  p=$(med_of "$c")
  l=$(med_of "$proto $n l3fwd")
  m=$(med_of "$proto $n mac")
  i=$(med_of "$proto $n io")
  printf '%-5s %8s %-14s %8s %9s %12s %11s %10s %10s\n' "$proto" "$n" "$kind" "$(fmt "$p")" "$(fmt "$l")" \
    "$(fmt "$m")" "$(fmt "$i")" "$(ratio "$p" "$m")" "$(ratio "$l" "$m")"
done
echo "(Mpps, medians of $REPS interleaved runs; ratios to testpmd mac-fwd of the same runs)"

# spread: every series' lowest and highest run next to its median
printf '\n%-5s %8s %-14s %8s %8s %8s %8s\n' proto clients series median min max range
while read -r proto n; do
  while read -r key; do
    vals=$(runs_of "$key" | sort -g)
    [[ -z $vals ]] && continue
    md=$(median <<<"$vals")
    lo=$(head -1 <<<"$vals")
    hi=$(tail -1 <<<"$vals")
    printf '%-5s %8s %-14s %8.2f %8.2f %8.2f %7.0f%%\n' "$proto" "$n" "${key##* }" "$md" "$lo" "$hi" \
      "$(awk -v a="$lo" -v b="$hi" -v m="$md" 'BEGIN {print (m > 0 ? (b - a) / m * 100 : 0)}')"
  done < <(series_of "$proto" "$n")
done <<<"$SHAPES"
echo "(range = (max - min) / median over the $REPS runs)"

# medians by client count (UDP), one column per forwarder: the plot's data
{
  printf 'clients'
  for k in $KINDS; do printf '\tpmdlb-%s' "$k"; done
  printf '\ttestpmd-mac\ttestpmd-io\tl3fwd-em\n'
  for n in $CLIENTS; do
    printf '%s' "$n"
    for k in $KINDS mac io l3fwd; do printf '\t%s' "$(med_of "udp $n $k")"; done
    printf '\n'
  done
} >"$MEDS"
echo "runs: $RAW"
echo "medians: $MEDS"

plot() { # medians.tsv png
  local machine sep= biggest=1 n
  for n in $CLIENTS; do if ((n > biggest)); then biggest=$n; fi; done
  machine=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
  gnuplot <<GNUPLOT
set terminal pngcairo size 800,560 font "sans,10" noenhanced
set output "$2"
set datafile separator "\t"
set datafile missing "nan"
set key below maxrows 2
set logscale x 2
set xtics ($(for n in $CLIENTS; do printf '%s"%s" %s' "$sep" "$(sed -E ':a; s/([0-9])([0-9]{3})($|,)/\1,\2\3/; ta' <<<"$n")" "$n"; sep=", "; done))
set xrange [0.5:$((biggest * 2))]
set xlabel "clients (UDP, one 60-byte frame each, the pcap replayed)"
set ylabel "Mpps (one forwarding core)"
set yrange [0:*]
set grid ytics
set title "net_pcap infinite_rx -> net_null, medians of $REPS interleaved runs ($machine, $(nproc) vCPU)"
plot "$1" using 1:5 title "testpmd mac-fwd: the floor" with linespoints lw 4 lc rgb "black" dt 2 pt 7, \
     "" using 1:6 title "testpmd io-fwd" with linespoints lw 1.5 lc rgb "gray50" pt 6, \
     "" using 1:7 title "l3fwd --lookup em" with linespoints lw 2 lc rgb "#d95f02" pt 5, \
     "" using 1:2 title "pmdlb non-persistent" with linespoints lw 2 lc rgb "#1b9e77" pt 9, \
     "" using 1:3 title "pmdlb persistent" with linespoints lw 2 lc rgb "#7570b3" pt 11, \
     "" using 1:4 title "pmdlb fwmark" with linespoints lw 2 lc rgb "#e7298a" pt 13
GNUPLOT
}
if ! command -v gnuplot >/dev/null; then
  echo "bench.sh: gnuplot not installed (scripts/install-deps.sh); no plot" >&2
elif plot "$MEDS" "$PNG" && [[ -s $PNG ]]; then
  echo "plot: $PNG"
else
  echo "bench.sh: gnuplot failed; no plot" >&2
fi
