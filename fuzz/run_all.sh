#!/usr/bin/env bash
# Runs every fuzz target for SECONDS (default 600) seconds, one after the
# other, niced, then minimizes each corpus. See docs/fuzzing.md.
#   fuzz/run_all.sh [SECONDS] [TARGET...]
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
SECS=${1:-600}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(datagram client_message upload pdf sdp peer_input)
export RUSTC_BOOTSTRAP=1
mkdir -p logs
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t" "artifacts/$t"
    echo "== $t: ${SECS}s ($(date -u +%H:%M:%S))"
    nice -n 19 cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 > "logs/$t.log" 2>&1
    echo "   exit $? ($(date -u +%H:%M:%S)); $(grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|cov:' "logs/$t.log" | tail -3 | tr '\n' ' ')"
done
