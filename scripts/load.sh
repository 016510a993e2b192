#!/usr/bin/env bash
# An ad-hoc load: N background `fsbench client` commands against a running
# server, all started at once, then a summary (ok/failed, times, exit codes).
# Each command's output goes to a temporary folder, removed at the end unless -k.
set -u

usage() {
    echo "usage: scripts/load.sh [-h] [-n N] [-H HOST] [-p PORT] [-k] CLIENT-COMMAND [ARGS...]"
    echo "  e.g. scripts/load.sh -n 20 -p 7000 get file_10MB.bin --expect-sha256 HEX"
    echo "       scripts/load.sh -n 5 upload work/store/file_10MB.bin"
    echo "       scripts/load.sh -n 50 list"
    echo "  -n N     commands to run at once (default 10)"
    echo "  -H HOST  server address (default 127.0.0.1); -p PORT (default 7000)"
    echo "  -k       keep the outputs (their folder is printed)"
    echo "  FSBENCH=path overrides the binary (default target/release/fsbench)"
}

n=10 host=127.0.0.1 port=7000 keep=0
while getopts ":hn:H:p:k" opt; do
    case $opt in
        h) usage; exit 0 ;;
        n) n=$OPTARG ;;
        H) host=$OPTARG ;;
        p) port=$OPTARG ;;
        k) keep=1 ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
if [ $# -eq 0 ] || ! [[ $n =~ ^[1-9][0-9]*$ ]] || ! [[ $port =~ ^[0-9]+$ ]]; then
    usage >&2
    exit 2
fi
case $1 in
    list|get|upload|delete|stats) ;;
    *) echo "load.sh: unknown client command '$1'" >&2; usage >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FSBENCH:-$here/target/release/fsbench}
if [ ! -x "$bin" ]; then
    echo "load.sh: no binary at $bin (run 'make build' first)" >&2
    exit 2
fi
# A get writes to a file only with -o; without it, the content goes to the
# output file below, which is fine for a load and removed at the end.
out=$(mktemp -d "${TMPDIR:-/tmp}/fsbench-load.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ "$keep" = 1 ] || rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
t0=$(now)
for i in $(seq 1 "$n"); do
    (
        s=$(now)
        "$bin" client "$1" --host "$host" --port "$port" "${@:2}" >"$out/$i.out" 2>"$out/$i.err"
        rc=$?
        e=$(now)
        echo "$rc $s $e" >"$out/$i.res"
    ) &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
pids=()
t1=$(now)

awk -v n="$n" -v t0="$t0" -v t1="$t1" -v cmd="$*" '
    { rc = $1; d = $3 - $2; sum += d; if (min == "" || d < min) min = d; if (d > max) max = d
      if (rc == 0) ok++; else { bad++; codes[rc]++ } }
    END {
        printf "command:   fsbench client %s\n", cmd
        printf "clients:   %d (ok %d, failed %d)\n", n, ok, bad
        printf "wall time: %.3f s\n", t1 - t0
        if (NR > 0) printf "per client: min %.3f s, avg %.3f s, max %.3f s\n", min, sum / NR, max
        for (c in codes) printf "exit code %s: %d\n", c, codes[c]
    }' "$out"/*.res
fails=$(awk '$1 != 0' "$out"/*.res | wc -l)
if [ "$fails" -gt 0 ]; then
    echo "first errors:"
    for f in "$out"/*.err; do [ -s "$f" ] && sed 's/^/  /' "$f"; done | head -5
fi
[ "$keep" = 1 ] && echo "outputs kept in $out"
[ "$fails" -eq 0 ]
