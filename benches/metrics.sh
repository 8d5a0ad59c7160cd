#!/usr/bin/env bash
# Does serving metrics cost the hot path anything? The throughput scenario
# of compare.sh (50 members in one room, 5 senders, 100,000 lines of 100
# bytes as fast as flow control allows), run against the same release
# binary with metrics off (`off`), with `metrics_listen` on and Prometheus
# scraping it every second (`on`), and with `metrics_listen` on but nobody
# scraping (`idle`: the server's share alone, without Prometheus's own CPU
# on the same two cores), interleaved (off, on, idle, off, …) so that the
# machine's noise falls on all alike. With BASE_BIN (a udpchat binary
# built from another commit, e.g. main before metrics existed), that binary
# runs a third variant in each round.
#
#   cargo build --release -p udpchat -p udpchat-bench
#   RUNS=5 benches/metrics.sh          # prints one line per run and a summary
#
# Environment: RUNS [3], BIN [target/release/udpchat],
# BENCH [target/release/udpchat-bench], BASE_BIN [unset], OUT [a temp dir].
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
BIN=${BIN:-target/release/udpchat}
BENCH=${BENCH:-target/release/udpchat-bench}
OUT=${OUT:-$(mktemp -d -t udpchat-metrics.XXXXXX)}
mkdir -p "$OUT"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

wait_line() { # FILE PATTERN: the first line of FILE matching PATTERN (10 s at most)
    for _ in $(seq 100); do grep -m1 "$2" "$1" && return 0; sleep 0.1; done
    echo "no '$2' in $1" >&2; return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() { # VARIANT BINARY METRICS(on|idle|off) ROUND
    local variant=$1 bin=$2 metrics=$3 round=$4 dir="$OUT/$1-$4" prom=""
    mkdir -p "$dir"
    cat >"$dir/udpchat.toml" <<CONF
rate_per_second = 0
handshake_per_second = 0
console_log = false
history_sync = "normal"
CONF
    [ "$metrics" != off ] && echo 'metrics_listen = "127.0.0.1:0"' >>"$dir/udpchat.toml"
    "$bin" server --data-dir "$dir/data" --config "$dir/udpchat.toml" --listen 127.0.0.1:0 --console off --quiet \
        >"$dir/log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local port
    port=$(wait_line "$dir/log" "listening on" | grep -oE '[0-9]+$')
    if [ "$metrics" = on ] && command -v prometheus >/dev/null; then
        local target web
        target=$(wait_line "$dir/log" "metrics: " | sed 's#.*http://##; s#/metrics##')
        web=127.0.0.1:$(free_port)
        printf 'global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: udpchat\n    static_configs:\n      - targets: ["%s"]\n' \
            "$target" >"$dir/prometheus.yml"
        prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" --web.listen-address="$web" \
            >"$dir/prometheus.log" 2>&1 &
        prom=$!
        PIDS+=("$prom")
        sleep 2
    fi
    "$BENCH" --target "udpchat://127.0.0.1:$port" --server-pid "$pid" --json --clients 50 --senders 5 \
        --lines 100000 --size 100 --duration 60 --drain 3 >"$dir/report.json" 2>/dev/null
    if [ -n "$prom" ]; then
        # Prometheus really scraped during the run.
        curl -fsS "http://$web/api/v1/query?query=udpchat_deliveries_total" >"$dir/scraped.json" || true
        # Prometheus's own CPU time (utime + stime) over the run.
        awk '{ printf "%.2f\n", ($14 + $15) / 100 }' "/proc/$prom/stat" >"$dir/prometheus_cpu_secs"
        kill "$prom"
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$dir" "$variant" "$round" <<'PY'
import json, os, sys
r = json.load(open(os.path.join(sys.argv[1], "report.json")))
cpu = r["server"]["cpu_secs"] / max(r["deliveries_received"], 1) * 1e6
prom = os.path.join(sys.argv[1], "prometheus_cpu_secs")
extra = f'  prometheus {open(prom).read().strip()} s CPU' if os.path.exists(prom) else ''
print(f'{sys.argv[2]:>5} round {sys.argv[3]}: {r["deliveries_per_sec"]:>12,.0f} deliveries/s  '
      f'server {cpu:.3f} µs/delivery  lost {r["lost"]}{extra}')
PY
}

for round in $(seq "$RUNS"); do
    run off "$BIN" off "$round"
    run on "$BIN" on "$round"
    run idle "$BIN" idle "$round"
    [ -n "${BASE_BIN:-}" ] && run base "$BASE_BIN" off "$round"
done | tee "$OUT/summary.txt"
python3 - "$OUT/summary.txt" <<'PY'
import re, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    m = re.match(r'\s*(\w+) round \d+:\s+([\d,]+) deliveries/s\s+server ([\d.]+)', line)
    if m:
        runs.setdefault(m[1], []).append((float(m[2].replace(',', '')), float(m[3])))
for variant, xs in runs.items():
    d = [x for x, _ in xs]; c = [y for _, y in xs]
    print(f'{variant:>5}: median {statistics.median(d):,.0f} deliveries/s (min {min(d):,.0f}, max {max(d):,.0f}); '
          f'server median {statistics.median(c):.3f} µs/delivery')
PY
echo "reports in $OUT"
