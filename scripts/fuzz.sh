#!/usr/bin/env bash
# Fuzzes the line parser and the normalizer with libFuzzer (issue 5).
#   scripts/fuzz.sh [SECONDS]     default 60; CI runs it for 60 seconds
# Builds Sources/segment-loader-fuzz with -sanitize=fuzzer,address into .build-fuzz/ (AddressSanitizer:
# without it, heap corruption deadlocks libFuzzer's crash handler instead of reporting), seeds the corpus
# with every line of Tests/Fixtures/hostile and sample-data, and keeps what it finds:
#   .build-fuzz/corpus/     inputs that reached new code (kept between runs)
#   .build-fuzz/crashes/    inputs that crashed; replay one with
#                           swift run segment-loader-fuzz .build-fuzz/crashes/crash-...
#                           and, once fixed, keep it in Tests/Fixtures/fuzz/ (FuzzRegressionTests
#                           replays that folder in `swift test`).
# Exits non-zero when the fuzzer found a crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
out=.build-fuzz
mkdir -p "$out/corpus" "$out/crashes" "$out/seeds"

swift build -c release --build-path "$out/asan" --product segment-loader-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING 2>&1 | tail -1
binary="$(swift build -c release --build-path "$out/asan" --show-bin-path)/segment-loader-fuzz"

# Seeds: one file per line of the fixtures and sample data (lines over 64 KiB are cut).
python3 - "$out/seeds" <<'PY'
import glob, gzip, os, sys
out = sys.argv[1]
n = 0
for path in sorted(glob.glob("Tests/Fixtures/fuzz/*")):  # inputs it once crashed on, whole
    with open(os.path.join(out, f"seed-{n:05d}"), "wb") as f: f.write(open(path, "rb").read()[:65536])
    n += 1
for path in sorted(glob.glob("Tests/Fixtures/hostile/*") + glob.glob("sample-data/**/*", recursive=True)):
    if os.path.isdir(path): continue
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        if len(data) <= 65536:  # the archive as it is, for the gzip layer
            with open(os.path.join(out, f"seed-{n:05d}"), "wb") as f: f.write(data)
            n += 1
        try: data = gzip.decompress(data)
        except Exception: pass
    for line in data.split(b"\n"):
        if not line.strip(): continue
        with open(os.path.join(out, f"seed-{n:05d}"), "wb") as f: f.write(line[:65536])
        n += 1
print(f"{n} seed lines", file=sys.stderr)
PY

# The Swift runtime's backtracer would take the crash before libFuzzer can save the input.
# `timeout`: a hard stop in case the fuzzer itself hangs.
SWIFT_BACKTRACE=enable=no timeout --signal=KILL $((seconds + 120)) "$binary" "$out/corpus" "$out/seeds" \
    -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=4096 \
    -artifact_prefix="$out/crashes/" -print_final_stats=1 > "$out/fuzz.log" 2>&1 || {
    status=$?
    grep -v '^#[0-9]' "$out/fuzz.log" | tail -60
    echo "fuzzing failed (exit $status); inputs that crashed are in $out/crashes/" >&2
    exit 1
}
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' "$out/fuzz.log" || tail -5 "$out/fuzz.log"
