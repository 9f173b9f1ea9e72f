#!/usr/bin/env bash
# Builds (or removes) the several-directors topology: clients behind a router
# that runs BIRD 2 with ECMP and BGP sessions to two director namespaces, each
# running its own BIRD that exports the VIP host routes pmdlb keeps in table
# 100 ([announce] in pmdlb's configuration). Everything lives in namespaces
# named "${PFX}-*" (PFX defaults to "pbgp") and BIRD's files in
# ${PMDLB_BGP_DIR:-/tmp/${PFX}-bird}, so removal is complete.
#
#   client ns  ${PFX}-cl : cl0 10.210.0.2..(1+CLIENTS)/24, default via the router
#   router ns  ${PFX}-rt : rtc 10.210.0.1 (clients), rta 10.210.1.1 (brA),
#                          rtb 10.210.2.1 (brB), rts 10.210.9.1 (brS, the
#                          servers' return path); BIRD AS 65000, ECMP (merge
#                          paths) into its main table, multipath hash over
#                          the 5-tuple (policy 3, fields 0x37)
#   switch ns  ${PFX}-sw : bridges brA, brB (one per director), brS (servers)
#   directors  ${PFX}-da / ${PFX}-db : lbrx (on brA / brB) and lbtx (on brS)
#                          for pmdlb's net_af_packet, no kernel addresses;
#                          lbmg 10.210.1.3 / 10.210.2.3 (kernel, on brA / brB)
#                          for BGP; lbhc 10.210.9.4 / 10.210.9.5 (kernel, on
#                          brS) for pmdlb's health checks; BIRD AS 65001 learns table 100 protocol
#                          200 and exports it with next hop 10.210.1.2 /
#                          10.210.2.2 (pmdlb's announce.next_hops)
#   servers    ${PFX}-rs1..N : eth0 10.210.9.1N/24 on brS, VIP on lo,
#                          arp_ignore=1, arp_announce=2, default via the router
#
# BGP timers are short for tests (hold 3 s, keepalive 1 s); see README
# "Several directors behind ECMP (BGP with BIRD)" for bare metal.
#
# Usage: scripts/netns-bgp.sh up [SERVERS] [CLIENTS] | down | bird ROLE | birdc ROLE ARGS...
set -euo pipefail

PFX=${PMDLB_NS_PREFIX:-pbgp}
VIP=${PMDLB_VIP:-10.210.100.100}
DIR=${PMDLB_BGP_DIR:-/tmp/${PFX}-bird}
TABLE=100
PROTO=200

ns() { ip netns exec "$PFX-$1" "${@:2}"; }

