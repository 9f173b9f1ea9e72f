#!/usr/bin/env bash
# Builds (or removes) the network-namespace topology pmdlb's demo and
# end-to-end tests run in. Everything lives in namespaces named
# "${PFX}-*" (PFX defaults to "pmdlb"), so removal is complete.
#
#   client ns  ${PFX}-cl : cl0 with 10.100.0.2..(1+CLIENTS)/24 (and fd00:100::2../64)
#   switch ns  ${PFX}-sw : bridges brA (client side) and brB (server side)
#   router ns  ${PFX}-rt : 10.100.0.1 on brA, 10.100.1.1 on brB (return path only)
#   lb ns      ${PFX}-lb : lbrx (on brA) and lbtx (on brB), no kernel addresses;
#                          pmdlb binds them with net_af_packet
#   servers    ${PFX}-rs1..N : eth0 10.100.1.1N/24, VIP on lo, arp_ignore=1,
#                          arp_announce=2, default route via the router
#
# Usage: scripts/netns.sh up [SERVERS] [CLIENTS] | down | exec NAME CMD...
set -euo pipefail

PFX=${PMDLB_NS_PREFIX:-pmdlb}
VIP=${PMDLB_VIP:-10.100.0.100}
VIP6=${PMDLB_VIP6:-fd00:100::100}

ns() { ip netns exec "$PFX-$1" "${@:2}"; }

veth_pair() { # name-in-a ns-a name-in-b ns-b
  ip link add "$1" netns "$PFX-$2" type veth peer name "$3" netns "$PFX-$4"
  for side in "$1:$2" "$3:$4"; do
    local dev=${side%%:*} n=${side##*:}
    # Veths leave partial checksums that real servers would reject once a
    # frame has passed through a DPDK forwarder: compute them in software.
    ns "$n" ethtool -K "$dev" tx off rx off >/dev/null 2>&1 || true
    ns "$n" ip link set "$dev" up
  done
}

down() {
  for n in $(ip netns list | awk '{print $1}' | grep -E "^${PFX}-(cl|sw|rt|lb|rs[0-9]+)$" || true); do
    ip netns pids "$n" 2>/dev/null | xargs -r kill 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
}

up() {
  local servers=${1:-3} clients=${2:-12}
  down
  for n in cl sw rt lb $(seq -f "rs%g" 1 "$servers"); do
    ip netns add "$PFX-$n"
    ns "$n" ip link set lo up
    ns "$n" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0
  done
  ns sw ip link add brA type bridge
  ns sw ip link add brB type bridge
  ns sw ip link set brA up
  ns sw ip link set brB up
  # Bridges forward at once (no STP delay, no multicast snooping surprises).
  ns sw ip link set brA type bridge forward_delay 0 mcast_snooping 0
  ns sw ip link set brB type bridge forward_delay 0 mcast_snooping 0

  veth_pair cl0 cl swcl sw
  ns sw ip link set swcl master brA
  veth_pair rta rt swrta sw
  ns sw ip link set swrta master brA
  veth_pair rtb rt swrtb sw
  ns sw ip link set swrtb master brB
  veth_pair lbrx lb swlbrx sw
  ns sw ip link set swlbrx master brA
  veth_pair lbtx lb swlbtx sw
  ns sw ip link set swlbtx master brB
  # The lb namespace's kernel must not answer or emit anything on the DPDK
  # interfaces: no addresses, no IPv6 autoconfiguration.
  ns lb sysctl -qw net.ipv6.conf.lbrx.disable_ipv6=1 net.ipv6.conf.lbtx.disable_ipv6=1

  ns rt sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
  ns rt sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.rta.rp_filter=0 net.ipv4.conf.rtb.rp_filter=0
  ns rt ip addr add 10.100.0.1/24 dev rta
  ns rt ip addr add 10.100.1.1/24 dev rtb
  ns rt ip -6 addr add fd00:100::1/64 dev rta nodad
  ns rt ip -6 addr add fd00:101::1/64 dev rtb nodad
  # The router must never claim the VIP: no proxy ARP/NDP.
  ns rt sysctl -qw net.ipv4.conf.all.proxy_arp=0

  for i in $(seq 2 $((clients + 1))); do
    ns cl ip addr add "10.100.0.$i/24" dev cl0
    ns cl ip -6 addr add "fd00:100::$i/64" dev cl0 nodad
  done
  ns cl ip route add 10.100.1.0/24 via 10.100.0.1
  ns cl ip -6 route add fd00:101::/64 via fd00:100::1

  for s in $(seq 1 "$servers"); do
    local r="rs$s"
    veth_pair eth0 "$r" "sw$r" sw
    ns sw ip link set "sw$r" master brB
    ns "$r" sysctl -qw net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
      net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 \
      net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0
    ns "$r" ip addr add "10.100.1.1$s/24" dev eth0
    ns "$r" ip -6 addr add "fd00:101::1$s/64" dev eth0 nodad
    ns "$r" ip addr add "$VIP/32" dev lo
    ns "$r" ip -6 addr add "$VIP6/128" dev lo nodad
    ns "$r" ip route add default via 10.100.1.1
    ns "$r" ip -6 route add default via fd00:101::1
  done
  echo "netns: topology $PFX up ($servers servers, $clients clients, VIP $VIP / $VIP6)"
}

case "${1:-}" in
  up) up "${2:-3}" "${3:-12}" ;;
  down) down ;;
  exec) n=$2; shift 2; ns "$n" "$@" ;;
  *) echo "usage: $0 up [SERVERS] [CLIENTS] | down | exec NAME CMD..." >&2; exit 2 ;;
esac
