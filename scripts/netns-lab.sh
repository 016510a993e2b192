#!/usr/bin/env bash
# A lab of three hosts on one Linux machine, for tests that need clients on
# other hosts: three network namespaces (a server and two clients) on a
# bridge, on 198.18.0.0/24 (RFC 2544's range for benchmark tests), each
# running an sshd of its own with a throwaway host key, and one throwaway
# user key that logs in as root on all three. Run as root.
#
#   scripts/netns-lab.sh up     build the lab; fails if one of its prefix is up
#   scripts/netns-lab.sh down   remove all of it: namespaces (and every process
#                               in them), bridge, veths, sshds, key and state
#                               folders; safe to run twice, or after a half-built up
#
#   host  namespace     address      its end of the veth (in the root namespace)
#   srv   PREFIX-srv    198.18.0.1   PREFIX-srv
#   c1    PREFIX-c1     198.18.0.2   PREFIX-c1
#   c2    PREFIX-c2     198.18.0.3   PREFIX-c2
#   the bridge PREFIX-br, with no address
#
# PREFIX is $FSB_LAB_PREFIX (default fsb; a lowercase letter, then up to 9
# lowercase letters or digits), so labs of different prefixes can be up at
# once (parallel test runs). The bridge has no address: the root namespace
# takes no part in the lab's traffic, and two labs never claim the same
# route. No namespace has a default route and nothing is NATed: traffic stays
# between the lab's hosts (and each one's loopback). Reach a host from
# another one:
#
#   ip netns exec fsb-srv ssh -F /run/fsbench-lab/fsb/ssh_config 198.18.0.2 ip -4 addr
#   ip netns exec fsb-c1 ssh -i KEYS/id_ed25519 -o UserKnownHostsFile=KEYS/known_hosts \
#       -o StrictHostKeyChecking=yes root@198.18.0.1 true
#
# State folder: /run/fsbench-lab/PREFIX/: `keydir` (the path of the key
# folder, a mktemp folder beside it holding id_ed25519, known_hosts and the
# host keys), `env` (shell variables: LAB_KEY, LAB_KNOWN_HOSTS, LAB_SSH_CONFIG,
# each host's namespace and address), `ssh_config`, and each sshd's config,
# pid file and log. `up` prints the key folder and the env file.
# Exit: 0 done; 1 failed (a half-built lab stays for `down`); 2 wrong use.
set -Eeuo pipefail
trap 'echo "netns-lab: failed: $BASH_COMMAND (line $LINENO)" >&2; exit 1' ERR

PREFIX=${FSB_LAB_PREFIX:-fsb}
HOSTS=(srv c1 c2)
declare -A ADDR=([srv]=198.18.0.1 [c1]=198.18.0.2 [c2]=198.18.0.3)
SUBNET_BITS=24
LABS=/run/fsbench-lab
STATE=$LABS/$PREFIX
SSHD=/usr/sbin/sshd
# How long a process may take to go once told to, before SIGKILL.
STOP_WAIT_TICKS=100 # of 0.05 s

