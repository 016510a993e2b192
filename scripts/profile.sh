#!/usr/bin/env bash
# One scenario with the server under a profiler: `perf stat`, `perf record -g`
# or `strace -c -f`. The profiler's output, the pool's summary and the server's
# log are saved under results/ as profile_<UTC>_<tool>_<mode>.*
set -u

usage() {
    echo "usage: scripts/profile.sh [-h] -t stat|record|strace [-m thread|process] [-s SERVER_POOL]"
    echo "                          [-o download|upload|list] [-v VOLUME] [-c CLIENTS] [-F] [-C CC]"
    echo "  defaults: -m thread -s 5 -o download -v 10 (MB; 100KB works too) -c 5"
    echo "  -F       server without fsync (--no-fsync)"
    echo "  -C CC    --tcp-congestion of the server and the clients: auto (the default), system or a name"
    echo "  needs perf (stat, record) or strace; FSBENCH=path overrides the binary;"
    echo "  PERF_FREQ=Hz sets perf record's sampling rate (its default is 4000)"
}

tool="" mode=thread spool=5 op=download vol=10 clients=5 nofsync="" cc=auto
while getopts ":ht:m:s:o:v:c:FC:" opt; do
    case $opt in
        h) usage; exit 0 ;;
        t) tool=$OPTARG ;;
        m) mode=$OPTARG ;;
        s) spool=$OPTARG ;;
        o) op=$OPTARG ;;
        v) vol=$OPTARG ;;
        c) clients=$OPTARG ;;
        F) nofsync=--no-fsync ;;
        C) cc=$OPTARG ;;
        *) usage >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
bad() { echo "profile.sh: $1" >&2; usage >&2; exit 2; }
[ $# -eq 0 ] || bad "unexpected arguments: $*"
case $tool in stat|record|strace) ;; "") bad "-t is required" ;; *) bad "unknown tool '$tool'" ;; esac
case $mode in thread|process) ;; *) bad "unknown mode '$mode'" ;; esac
case $op in download|upload|list) ;; *) bad "unknown operation '$op'" ;; esac
[[ $spool =~ ^[1-9][0-9]*$ ]] || bad "-s needs a positive number"
[[ $clients =~ ^[1-9][0-9]*$ ]] || bad "-c needs a positive number"

need=perf
[ "$tool" = strace ] && need=strace
if ! command -v "$need" >/dev/null 2>&1; then
    echo "profile.sh: '$need' is not installed on this machine." >&2
    if [ "$need" = perf ]; then
        echo "  install it (Debian/Ubuntu: apt-get install linux-perf, or linux-tools-\$(uname -r))" >&2
    else
        echo "  install it (Debian/Ubuntu: apt-get install strace)" >&2
    fi
    exit 3
fi
if [ "$need" = perf ] && ! perf stat -e task-clock -o /dev/null true >/dev/null 2>&1; then
    echo "profile.sh: perf is installed but cannot profile here" >&2
    echo "  (kernel.perf_event_paranoid = $(cat /proc/sys/kernel/perf_event_paranoid 2>/dev/null || echo '?'); try: sysctl kernel.perf_event_paranoid=1)" >&2
    exit 3
fi

here=$(cd "$(dirname "$0")/.." && pwd)
bin=${FSBENCH:-$here/target/release/fsbench}
[ -x "$bin" ] || { echo "profile.sh: no binary at $bin (run 'make build' first)" >&2; exit 2; }
cd "$here" || exit 2
mkdir -p results
"$bin" gen-files --dir work/store --sums work/sha256 --volumes "$vol" >/dev/null || exit 1

ts=$(date -u +%Y%m%dT%H%M%SZ)
out=results/profile_${ts}_${tool}_${mode}
# The server gets a store of its own (links to the test files), removed at the
# end: an upload profile leaves no uploads in work/store.
store=work/profile-store-$ts-$$
mkdir -p "$store" || exit 1
trap 'rm -rf "$store"' EXIT
for f in work/store/file_*.bin; do ln "$f" "$store/" 2>/dev/null || cp "$f" "$store/" || exit 1; done
server=("$bin" serve --host 127.0.0.1 --port 0 --mode "$mode" --pool "$spool" --root "$store" --tcp-congestion "$cc" $nofsync)
case $tool in
    stat)   prof=(perf stat -o "$out.perf-stat.txt" --) ;;
    record) prof=(perf record ${PERF_FREQ:+-F $PERF_FREQ} -g -o "$out.perf.data" --) ;;
    strace) prof=(strace -c -f -o "$out.strace.txt") ;;
esac
"${prof[@]}" "${server[@]}" >"$out.listen" 2>"$out.server.log" &
profpid=$!
stop_server() {
    # The server is the profiler's child: SIGTERM it, then let the profiler finish.
    local spid
    spid=$(cat "/proc/$profpid/task/"*/children 2>/dev/null | awk '{print $1; exit}')
    [ -n "$spid" ] && kill -TERM "$spid" 2>/dev/null
    wait "$profpid" 2>/dev/null
}
trap 'stop_server; exit 130' INT TERM

port=""
for _ in $(seq 1 400); do
    port=$(sed -n 's/^LISTENING .*:\([0-9]*\)$/\1/p' "$out.listen" 2>/dev/null)
    [ -n "$port" ] && break
    kill -0 "$profpid" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$port" ]; then
    echo "profile.sh: the server did not start; its log:" >&2
    sed 's/^/  /' "$out.server.log" >&2
    stop_server
    exit 1
fi

"$bin" pool --port "$port" --mode "$mode" --operation "$op" --volume "$vol" --clients "$clients" --tcp-congestion "$cc" | tee "$out.pool.txt"
rc=${PIPESTATUS[0]}
stop_server
trap - INT TERM
rm -f "$out.listen"

echo
case $tool in
    stat)   cat "$out.perf-stat.txt"; echo "saved: $out.perf-stat.txt" ;;
    record) echo "saved: $out.perf.data (view: perf report -i $out.perf.data)" ;;
    strace) head -40 "$out.strace.txt"; echo "saved: $out.strace.txt" ;;
esac
echo "pool summary: $out.pool.txt; server log: $out.server.log"
exit "$rc"
