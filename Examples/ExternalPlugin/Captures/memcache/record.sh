#!/usr/bin/env bash
# Re-records the memcache captures from a real memcached on loopback (run as root).
#   apt-get install -y memcached tcpdump python3
#   Captures/memcache/record.sh [scenario…]    # default: all; see RECIPES.md
# Each scenario gets a fresh server (so cas values, stats and item counts start from zero)
# and its own tcpdump; both are stopped by their own pids.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
port=11211
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(set-get-delete multi-get pipelined counters-stats)
user=memcache; id "$user" >/dev/null 2>&1 || user=root
for tool in memcached tcpdump python3; do
    command -v "$tool" >/dev/null || { echo "record.sh: $tool not found (apt-get install -y memcached tcpdump python3)" >&2; exit 1; }
done
# Debian's package may run a system memcached on the same port: it must not answer instead of ours.
if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "record.sh: something already listens on 127.0.0.1:$port (a system memcached?); stop it first" >&2
    exit 1
fi

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; pids=(); }
trap cleanup EXIT

for s in "${scenarios[@]}"; do
    out="$here/$s.pcap"
    # -U 0: no UDP listener; -t 1: one worker thread, so replies are written in request order.
    memcached -l 127.0.0.1 -p "$port" -U 0 -t 1 -u "$user" -m 16 &
    server=$!; pids+=("$server")
    # Wait until the server accepts (this probe happens before tcpdump starts, so it is not
    # captured), then until tcpdump says it is listening.
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    log="$(mktemp)"
    tcpdump -i lo -s 0 -U --immediate-mode -Z root -w "$out" "tcp port $port" 2>"$log" &
    dump=$!; pids+=("$dump")
    for _ in $(seq 100); do grep -q "listening on" "$log" && break; sleep 0.1; done
    sleep 0.3
    python3 "$here/client.py" "$s" "$port"
    sleep 1                                  # last ACKs and FINs
    kill -INT "$dump"; wait "$dump" || true
    grep -E "captured|dropped" "$log" | tr "\n" " "; echo; rm -f "$log"
    kill "$server"; wait "$server" || true
    pids=()
    echo "$s: $(tcpdump -r "$out" 2>/dev/null | wc -l) packets -> $out"
done