veth_pair() { # name-in-a ns-a name-in-b ns-b
  ip link add "$1" netns "$PFX-$2" type veth peer name "$3" netns "$PFX-$4"
  for side in "$1:$2" "$3:$4"; do
    local dev=${side%%:*} n=${side##*:}
    # Software checksums: a frame that passed a DPDK forwarder must be whole.
    ns "$n" ethtool -K "$dev" tx off rx off >/dev/null 2>&1 || true
    ns "$n" ip link set "$dev" up
  done
}

on_bridge() { # dev-in-sw bridge
  ns sw ip link set "$1" master "$2"
}

router_conf() {
  cat <<EOF
log "$DIR/rt.log" all;
router id 10.210.0.1;
protocol device { scan time 2; }
# Both directors' routes for a VIP, merged into one multipath kernel route.
protocol kernel {
  ipv4 { import none; export where source = RTS_BGP; };
  merge paths on;
}
template bgp director {
  local as 65000;
  hold time 3; keepalive time 1;
  connect retry time 1; error wait time 1, 2;
  graceful restart off;
  ipv4 { import all; export none; };
}
protocol bgp da from director { neighbor 10.210.1.3 as 65001; }
protocol bgp db from director { neighbor 10.210.2.3 as 65001; }
EOF
}

director_conf() { # role mgmt-addr next-hop
  cat <<EOF
log "$DIR/$1.log" all;
router id $2;
protocol device { scan time 1; }
# pmdlb's host routes: table $TABLE, protocol $PROTO (announce.table/protocol).
protocol kernel pmdlb {
  kernel table $TABLE;
  learn;
  scan time 1;
  ipv4 { import where krt_source = $PROTO; export none; };
}
protocol bgp uplink {
  local $2 as 65001;
  neighbor ${2%.*}.1 as 65000;
  hold time 3; keepalive time 1;
  connect retry time 1; error wait time 1, 2;
  graceful restart off;
  # Traffic goes to pmdlb's RX NIC (it answers ARP for the next hop), not
  # to this kernel interface.
  ipv4 { import none; export filter { if proto = "pmdlb" then { bgp_next_hop = $3; accept; } reject; }; };
}
EOF
}

bird_start() { # role
  local r=$1
  rm -f "$DIR/$r.ctl"
  ns "$r" bird -c "$DIR/$r.conf" -s "$DIR/$r.ctl" -P "$DIR/$r.pid"
}

bird_stop() { # role
  local pid
  pid=$(cat "$DIR/$1.pid" 2>/dev/null || true)
  [[ -n $pid ]] && kill "$pid" 2>/dev/null || true
  rm -f "$DIR/$1.pid" "$DIR/$1.ctl"
}

down() {
  for r in rt da db; do bird_stop "$r"; done
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${PFX}-(cl|sw|rt|da|db|rs[0-9]+)$" || true); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$DIR"
}

director() { # role bridge mgmt-addr next-hop check-addr
  local r=$1
  veth_pair lbrx "$r" "sw${r}rx" sw
  on_bridge "sw${r}rx" "$2"
  veth_pair lbtx "$r" "sw${r}tx" sw
  on_bridge "sw${r}tx" brS
  veth_pair lbmg "$r" "sw${r}mg" sw
  on_bridge "sw${r}mg" "$2"
  veth_pair lbhc "$r" "sw${r}hc" sw
  on_bridge "sw${r}hc" brS
  ns "$r" sysctl -qw net.ipv6.conf.lbrx.disable_ipv6=1 net.ipv6.conf.lbtx.disable_ipv6=1 \
    net.ipv6.conf.lbmg.disable_ipv6=1 net.ipv6.conf.lbhc.disable_ipv6=1
  ns "$r" ip addr add "$3/24" dev lbmg
  ns "$r" ip addr add "$5/24" dev lbhc
  director_conf "$r" "$3" "$4" >"$DIR/$r.conf"
}

up() {
  local servers=${1:-2} clients=${2:-8}
  command -v bird >/dev/null || { echo "netns-bgp: bird not found; run scripts/install-deps.sh" >&2; exit 1; }
  down
  # A step that fails leaves nothing half built.
  trap down ERR
  mkdir -p "$DIR"
  for n in cl sw rt da db $(seq -f "rs%g" 1 "$servers"); do
    ip netns add "$PFX-$n"
    ns "$n" ip link set lo up
  done
  for b in brA brB brS; do
    ns sw ip link add "$b" type bridge forward_delay 0 mcast_snooping 0
    ns sw ip link set "$b" up
  done

  veth_pair cl0 cl rtc rt
  for pair in rta:brA rtb:brB rts:brS; do
    veth_pair "${pair%%:*}" rt "sw${pair%%:*}" sw
    on_bridge "sw${pair%%:*}" "${pair##*:}"
  done
  ns rt sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0
  # The multipath hash over the 5-tuple only, as a hardware router's. Not
  # policy 1: it takes a packet's skb->hash when one is set, and a packet
  # from a local socket that crossed a veth still carries its socket's
  # random txhash (rethought on retransmissions) — a flow's path would be
  # neither what `ip route get ... sport ... dport` says nor stable.
  # Policy 3 (Linux 5.12+) dissects the fields below (src/dst address,
  # protocol, src/dst port); older kernels fall back to policy 1.
  ns rt sysctl -qw net.ipv4.fib_multipath_hash_policy=3 net.ipv4.fib_multipath_hash_fields=0x0037 2>/dev/null ||
    ns rt sysctl -qw net.ipv4.fib_multipath_hash_policy=1
  for d in rtc rta rtb rts; do ns rt sysctl -qw "net.ipv4.conf.$d.rp_filter=0"; done
  ns rt ip addr add 10.210.0.1/24 dev rtc
  ns rt ip addr add 10.210.1.1/24 dev rta
  ns rt ip addr add 10.210.2.1/24 dev rtb
  ns rt ip addr add 10.210.9.1/24 dev rts
  ns rt sysctl -qw net.ipv4.conf.all.proxy_arp=0

  for i in $(seq 2 $((clients + 1))); do
    ns cl ip addr add "10.210.0.$i/24" dev cl0
  done
  ns cl ip route add default via 10.210.0.1

  director da brA 10.210.1.3 10.210.1.2 10.210.9.4
  director db brB 10.210.2.3 10.210.2.2 10.210.9.5

  for s in $(seq 1 "$servers"); do
    local r="rs$s"
    veth_pair eth0 "$r" "sw$r" sw
    on_bridge "sw$r" brS
    ns "$r" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
    ns "$r" ip addr add "10.210.9.1$s/24" dev eth0
    ns "$r" ip addr add "$VIP/32" dev lo
    ns "$r" ip route add default via 10.210.9.1
  done

  router_conf >"$DIR/rt.conf"
  for r in rt da db; do bird_start "$r"; done
  trap - ERR
  echo "netns-bgp: topology $PFX up ($servers servers, $clients clients, VIP $VIP; BIRD sockets $DIR/{rt,da,db}.ctl)"
}

case "${1:-}" in
  up) up "${2:-2}" "${3:-8}" ;;
  down) down ;;
  bird) bird_start "$2" ;;
  birdc) r=$2; shift 2; birdc -s "$DIR/$r.ctl" "$@" ;;
  *) echo "usage: $0 up [SERVERS] [CLIENTS] | down | bird ROLE | birdc ROLE ARGS..." >&2; exit 2 ;;
esac
