#!/usr/bin/env bash
# Fault-injection suite for `ringwire serve` (see tests/faults/README.md).
#
#   tests/faults/run.sh [--short|--long] [faults.py options and scenario names]
#
# Without --bin, uses target/release/ringwire, building it first
# (cargo build --release -p ringwire-cli) if it is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

have_bin=0
for arg in "$@"; do
    case "$arg" in
        --bin | --bin=*) have_bin=1 ;;
    esac
done

if [[ $have_bin == 0 && ! -x "$root/target/release/ringwire" ]]; then
    echo "run.sh: building target/release/ringwire" >&2
    (cd "$root" && cargo build --release -p ringwire-cli)
fi

# The slow-readers scenario holds ~2000 sockets; the server as many again.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true

exec python3 "$here/faults.py" "$@"
