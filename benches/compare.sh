#!/usr/bin/env bash
# udpchat against its peers, measured by `udpchat-bench` in one run on one
# machine: udpchat, a classic Python UDP chat server (benches/peers/) and
# ngIRCd (an IRC server, from Debian). Builds udpchat in release, installs
# ngIRCd if it is missing, starts the three servers on loopback with their
# flood limits lifted and per-line console logging off, runs each scenario
# against each server (medians of RUNS runs), prints one side-by-side table
# with ratios against udpchat, and stops the servers it started.
#
#   benches/compare.sh                      # everything, about 11 minutes
#   RUNS=1 IDLE_CLIENTS=1000 benches/compare.sh   # a quick look
#
# Scenario sizes come from the environment (defaults in brackets):
#   RUNS [3]             runs of each scenario (the table shows medians)
#   CLIENTS [50] SENDERS [5] LINES [100000] SIZE [100]   throughput scenario
#   LAT_RATE [2000] LAT_SECS [5]            latency at a fixed offered rate
#   RATES ["500 1000 2000 4000 8000 16000"] SWEEP_SECS [3] SWEEP_RUNS [1]
#   LOSS_DROP [0.1] LOSS_RATE [2000] LOSS_SECS [3]   injected loss (udpchat, text)
#   IDLE_CLIENTS [10000] IDLE_HOLD [15] IDLE_RUNS [1]   idle sessions (the
#     hold outlasts udpchat's 10 s keepalive interval)
#   TARGETS ["udpchat text irc"]  BENCH_THREADS [1]  SKIP_BUILD [unset]
#   DATA_DIR [a temp dir]  where udpchat keeps its history database; its
#     commits (and, with history_sync = "normal", its checkpoint fsyncs) are
#     part of what is measured, so a busy disk shows in the latency
#   OUT [a new temp dir]  where the JSON reports and summary.md are kept
#
# The defaults take about 11 minutes; about 4 of them are udpchat
# setting up 10,000 sessions from one address (its handshake rate limit per
# source address). SWEEP_RUNS=3 IDLE_RUNS=3 gives medians everywhere.
#
# Loopback only: every server listens on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
CLIENTS=${CLIENTS:-50}
SENDERS=${SENDERS:-5}
LINES=${LINES:-100000}
SIZE=${SIZE:-100}
LAT_RATE=${LAT_RATE:-2000}
LAT_SECS=${LAT_SECS:-5}
RATES=${RATES:-"500 1000 2000 4000 8000 16000"}
SWEEP_SECS=${SWEEP_SECS:-3}
SWEEP_RUNS=${SWEEP_RUNS:-1}
LOSS_DROP=${LOSS_DROP:-0.1}
LOSS_RATE=${LOSS_RATE:-2000}
LOSS_SECS=${LOSS_SECS:-3}
IDLE_CLIENTS=${IDLE_CLIENTS:-10000}
IDLE_HOLD=${IDLE_HOLD:-15}
IDLE_RUNS=${IDLE_RUNS:-1}
TARGETS=${TARGETS:-"udpchat text irc"}
BENCH_THREADS=${BENCH_THREADS:-1}
OUT=${OUT:-$(mktemp -d -t udpchat-compare.XXXXXX)}
mkdir -p "$OUT"