usage() {
    sed -n '2,/^set -Eeuo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

die() {
    echo "netns-lab: $*" >&2
    exit 1
}

ns() { echo "$PREFIX-$1"; }

link_exists() { ip link show dev "$1" >/dev/null 2>&1; }

ns_exists() { [ -e "/run/netns/$1" ]; }

# Polls (no fixed wait) until "$@" succeeds; fails after STOP_WAIT_TICKS.
wait_for() {
    local i
    for ((i = 0; i < STOP_WAIT_TICKS; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

# The pids of the processes whose command line names the lab's state folder
# (its sshds, even one whose namespace is gone), by reading /proc.
state_pids() {
    local d cmd
    for d in /proc/[0-9]*; do
        cmd=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
        [[ $cmd == *"$STATE/"* ]] && echo "${d#/proc/}"
    done
    return 0
}

# Whether a process runs: it exists and is not a zombie (a daemon killed here
# is a child of init, which may take its time to reap it).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat:0:1}" != Z ]
}

# Ends the given processes by id: SIGTERM, then SIGKILL to what is left.
stop_pids() {
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    gone() {
        local p
        for p in "$@"; do alive "$p" && return 1; done
        return 0
    }
    if ! wait_for gone "$@"; then
        kill -KILL "$@" 2>/dev/null || true
        wait_for gone "$@" || echo "netns-lab: processes $* outlived SIGKILL" >&2
    fi
}

disable_ipv6() { echo 1 >"/proc/sys/net/ipv6/conf/$1/disable_ipv6" 2>/dev/null || true; }

start_host() {
    local h=$1 n addr keys=$2
    n=$(ns "$h")
    addr=${ADDR[$h]}
    ip netns add "$n"
    # The veth's other end is made inside the namespace, as eth0.
    ip link add "$n" type veth peer name eth0 netns "$n"
    disable_ipv6 "$n"
    ip link set "$n" master "$PREFIX-br" up
    ip -n "$n" link set lo up
    ip -n "$n" addr add "$addr/$SUBNET_BITS" dev eth0
    ip -n "$n" link set eth0 up

    ssh-keygen -q -t ed25519 -N '' -C "fsbench-lab $PREFIX $h" -f "$keys/host_$h"
    echo "$addr $(cut -d' ' -f1,2 "$keys/host_$h.pub")" >>"$keys/known_hosts"
    cat >"$STATE/sshd_$h.conf" <<EOF
# The lab's sshd on $h ($addr), in namespace $n.
ListenAddress $addr
Port 22
HostKey $keys/host_$h
PidFile $STATE/sshd_$h.pid
AuthorizedKeysFile $keys/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
PrintMotd no
# Many clients over ssh at once (the sweep's pools).
MaxStartups 200
MaxSessions 200
Subsystem sftp internal-sftp
EOF
    "$SSHD" -t -f "$STATE/sshd_$h.conf"
    # sshd daemonizes; its pid file is written once it listens.
    ip netns exec "$n" "$SSHD" -f "$STATE/sshd_$h.conf" -E "$STATE/sshd_$h.log"
    wait_for test -s "$STATE/sshd_$h.pid" ||
        die "sshd on $h did not start; its log: $(cat "$STATE/sshd_$h.log" 2>/dev/null)"
}

up() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    local tool
    for tool in ip ssh ssh-keygen "$SSHD"; do
        command -v "$tool" >/dev/null ||
            die "$tool is missing (apt-get install openssh-server iproute2; .ci/run does)"
    done
    if [ -e "$STATE" ] || ns_exists "$(ns srv)" || link_exists "$PREFIX-br"; then
        die "a lab with prefix $PREFIX is up already (state in $STATE): run down first"
    fi
    mkdir -p -m 0755 "$LABS"
    mkdir -m 0700 "$STATE"
    local keys
    keys=$(mktemp -d "$LABS/$PREFIX-keys.XXXXXX")
    echo "$keys" >"$STATE/keydir"
    ssh-keygen -q -t ed25519 -N '' -C "fsbench-lab $PREFIX user" -f "$keys/id_ed25519"
    cp "$keys/id_ed25519.pub" "$keys/authorized_keys"
    : >"$keys/known_hosts"
    # sshd's privilege separation folder (Debian's service makes it at boot).
    mkdir -p -m 0755 /run/sshd

    ip link add "$PREFIX-br" type bridge
    disable_ipv6 "$PREFIX-br"
    ip link set "$PREFIX-br" up
    local h
    for h in "${HOSTS[@]}"; do
        start_host "$h" "$keys"
    done

    cat >"$STATE/ssh_config" <<EOF
# ssh -F $STATE/ssh_config 198.18.0.2 CMD, from any of the lab's namespaces.
Host ${ADDR[srv]} ${ADDR[c1]} ${ADDR[c2]}
    User root
    IdentityFile $keys/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $keys/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
    LogLevel ERROR
EOF
    {
        echo "LAB_PREFIX=$PREFIX"
        echo "LAB_STATE=$STATE"
        echo "LAB_KEYS=$keys"
        echo "LAB_KEY=$keys/id_ed25519"
        echo "LAB_KNOWN_HOSTS=$keys/known_hosts"
        echo "LAB_SSH_CONFIG=$STATE/ssh_config"
        for h in "${HOSTS[@]}"; do
            echo "LAB_NS_${h^^}=$(ns "$h")"
            echo "LAB_ADDR_${h^^}=${ADDR[$h]}"
        done
    } >"$STATE/env"

    # Proof that it works: each host logs in to the next one with the lab's key.
    local from to
    for i in 0 1 2; do
        from=${HOSTS[$i]}
        to=${HOSTS[$(((i + 1) % 3))]}
        ip netns exec "$(ns "$from")" ssh -F "$STATE/ssh_config" "${ADDR[$to]}" true ||
            die "ssh from $from to $to failed; $to's sshd log: $(cat "$STATE/sshd_$to.log")"
    done
    echo "lab $PREFIX up: hosts srv ${ADDR[srv]}, c1 ${ADDR[c1]}, c2 ${ADDR[c2]} (namespaces $(ns srv), $(ns c1), $(ns c2))"
    echo "keys: $keys"
    echo "env: $STATE/env"
}

down() {
    [ "$(id -u)" = 0 ] || die "must run as root"
    local h n pids
    for h in "${HOSTS[@]}"; do
        n=$(ns "$h")
        if ns_exists "$n"; then
            # Every process in the namespace: its sshd, their sessions, a test's server.
            mapfile -t pids < <(ip netns pids "$n" 2>/dev/null)
            stop_pids "${pids[@]}"
            ip netns del "$n" 2>/dev/null || true
        fi
    done
    mapfile -t pids < <(state_pids)
    stop_pids "${pids[@]}"
    # A namespace takes its end of each veth with it; the root's end may be left.
    for n in "$(ns srv)" "$(ns c1)" "$(ns c2)" "$PREFIX-br"; do
        if link_exists "$n"; then ip link del dev "$n" 2>/dev/null || true; fi
    done
    rm -rf -- "$STATE" "$LABS/$PREFIX-keys."??????
    rmdir "$LABS" 2>/dev/null || true
    local left=()
    for h in "${HOSTS[@]}"; do
        ns_exists "$(ns "$h")" && left+=("namespace $(ns "$h")")
        link_exists "$(ns "$h")" && left+=("link $(ns "$h")")
    done
    link_exists "$PREFIX-br" && left+=("bridge $PREFIX-br")
    [ -z "$(state_pids)" ] || left+=("sshd processes")
    [ ${#left[@]} -eq 0 ] || die "down left: ${left[*]}"
    echo "lab $PREFIX down"
}

[ $# -eq 1 ] || { usage >&2; exit 2; }
[[ $PREFIX =~ ^[a-z][a-z0-9]{0,9}$ ]] ||
    { echo "netns-lab: FSB_LAB_PREFIX must be a lowercase letter and up to 9 lowercase letters or digits, not '$PREFIX'" >&2; exit 2; }
case $1 in
    up) up ;;
    down) down ;;
    -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
esac
