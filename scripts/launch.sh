#!/usr/bin/env bash
# Starts pmdlb on bare metal or virtual devices: core mask/list → EAL
# arguments, hugepage check, optional NIC binding, then `pmdlb run`.
#
#   scripts/launch.sh --config dpdk-config/baremetal.toml -c 0x7
#   scripts/launch.sh --config dpdk-config/baremetal.toml -l 0-2 --bind 0000:01:00.0,0000:01:00.1
#   scripts/launch.sh --config dpdk-config/af_packet.toml            # cores from the config
#
# Options:
#   --config FILE      pmdlb configuration (required)
#   -c MASK            EAL core mask (hex), overrides the config
#   -l LIST            EAL core list ("0-2,4"), overrides the config
#   --bind PCI[,PCI]   bind these NICs to vfio-pci with dpdk-devbind.py first
#   --driver NAME      driver for --bind (default vfio-pci)
#   --pages N          ensure N 2 MiB hugepages (default: what `pmdlb check`
#                      says the mbuf pool and the tables take plus 256 MiB
#                      for EAL, or eal.memory_mb if more; at least 1024)
#   --bin PATH         pmdlb binary (default target/release/pmdlb, built if missing)
#   -- ARGS            extra EAL arguments
set -euo pipefail
cd "$(dirname "$0")/.."

config="" mask="" list="" bind="" driver=vfio-pci pages="" bin=target/release/pmdlb
extra=()
while (($#)); do
  case "$1" in
    --config) config=$2; shift 2 ;;
    -c) mask=$2; shift 2 ;;
    -l) list=$2; shift 2 ;;
    --bind) bind=$2; shift 2 ;;
    --driver) driver=$2; shift 2 ;;
    --pages) pages=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "launch.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n $config ]] || { echo "launch.sh: --config FILE is required" >&2; exit 2; }
[[ -z $mask || -z $list ]] || { echo "launch.sh: give -c or -l, not both" >&2; exit 2; }

if [[ ! -x $bin ]]; then
  cargo build --release --bins
fi

# Validate before touching hugepages or NICs.
summary=$("$bin" check --config "$config")
if [[ -z $pages ]]; then
  # "mbufs N cache C size S" and "memory auto: W x A MiB + P MiB = T MiB"
  pages=$(awk '
    / mbufs [0-9]+ cache [0-9]+ size [0-9]+/ {
      for (i = 1; i < NF; i++) { if ($i == "mbufs") n = $(i + 1); if ($i == "size") sz = $(i + 1) }
    }
    /^ +memory [a-z]+: / { t = ($2 == "heap:" ? 0 : $(NF - 1)) }
    /^EAL / { for (i = 1; i < NF; i++) if ($i == "-m") m = $(i + 1) }
    END {
      mib = n * (sz + 192) / 1048576 + t + 256
      if (m > mib) mib = m
      p = int((mib + 1) / 2) + 1
      print (p < 1024 ? 1024 : p)
    }' <<<"$summary")
fi

if ! grep -Eq 'no_huge|hugepages *= *false' "$config"; then
  scripts/setup-hugepages.sh "$pages"
fi

if [[ -n $bind ]]; then
  command -v dpdk-devbind.py >/dev/null || { echo "launch.sh: dpdk-devbind.py missing (scripts/install-deps.sh)" >&2; exit 1; }
  if [[ $driver == vfio-pci ]]; then
    modprobe vfio-pci
  fi
  IFS=, read -ra devs <<<"$bind"
  for d in "${devs[@]}"; do
    dpdk-devbind.py --force -b "$driver" "$d"
  done
  dpdk-devbind.py --status-dev net | sed 's/^/launch.sh: /'
fi

args=(run --config "$config")
[[ -n $mask ]] && args+=(--coremask "$mask")
[[ -n $list ]] && args+=(--lcores "$list")
if ((${#extra[@]})); then
  args+=(-- "${extra[@]}")
fi
echo "launch.sh: $bin ${args[*]}"
exec "$bin" "${args[@]}"
