#!/usr/bin/env bash
# What the cluster's NATS hop costs (issue 14), measured by `udpchat-bench`
# in one run on one machine against three set-ups side by side:
#
#   single  one plain udpchat server (no cluster): the baseline;
#   node1   one udpchat node with --cluster on its own NATS JetStream
#           server: the same server plus the NATS hop, nothing else;
#   node2   two udpchat nodes on one NATS JetStream server, the bench's
#           sessions split between them (--target with both addresses:
#           session i on node i mod 2, so senders and members are on both
#           and every line reaches members on both nodes).
#
# Each set-up has its own NATS server (fresh store, a port of its own
# choosing) so that one set-up's stream never feeds another's nodes. Every
# udpchat server has flood limits lifted and per-line logging off, as in
# benches/compare.sh. The scenarios are compare.sh's throughput and latency
# ones, RUNS runs of each, interleaved over the set-ups so the machine's
# drift falls on all alike; benches/summarize_cluster.py prints the medians
# with ratios against the single server. Besides the bench's own report,
# the script reads the CPU time of every udpchat node, of the NATS server
# and of the whole machine from /proc before and after each run, so a run
# that other work on the machine disturbed shows as such.
#
#   benches/cluster.sh                 # builds, then about 2 minutes
#   SKIP_BUILD=1 RUNS=1 benches/cluster.sh   # a quick look
#
# Sizes come from the environment (defaults in brackets):
#   RUNS [3]  CLIENTS [50] SENDERS [5] LINES [100000] SIZE [100]
#   LAT_RATE [2000] LAT_SECS [5]  latency at a fixed offered rate
#   SETUPS ["single node1 node2"]  BENCH_THREADS [1]  SKIP_BUILD [unset]
#   OUT [a new temp dir]  where the JSON reports, summary.md and the
#     servers' logs (OUT/logs) are kept
#
# Loopback only: every server listens on 127.0.0.1; the servers' data and
# NATS stores are in a temporary directory removed at exit, and every
# process started here is stopped at exit.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-50}
SENDERS=${SENDERS:-5}
LINES=${LINES:-100000}
SIZE=${SIZE:-100}
LAT_RATE=${LAT_RATE:-2000}
LAT_SECS=${LAT_SECS:-5}
SETUPS=${SETUPS:-"single node1 node2"}
BENCH_THREADS=${BENCH_THREADS:-1}
OUT=${OUT:-$(mktemp -d -t udpchat-cluster.XXXXXX)}
mkdir -p "$OUT"

