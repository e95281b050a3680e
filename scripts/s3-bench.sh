#!/usr/bin/env bash
# Loading the bench corpus straight from S3 against loading it from local disk (issue 22).
#
# The S3 side is moto's server on 127.0.0.1 (scripts/s3-harness.py, signature checks on), which
# is slow and single-process: this measures what reading through S3 costs the loader (listing,
# signing, one GET per object streamed through inflate) on top of the same load from disk, not
# what a real bucket's bandwidth would be. Both loads go into fresh SQLite warehouses with
# --jobs 2 and models on, alternating, ROUNDS times; GNU time gives wall and peak RSS.
#
#   scripts/s3-bench.sh                      # 500,000 events in 8 files
#   EVENTS=200000 FILES=200 scripts/s3-bench.sh   # many small objects: per-object overhead
#   LATENCY_MS=30 FILES=400 ...                     # each S3 answer waits 30 ms first, as a real bucket's would
set -euo pipefail
cd "$(dirname "$0")/.."
events=${EVENTS:-500000}
files=${FILES:-8}
rounds=${ROUNDS:-3}
latency=${LATENCY_MS:-0}

swift build -c release --product segment-loader >/dev/null
bin=.build/release/segment-loader
scripts/s3-venv.sh >/dev/null
python=.build-moto/bin/python3

"$bin" bench --events "$events" --files "$files" --generate-only --dir bench-data
corpus=bench-data/corpus-e$events-f$files-s1
work=bench-data/s3-bench
rm -rf "$work"
mkdir -p "$work"

INITIAL_NO_AUTH_ACTION_COUNT=3 "$python" scripts/s3-harness.py serve --port 0 --latency-ms "$latency" >"$work/moto.out" 2>"$work/moto.err" &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    grep -q listening "$work/moto.out" 2>/dev/null && break
    sleep 0.2
done
port=$(awk '{print $2}' "$work/moto.out")
endpoint=http://127.0.0.1:$port
read -r key secret < <("$python" scripts/s3-harness.py setup --endpoint "$endpoint")
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_ENDPOINT_URL=$endpoint AWS_REGION=us-east-1
export AWS_SHARED_CREDENTIALS_FILE=/nonexistent AWS_CONFIG_FILE=/nonexistent
"$python" scripts/s3-harness.py put --endpoint "$endpoint" --bucket bench --from "$corpus" --prefix corpus/ >/dev/null
objects=$(find "$corpus" -type f ! -name '.*' | wc -l)
bytes=$(find "$corpus" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s}')
echo "corpus: $events events in $objects objects, $((bytes / 1000000)) MB, uploaded to moto at $endpoint ($latency ms before each answer)"

timed() {  # label, warehouse, source
    rm -f "$2" "$2"-wal "$2"-shm "$2".lock
    /usr/bin/time -f "%e %M" -o "$work/time" "$bin" load --quiet --jobs 2 --db "$2" "$3"
    read -r wall rss <"$work/time"
    echo "$1 $wall $rss"
}

results=$work/results
: >"$results"
for round in $(seq 1 "$rounds"); do
    timed disk "$work/disk.sqlite" "$corpus" | tee -a "$results"
    timed s3 "$work/s3.sqlite" "s3://bench/corpus/" | tee -a "$results"
done
# The two warehouses hold the same rows.
for table in tracks pages identifies sessions; do
    a=$(sqlite3 "$work/disk.sqlite" "SELECT count(*) FROM $table")
    b=$(sqlite3 "$work/s3.sqlite" "SELECT count(*) FROM $table")
    [ "$a" = "$b" ] || { echo "rows differ in $table: disk $a, s3 $b"; exit 1; }
done
awk -v objects="$objects" '
    { wall[$1] += $2; n[$1]++; if ($3 > rss[$1]) rss[$1] = $3 }
    END {
        d = wall["disk"] / n["disk"]; s = wall["s3"] / n["s3"]
        printf "disk: mean wall %.2f s, peak RSS %d MB\n", d, rss["disk"] / 1024
        printf "s3:   mean wall %.2f s, peak RSS %d MB\n", s, rss["s3"] / 1024
        printf "s3/disk: %.2fx; %.1f ms more per object\n", s / d, (s - d) * 1000 / objects
    }' "$results"
