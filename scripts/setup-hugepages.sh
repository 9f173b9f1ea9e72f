#!/usr/bin/env bash
# Reserves 2 MiB hugepages and mounts hugetlbfs at /dev/hugepages (idempotent).
# Usage: scripts/setup-hugepages.sh [PAGES]   (default 512 = 1 GiB)
set -euo pipefail

want=${1:-512}
nr=/proc/sys/vm/nr_hugepages
have=$(cat "$nr")
if ((have < want)); then
  echo "$want" > "$nr"
  have=$(cat "$nr")
  echo "setup-hugepages: reserved $have x 2 MiB pages (asked for $want)"
else
  echo "setup-hugepages: $have x 2 MiB pages already reserved"
fi
if ((have < want)); then
  echo "setup-hugepages: warning: only $have of $want pages could be reserved (memory fragmented?)" >&2
fi

mkdir -p /dev/hugepages
if ! mountpoint -q /dev/hugepages; then
  mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages
  echo "setup-hugepages: mounted hugetlbfs on /dev/hugepages"
else
  echo "setup-hugepages: /dev/hugepages already mounted"
fi
grep -E "HugePages_(Total|Free)" /proc/meminfo | sed 's/^/setup-hugepages: /'