say() { echo "cluster: $*" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    say "building udpchat (release)"
    cargo build --release --locked -p udpchat -p udpchat-bench >&2
fi
BIN=$PWD/target/release/udpchat
[[ -x $BIN ]] || { say "no $BIN; build it first"; exit 1; }
BENCH=$PWD/target/release/udpchat-bench
[[ -x $BENCH ]] || { say "no $BENCH; build it first"; exit 1; }
command -v nats-server >/dev/null || { say "no nats-server; install it (apt-get install nats-server)"; exit 1; }

WORK=$(mktemp -d -t udpchat-cluster-servers.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    # The servers' logs outlive their data, for a run that went wrong.
    mkdir -p "$OUT/logs"
    for log in "$WORK"/*/log; do
        if [[ -e $log ]]; then cp "$log" "$OUT/logs/$(basename "$(dirname "$log")").log"; fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
# An interrupted run still goes through the EXIT trap.
trap 'exit 130' INT TERM

# Waits up to 10 s for a line matching $2 in file $1 and prints it.
wait_line() {
    for _ in $(seq 100); do
        if grep -m1 -E "$2" "$1" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    say "timed out waiting for '$2' in $1:"
    cat "$1" >&2
    return 1
}

# CPU seconds (user + system) the processes PID... have used so far, from
# /proc/PID/stat (clock ticks of 1/100 s; fields counted after the command
# name's ')'); 0 for none, and for a process that is gone.
cpu_secs() {
    local pid ticks=0
    for pid in "$@"; do
        ticks=$(( ticks + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{ print $12 + $13 } END { if (NR == 0) print 0 }') ))
    done
    awk -v t="$ticks" 'BEGIN { printf "%.2f", t / 100 }'
}

# CPU seconds the whole machine has been busy so far (every core: user,
# nice, system, irq, softirq, steal from /proc/stat), so a run can tell
# how much CPU went to processes other than its own.
machine_cpu_secs() {
    awk '/^cpu / { printf "%.2f", ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit }' /proc/stat
}

# minus A B: A - B, for seconds with decimals.
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a - b }'; }

# One key for every node, as a cluster needs (clients pin the cluster).
"$BIN" keygen --data-dir "$WORK/key" >/dev/null
KEY=$WORK/key/server.key
# Flood limits lifted, no per-line console log, fsync at checkpoints: as
# benches/compare.sh configures udpchat for its scenarios.
cat >"$WORK/udpchat.toml" <<EOF
rate_per_second = 0
handshake_per_second = 0
console_log = false
history_sync = "normal"
EOF

# Per set-up: the udpchat pids (the first also goes to --server-pid), the
# NATS pid (none for single) and the bench's --target.
declare -A NODES NATS TARGET

# start_nats NAME: a JetStream server with its own store, on a port it
# picks itself (read back from its log); sets NATS_PID and NATS_URL.
start_nats() {
    local dir=$WORK/$1-nats port
    mkdir -p "$dir"
    nats-server -js -a 127.0.0.1 -p -1 -sd "$dir/js" --server_name "$1" >"$dir/log" 2>&1 &
    PIDS+=("$!")
    NATS_PID=$!
    port=$(wait_line "$dir/log" "Listening for client connections on" | grep -oE '[0-9]+$')
    NATS_URL=nats://127.0.0.1:$port
}

# start_udpchat NAME [NATS_URL]: a udpchat server (a cluster node with a
# URL); sets SERVER_PID and SERVER_ADDR.
start_udpchat() {
    local dir=$WORK/$1 cluster=()
    mkdir -p "$dir"
    [[ -z ${2:-} ]] || cluster=(--cluster "$2" --key-file "$KEY")
    "$BIN" server --data-dir "$dir/data" --config "$WORK/udpchat.toml" --listen 127.0.0.1:0 \
        --console off --quiet --lan-discovery off "${cluster[@]}" >"$dir/log" 2>&1 &
    PIDS+=("$!")
    SERVER_PID=$!
    SERVER_ADDR=$(wait_line "$dir/log" "listening on" | grep -oE '[0-9.]+:[0-9]+$')
    [[ -z ${2:-} ]] || wait_line "$dir/log" "cluster: node" >/dev/null
}

start_single() {
    start_udpchat single
    NODES[single]=$SERVER_PID
    NATS[single]=""
    TARGET[single]=udpchat://$SERVER_ADDR
}

start_node1() {
    start_nats node1
    start_udpchat node1-a "$NATS_URL"
    NODES[node1]=$SERVER_PID
    NATS[node1]=$NATS_PID
    TARGET[node1]=udpchat://$SERVER_ADDR
}

start_node2() {
    local addrs=() pids=() n
    start_nats node2
    for n in a b; do
        start_udpchat "node2-$n" "$NATS_URL"
        pids+=("$SERVER_PID")
        addrs+=("$SERVER_ADDR")
    done
    NODES[node2]="${pids[*]}"
    NATS[node2]=$NATS_PID
    TARGET[node2]=udpchat://$(IFS=,; echo "${addrs[*]}")
}

# bench NAME SETUP RUN ARGS...: one run, its JSON report and the servers'
# CPU seconds in $OUT.
bench() {
    local name=$1 setup=$2 run=$3
    shift 3
    local file=$OUT/$name.$setup.$run pid nodes=() nats=() udp0 udp1 nats0 nats1 all0 all1 t0 t1
    read -ra nodes <<<"${NODES[$setup]}"
    read -ra nats <<<"${NATS[$setup]}"
    for pid in "${nodes[@]}" "${nats[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            # Our child: its exit status says how it ended (143 SIGTERM, 137 SIGKILL).
            local status=0
            wait "$pid" 2>/dev/null || status=$?
            say "a $setup server (pid $pid) is gone (exit status $status); skipping $name"
            return 0
        fi
    done
    say "$name, $setup, run $run"
    t0=$(date +%s.%N)
    all0=$(machine_cpu_secs)
    udp0=$(cpu_secs "${nodes[@]}")
    nats0=$(cpu_secs "${nats[@]}")
    if ! "$BENCH" --target "${TARGET[$setup]}" --server-pid "${nodes[0]}" --json \
        --threads "$BENCH_THREADS" "$@" >"$file.json" 2>"$file.err"; then
        say "$name, $setup, run $run failed: $(tail -1 "$file.err")"
        rm -f "$file.json"
    fi
    t1=$(date +%s.%N)
    udp1=$(cpu_secs "${nodes[@]}")
    nats1=$(cpu_secs "${nats[@]}")
    all1=$(machine_cpu_secs)
    # The whole bench run (setup, traffic, drain, goodbyes): what the
    # udpchat nodes together, NATS (null: none) and the whole machine spent,
    # over its wall time.
    local nats_cpu=null
    (( ${#nats[@]} == 0 )) || nats_cpu=$(minus "$nats1" "$nats0")
    printf '{"wall_secs": %s, "udpchat_cpu_secs": %s, "nats_cpu_secs": %s, "machine_cpu_secs": %s}\n' \
        "$(minus "$t1" "$t0")" "$(minus "$udp1" "$udp0")" "$nats_cpu" "$(minus "$all1" "$all0")" >"$file.cpu"
    # Let goodbyes and closes settle before the next run.
    sleep 0.5
}

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "udpchat: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)'); nats-server: $(nats-server --version | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -1)"
    echo "data: $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"
    echo "settings: RUNS=$RUNS CLIENTS=$CLIENTS SENDERS=$SENDERS LINES=$LINES SIZE=$SIZE LAT_RATE=$LAT_RATE LAT_SECS=$LAT_SECS BENCH_THREADS=$BENCH_THREADS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2
start=$(date +%s)

for s in $SETUPS; do
    "start_$s"
    say "$s: ${TARGET[$s]} (udpchat pid ${NODES[$s]}${NATS[$s]:+, nats pid ${NATS[$s]}})"
done
for run in $(seq "$RUNS"); do
    for s in $SETUPS; do
        bench throughput "$s" "$run" --clients "$CLIENTS" --senders "$SENDERS" --lines "$LINES" --size "$SIZE" \
            --duration 60 --drain 3
        bench latency "$s" "$run" --clients "$CLIENTS" --senders "$SENDERS" --size "$SIZE" \
            --rate "$LAT_RATE" --lines $((LAT_RATE * LAT_SECS)) --duration $((LAT_SECS + 5)) --drain 3
    done
done

echo "run time: $(( $(date +%s) - start )) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 benches/summarize_cluster.py "$OUT" | tee "$OUT/summary.md"
say "reports in $OUT"
