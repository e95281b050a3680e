#!/usr/bin/env bash
# The release check of README's promise that its first command is all the set-up: a fresh clone
# of this repository's HEAD, built and run with scripts/as-fresh-machine.sh (every -dev package a
# new machine lacks hidden), must run README's first command, exit 0 and print what README shows
# under it (timings aside). The binary must not need libcurl to start (it opens it only for an
# s3:// source). .ci/run runs this; it takes a release build of the clone, 2 to 4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

# README's first command and the output it shows: the first "$ swift run" line of a console
# block and the lines after it up to the block's end.
command=$(awk '/^\$ swift run / {print substr($0, 3); exit}' README.md)
expected=$(awk 'found && /^```/ {exit} found {print} /^\$ swift run / && !found {found = 1}' README.md)
if [ -z "$command" ] || [ -z "$expected" ]; then
    echo "fresh-clone-check: README.md shows no '\$ swift run' command with its output" >&2
    exit 1
fi

work=$(mktemp -d /tmp/segment-loader-fresh.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q "$repo" "$work/clone"
cd "$work/clone"
echo "fresh-clone-check: $(git log -1 --format='%h %s' | cut -c1-72) in $work/clone"
echo "fresh-clone-check: \$ $command"

start=$(date +%s)
status=0
timeout 1800 "$repo/scripts/as-fresh-machine.sh" bash -c "$command" > "$work/stdout" 2> "$work/stderr" || status=$?
seconds=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ]; then
    echo "fresh-clone-check: FAILED: README's first command exited $status after $seconds s on a fresh clone" >&2
    tail -n 40 "$work/stderr" >&2
    tail -n 20 "$work/stdout" >&2
    exit 1
fi

# What SwiftPM prints while it fetches and builds is not the loader's output.
build_noise='^(\[[0-9]+/[0-9]+\] |Building for |Build of product |Build complete|Compiling |Fetching |Fetched |Computing version|Computed |Creating working copy|Working copy of |Updating |Updated |Resolving |Resolved |Planning build|Write |warning: )'
timings='s/[0-9]+(\.[0-9]+)? s\b/T s/g; s/[0-9]+ messages\/s/N messages\/s/g'
grep '^as on a new machine: ' "$work/stderr" | sed 's/^/fresh-clone-check: /' || true
actual=$(cat "$work/stdout" "$work/stderr" | grep -Ev "$build_noise" | grep -v '^as on a new machine: ' | sed -E "$timings")
wanted=$(echo "$expected" | sed -E "$timings")
if [ "$actual" != "$wanted" ]; then
    echo "fresh-clone-check: FAILED: README's first command printed what README does not show:" >&2
    diff <(echo "$wanted") <(echo "$actual") >&2 || true
    exit 1
fi

binary=$(swift build -c release --show-bin-path)/segment-loader
if readelf -d "$binary" | grep NEEDED | grep -q libcurl; then
    echo "fresh-clone-check: FAILED: $binary links libcurl; it should open it only for an s3:// source" >&2
    exit 1
fi
if ldd "$binary" | grep -q "not found"; then
    echo "fresh-clone-check: FAILED: $binary needs a library this machine lacks:" >&2
    ldd "$binary" | grep "not found" >&2
    exit 1
fi
echo "fresh-clone-check: README's first command built and ran on a fresh clone in $seconds s, exit 0, printing what README shows"