say() { echo "compare: $*" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    say "building udpchat (release)"
    cargo build --release --locked -p udpchat -p udpchat-bench >&2
fi
BIN=$PWD/target/release/udpchat
[[ -x $BIN ]] || { say "no $BIN; build it first"; exit 1; }
BENCH=$PWD/target/release/udpchat-bench
[[ -x $BENCH ]] || { say "no $BENCH; build it first"; exit 1; }

if [[ " $TARGETS " == *" irc "* ]] && ! command -v ngircd >/dev/null; then
    say "installing ngircd from Debian"
    SUDO=""
    [[ $(id -u) -eq 0 ]] || SUDO=sudo
    $SUDO apt-get update -qq >&2
    # The package starts a system-wide ngircd where services may start; the
    # one measured here is ours, on its own port and config.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq ngircd >&2
fi

# Every session is a socket (and for IRC a server-side socket too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < IDLE_CLIENTS + 200 )); then
    say "warning: open-file limit $(ulimit -n) is below IDLE_CLIENTS=$IDLE_CLIENTS; idle runs will fall short"
fi

WORK=$(mktemp -d -t udpchat-servers.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    [[ -z ${DATA_DIR:-} ]] || rm -rf "$DATA_DIR/udpchat-data"
}
trap cleanup EXIT

free_tcp_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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

declare -A PORT PID

start_udpchat() {
    local dir=$WORK/udpchat data
    data=${DATA_DIR:-$dir}/udpchat-data
    rm -rf "$dir" "$data" && mkdir -p "$dir"
    # Flood limits lifted, no per-line console log, sessions enough for the
    # idle scenario from one address, fsync at checkpoints (an acknowledged
    # line survives a crash of the server, not a power cut).
    cat >"$dir/udpchat.toml" <<EOF
rate_per_second = 0
handshake_per_second = 0
console_log = false
history_sync = "normal"
max_sessions = $((IDLE_CLIENTS + 1000))
max_sessions_per_address = $((IDLE_CLIENTS + 1000))
EOF
    "$BIN" server --data-dir "$data" --config "$dir/udpchat.toml" --listen 127.0.0.1:0 \
        --console off --quiet >"$dir/log" 2>&1 &
    PID[udpchat]=$!
    PIDS+=("$!")
    PORT[udpchat]=$(wait_line "$dir/log" "listening on" | grep -oE '[0-9]+$')
}

start_text() {
    local dir=$WORK/text
    mkdir -p "$dir"
    python3 benches/peers/udp_chat_server.py --host 127.0.0.1 --port 0 --quiet >"$dir/log" 2>&1 &
    PID[text]=$!
    PIDS+=("$!")
    PORT[text]=$(wait_line "$dir/log" "listening on" | grep -oE '[0-9]+$')
}

start_irc() {
    local dir=$WORK/irc port
    mkdir -p "$dir"
    port=$(free_tcp_port)
    # ngIRCd's flood protection, lifted as far as its configuration allows:
    # no penalty times (MaxPenaltyTime = 0), no per-address or total
    # connection limits; senders become operators and set user mode +F
    # (udpchat-bench --irc-oper), which lifts the per-client command
    # throttle. What cannot be configured: at most 10 commands read per
    # client per pass (3 without +F), and a client with more than 2 KiB of
    # unread commands is dropped; the bench's PING window stays under that.
    # ngIRCd logs no chat lines, only connections.
    cat >"$dir/ngircd.conf" <<EOF
[Global]
	Name = bench.localhost
	Info = udpchat-bench peer
	AdminInfo1 = udpchat benches/compare.sh
	AdminInfo2 = loopback only
	AdminEMail = nobody@localhost
	Listen = 127.0.0.1
	Ports = $port
	MotdPhrase = "bench"
[Limits]
	MaxConnections = 0
	MaxConnectionsIP = 0
	MaxJoins = 0
	MaxNickLength = 30
	MaxPenaltyTime = 0
	PingTimeout = 600
	PongTimeout = 120
[Options]
	DNS = no
	Ident = no
	PAM = no
	OperCanUseMode = yes
[Operator]
	Name = bench
	Password = bench
EOF
    ngircd --nodaemon --config "$dir/ngircd.conf" >"$dir/log" 2>&1 &
    PID[irc]=$!
    PIDS+=("$!")
    PORT[irc]=$port
    wait_line "$dir/log" "ready" >/dev/null
}

start_servers() {
    for t in $TARGETS; do
        "start_$t"
        say "$t server: pid ${PID[$t]}, 127.0.0.1:${PORT[$t]}"
    done
}

stop_servers() {
    for t in $TARGETS; do
        kill "${PID[$t]}" 2>/dev/null || true
        wait "${PID[$t]}" 2>/dev/null || true
    done
    PIDS=()
}

# bench NAME TARGET RUN ARGS...: one run, its JSON report in $OUT.
bench() {
    local name=$1 t=$2 run=$3
    shift 3
    local extra=()
    [[ $t == irc ]] && extra+=(--irc-oper bench:bench)
    local file=$OUT/$name.$t.$run
    if ! kill -0 "${PID[$t]}" 2>/dev/null; then
        say "$t server is gone; skipping $name"
        return 0
    fi
    say "$name, $t, run $run"
    if ! "$BENCH" --target "$t://127.0.0.1:${PORT[$t]}" --server-pid "${PID[$t]}" --json \
        --threads "$BENCH_THREADS" "${extra[@]}" "$@" >"$file.json" 2>"$file.err"; then
        say "$name, $t, run $run failed: $(tail -1 "$file.err")"
        rm -f "$file.json"
    fi
    # Let goodbyes and closes settle before the next run.
    sleep 0.5
}

{
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r)"
    echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "udpchat: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)'); ngircd: $(ngircd --version 2>/dev/null | head -1 | cut -d' ' -f2 || echo none); python: $(python3 --version | cut -d' ' -f2)"
    echo "udpchat data: ${DATA_DIR:-/tmp} ($(df -T "${DATA_DIR:-/tmp}" | awk 'NR==2 {print $2}'))"
    echo "settings: RUNS=$RUNS CLIENTS=$CLIENTS SENDERS=$SENDERS LINES=$LINES SIZE=$SIZE LAT_RATE=$LAT_RATE LAT_SECS=$LAT_SECS RATES='$RATES' SWEEP_SECS=$SWEEP_SECS SWEEP_RUNS=$SWEEP_RUNS LOSS_DROP=$LOSS_DROP LOSS_RATE=$LOSS_RATE LOSS_SECS=$LOSS_SECS IDLE_CLIENTS=$IDLE_CLIENTS IDLE_HOLD=$IDLE_HOLD IDLE_RUNS=$IDLE_RUNS BENCH_THREADS=$BENCH_THREADS"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2
start=$(date +%s)

# Idle sessions first, on fresh servers, so their memory is the sessions'
# and not what earlier traffic left behind.
if (( IDLE_CLIENTS > 0 )); then
    for run in $(seq "$IDLE_RUNS"); do
        start_servers
        for t in $TARGETS; do
            rooms=$(( IDLE_CLIENTS / 50 > 0 ? IDLE_CLIENTS / 50 : 1 ))
            [[ $t == text ]] && rooms=1
            bench idle "$t" "$run" --idle --clients "$IDLE_CLIENTS" --rooms "$rooms" --duration "$IDLE_HOLD"
        done
        stop_servers
    done
fi

start_servers
for run in $(seq "$RUNS"); do
    for t in $TARGETS; do
        bench throughput "$t" "$run" --clients "$CLIENTS" --senders "$SENDERS" --lines "$LINES" --size "$SIZE" \
            --duration 60 --drain 3
        bench latency "$t" "$run" --clients "$CLIENTS" --senders "$SENDERS" --size "$SIZE" \
            --rate "$LAT_RATE" --lines $((LAT_RATE * LAT_SECS)) --duration $((LAT_SECS + 5)) --drain 3
    done
done
for run in $(seq "$SWEEP_RUNS"); do
    for rate in $RATES; do
        for t in $TARGETS; do
            bench "sweep-$rate" "$t" "$run" --clients "$CLIENTS" --senders "$SENDERS" --size "$SIZE" \
                --rate "$rate" --lines $((rate * SWEEP_SECS)) --duration $((SWEEP_SECS + 5)) --drain 2
        done
    done
done
for run in $(seq "$RUNS"); do
    for t in $TARGETS; do
        # Loss is injected in the bench's own datagrams; IRC runs over TCP.
        [[ $t == irc ]] && continue
        bench loss "$t" "$run" --clients "$CLIENTS" --senders "$SENDERS" --size "$SIZE" --drop "$LOSS_DROP" \
            --rate "$LOSS_RATE" --lines $((LOSS_RATE * LOSS_SECS)) --duration $((LOSS_SECS + 10)) --drain 5
    done
done
stop_servers

echo "run time: $(( $(date +%s) - start )) s; load after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
python3 benches/summarize.py "$OUT" | tee "$OUT/summary.md"
say "reports in $OUT"
