# Sourced by every scripts/bench-*.sh: the repository root as the working folder, where results
# go (BENCH_OUT, default bench-out/), the release binaries, and the local servers' addresses.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
OUT=${BENCH_OUT:-$ROOT/bench-out}
STATE=${M2D_STATE:-$ROOT/.state}
BIN=$ROOT/target/release/mysql2ddb
eval "$(scripts/services.sh env)"
export AWS_EC2_METADATA_DISABLED=true
mkdir -p "$OUT"
