#!/usr/bin/env bash
# Installs what pmdlb needs to build, test and run on Debian 12 (idempotent).
# Packages already present are left alone; nothing is fetched when all are.
set -euo pipefail

PKGS=(
  libdpdk-dev dpdk-dev dpdk      # headers + PMD plugins, dpdk-testpmd, dpdk-devbind.py
  libclang-dev pkg-config gcc    # bindgen + C shim
  libpcap-dev                    # net_pcap
  libssl-dev openssl             # https health checks (native-tls); test certificates
  iproute2 ethtool nftables      # network-namespace end-to-end tests
  curl python3 tshark            # clients, HTTP servers, independent decoder
  prometheus                     # promtool check metrics (tests/run_metrics.rs)
  dpdk-doc gnuplot-nox           # DPDK's l3fwd source (scripts/build-l3fwd.sh); bench.sh's plot
  valgrind                       # instructions per packet (scripts/bench-ir.sh)
  linux-perf                     # bench.sh --perf: profile of the forwarding core
  bird2                          # BGP for the several-directors test (tests/e2e_bgp.rs)
  kmod procps iputils-ping
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer once, quietly.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "install-deps: all packages present"
fi

if ! command -v cargo >/dev/null; then
  echo "install-deps: cargo not found; install Rust stable (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "install-deps: cargo-nextest not found; tests will run with cargo test"
fi
