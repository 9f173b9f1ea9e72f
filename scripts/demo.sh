#!/usr/bin/env bash
# The main job, on a fresh Debian 12 machine as root: installs what is
# missing, builds pmdlb, builds a network-namespace topology (a client
# namespace with 12 addresses, a router, three real servers with the VIP on
# lo and arp_ignore, pmdlb on net_af_packet with separate RX and TX
# interfaces), runs real HTTP requests through the VIP and shows balancing,
# persistence and fwmark grouping. Removes everything it made on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release --bins
BIN=$PWD/target/release/pmdlb
CONFIG=$PWD/dpdk-config/af_packet.toml
export PMDLB_NS_PREFIX=pmdlb        # the names dpdk-config/af_packet.toml expects
WORK=$(mktemp -d /tmp/pmdlb-demo.XXXXXX)
LB_PID=""

cleanup() {
  if [[ -n $LB_PID ]] && kill -0 "$LB_PID" 2>/dev/null; then
    kill -TERM "$LB_PID"; wait "$LB_PID" 2>/dev/null || true
  fi
  scripts/netns.sh down
  rm -rf "$WORK"
}
trap cleanup EXIT

scripts/netns.sh up 3 12
for s in 1 2 3; do
  mkdir -p "$WORK/rs$s"; echo "rs$s" > "$WORK/rs$s/index.html"
  for port in 80 443 8080; do
    ip netns exec pmdlb-rs$s python3 -m http.server $port --bind :: --directory "$WORK/rs$s" >/dev/null 2>&1 &
  done
done

ip netns exec pmdlb-lb "$BIN" run --config "$CONFIG" --stats-interval 0 >"$WORK/pmdlb.log" 2>&1 &
LB_PID=$!
echo "demo: pmdlb started (log: $WORK/pmdlb.log); resolving real servers by ARP/ND ..."
for _ in $(seq 1 100); do
  if "$BIN" ctl --config "$CONFIG" servers 2>/dev/null | grep -q -- "->" &&
     ! "$BIN" ctl --config "$CONFIG" servers | grep -q unresolved; then break; fi
  sleep 0.2
done
for port in 80 443 8080; do   # wait for the HTTP servers
  for _ in $(seq 1 50); do ip netns exec pmdlb-rs3 ss -ltn | grep -q ":$port " && break; sleep 0.1; done
done

get() { ip netns exec pmdlb-cl curl -s -g -m 5 --interface "$1" "$2" || echo "FAILED"; }
tally() { sort | uniq -c | awk '{printf "%s x%d  ", $2, $1}'; echo; }

echo
echo "== balancing: 12 clients on the fwmark service (ports 80+443, rr, persistent 300 s)"
for i in $(seq 2 13); do get 10.100.0.$i http://10.100.0.100/; done | tally

echo "== persistence: client 10.100.0.5 makes 10 requests"
for _ in $(seq 1 10); do get 10.100.0.5 http://10.100.0.100/; done | tally

echo "== fwmark grouping: the same client on port 80 and on port 443"
for i in 2 3 4; do
  echo "   client 10.100.0.$i: port 80 -> $(get 10.100.0.$i http://10.100.0.100/), port 443 -> $(get 10.100.0.$i http://10.100.0.100:443/)"
done

echo "== not persistent: 9 connections from one client to port 8080 (wrr)"
for _ in $(seq 1 9); do get 10.100.0.5 http://10.100.0.100:8080/; done | tally

echo "== a run-time change with ipvsadm's command line: quiesce 10.100.1.11 on port 8080, 9 more connections"
"$BIN" admin --config "$CONFIG" -e -t 10.100.0.100:8080 -r 10.100.1.11 -w 0
for _ in $(seq 1 9); do get 10.100.0.5 http://10.100.0.100:8080/; done | tally
"$BIN" admin --config "$CONFIG" -L -n -t 10.100.0.100:8080 | sed 's/^/   /'
echo "== the rule set as ipvsadm-save prints it (pmdlb admin -S -n)"
"$BIN" admin --config "$CONFIG" -S -n | sed 's/^/   /'

echo "== IPv6 VIP [fd00:100::100]:80, 6 connections"
for _ in $(seq 1 6); do ip netns exec pmdlb-cl curl -s -g -m 5 "http://[fd00:100::100]/" || echo FAILED; done | tally

echo "== the client learned the VIP's MAC from pmdlb (no static ARP):"
ip netns exec pmdlb-cl ip neigh show 10.100.0.100 | sed 's/^/   /'

echo "== pmdlb ctl servers"
"$BIN" ctl --config "$CONFIG" servers | sed 's/^/   /'

kill -TERM "$LB_PID"; wait "$LB_PID" || true; LB_PID=""
echo "== pmdlb stopped (SIGTERM):"
grep -E "^(rx|forwarded|replies) |^drop.total|^accounting|^mbufs|stopped cleanly" "$WORK/pmdlb.log" | sed 's/^/   /'
