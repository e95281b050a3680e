#!/usr/bin/env bash
# Runs a command as it would run on a new machine of the kind the project is built on: every
# installed -dev package that such a machine lacks (scripts/fresh-machine-dev-packages.txt lists
# the ones it has) is hidden, its headers, pkg-config files, static archives and .so links gone,
# so that a build which needs one fails here as it would there. Whatever an earlier run or a
# developer installed (libcurl4-openssl-dev, say) cannot make the check pass.
#
# How: a private mount namespace (unshare, as root), and in it each directory holding such files
# is covered by an overlay whose upper layer has a whiteout for each of them. Nothing outside the
# namespace changes; the command's other files and its network are the machine's.
#
#   scripts/as-fresh-machine.sh swift build -c release
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
    echo "usage: scripts/as-fresh-machine.sh COMMAND [ARGUMENT...]" >&2
    exit 64
fi

if [ "${AS_FRESH_MACHINE_INSIDE:-}" != 1 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "scripts/as-fresh-machine.sh: needs root (it mounts overlays in a namespace of its own)" >&2
        exit 77
    fi
    exec unshare --mount --propagation private env AS_FRESH_MACHINE_INSIDE=1 "$0" "$@"
fi

installed=$(dpkg-query -W -f='${Status} ${Package}\n' | awk '$3 == "installed" {print $4}' | grep -- '-dev$' | sort -u)
allowed=$(grep -v '^#' "$here/fresh-machine-dev-packages.txt" | sed 's/:.*//' | sort -u)
extra=$(comm -23 <(echo "$installed") <(echo "$allowed"))

if [ -z "$extra" ]; then
    echo "as on a new machine: no -dev package beyond a new machine's is installed" >&2
    unset AS_FRESH_MACHINE_INSIDE
    exec "$@"
fi

# Each file or link of those packages, by the directory that holds it (the real directory:
# /lib is a link to /usr/lib on Debian 12).
declare -A names=()
count=0
for pkg in $extra; do
    while IFS= read -r path; do
        [ -L "$path" ] || [ -f "$path" ] || continue
        dir=$(realpath "$(dirname "$path")")
        names[$dir]+="$(basename "$path")"$'\n'
        count=$((count + 1))
    done < <(dpkg -L "$pkg")
done

layers=$(mktemp -d /tmp/as-fresh-machine.XXXXXX)
mount -t tmpfs as-fresh-machine "$layers"
# One overlay per outermost directory: a directory below another one that holds such files gets
# its whiteouts in a subdirectory of that one's upper layer, which overlayfs merges with the
# lower one. (An overlay mounted inside another fails where the root file system is an overlay
# already: stacked three deep, "wrong fs type".)
declare -A root=()
n=0
while IFS= read -r dir; do
    [ -n "$dir" ] || continue
    outer=""
    probe=$dir
    while [ "$probe" != "/" ]; do
        probe=$(dirname "$probe")
        if [ -n "${root[$probe]:-}" ]; then outer=$probe; fi
    done
    if [ -z "$outer" ]; then
        n=$((n + 1))
        root[$dir]=$n
        mkdir -p "$layers/$n/upper" "$layers/$n/work"
        outer=$dir
    fi
    sub=${dir#"$outer"}
    mkdir -p "$layers/${root[$outer]}/upper$sub"
    while IFS= read -r name; do
        [ -n "$name" ] && mknod "$layers/${root[$outer]}/upper$sub/$name" c 0 0
    done <<< "${names[$dir]}"
done < <(for dir in "${!names[@]}"; do echo "$(echo "$dir" | tr -cd / | wc -c) $dir"; done | sort -n | cut -d' ' -f2-)
for dir in "${!root[@]}"; do
    mount -t overlay as-fresh-machine -o "lowerdir=$dir,upperdir=$layers/${root[$dir]}/upper,workdir=$layers/${root[$dir]}/work" "$dir"
done

echo "as on a new machine: hidden $count files of $(echo $extra | wc -w) -dev packages a new machine lacks ($(echo $extra))" >&2
unset AS_FRESH_MACHINE_INSIDE
exec "$@"
