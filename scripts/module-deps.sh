#!/usr/bin/env bash
# The dependencies between the top-level modules of src/ (a folder or a
# file under src/ is one module): prints "A -> B" for every module A whose
# code names crate::B, then checks with tsort that there is no circle.
# Exit 0: no circle; 1: a circle (tsort names the modules in it).
set -u
cd "$(dirname "$0")/../src" || exit 2
edges=$(
    for f in $(find . -name '*.rs' | sort); do
        m=${f#./}; m=${m%%/*}; m=${m%.rs}
        case $m in main | lib) continue ;; esac
        # Code lines only (not comments), every crate::NAME they name.
        grep -v '^\s*//' "$f" | grep -o 'crate::[a-z_]*' | sed 's/crate:://' |
            while read -r dep; do [ "$dep" != "$m" ] && echo "$m $dep"; done
    done | sort -u
)
echo "$edges" | awk 'NF == 2 { print $1 " -> " $2 }'
if out=$(echo "$edges" | tsort 2>&1 >/dev/null) && [ -z "$out" ]; then
    echo "no circle between the modules of src/"
else
    echo "$out" | sed 's/^tsort: /circle: /'
    exit 1
fi
