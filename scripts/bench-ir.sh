#!/usr/bin/env bash
# Instructions per packet of the decision: the criterion `decide` bench
# run under valgrind's callgrind, which counts every instruction the
# burst decision (`decide_burst_hinted`, everything it calls included)
# executes, divided by the packets it decided. Unlike a timing this does
# not move with the machine's load: two builds compare exactly, on a
# shared 2-core VM too, in the hot cases (the 64k ones move by up to 4 %
# between runs of one build, with the number of bursts the profiled
# seconds hold: compare those over several runs). It says nothing about cache misses (callgrind
# does not model the memory system here), so the 64k and 1M cases show
# the instructions a miss-free run would take, not their time.
#
# Usage: scripts/bench-ir.sh [--bin DECIDE_BENCH_BINARY] [CASE_REGEX...]
#   default cases: decide/hot/ decide/clients_64k/ decide/new_conn/
#   --bin  a decide bench binary (e.g. a copy of an earlier commit's
#          target/release/deps/decide-*) instead of building this tree's.
# Needs valgrind (scripts/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=
CASES=()
while (($#)); do
  case $1 in
    --bin) BIN=$2; shift ;;
    -h|--help) sed -n 2,15p "$0"; exit 0 ;;
    *) CASES+=("$1") ;;
  esac
  shift
done
((${#CASES[@]})) || CASES=(decide/hot/ decide/clients_64k/ decide/new_conn/)
command -v valgrind >/dev/null || { echo "bench-ir.sh: valgrind missing (scripts/install-deps.sh)" >&2; exit 1; }

if [[ -z $BIN ]]; then
  BIN=$(cargo bench --bench decide --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*decide-[0-9a-f]*\)).*/\1/p' | tail -1)
fi
[[ -x $BIN ]] || { echo "bench-ir.sh: no decide bench binary ($BIN)" >&2; exit 1; }
# callgrind_annotate names the callers only of a binary started by its full path
BIN=$(realpath "$BIN")

OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
BURST=32 # frames per decide_burst call (benches/common/frames.rs)

printf '%-36s %10s %12s\n' case bursts 'Ir/packet'
for pattern in "${CASES[@]}"; do
  for name in $("$BIN" --list 2>/dev/null | sed -n 's/: benchmark$//p' | grep -E -- "$pattern"); do
    f=$OUT/cg
    valgrind --tool=callgrind --callgrind-out-file="$f" "$BIN" --bench "^$name\$" \
      --profile-time 3 >/dev/null 2>&1
    # inclusive Ir of decide_burst_hinted and the calls into it
    # (from the repository, it names files relative to it and loses callers)
    (cd "$OUT" && callgrind_annotate --inclusive=yes --tree=caller "$f" 2>/dev/null) | awk -v b=$BURST -v n="$name" '
      / < / { if (match($0, /\([0-9,]+x\)/)) { c = substr($0, RSTART + 1, RLENGTH - 3); gsub(",", "", c); pend += c }; next }
      /\*  .*decide_burst_hinted \[/ { ir = $1; gsub(",", "", ir); calls = pend; done = 1 }
      { if (!done) pend = 0 }
      END { if (calls > 0) printf "%-36s %10d %12.1f\n", n, calls, ir / calls / b; else printf "%-36s %10s %12s\n", n, "-", "no data" }'
  done
done
