#!/usr/bin/env bash
# Regenerate the Eclipse Leshan reference captures (pcaps/leshan-*.pcap).
#
# Usage: pcaps/make_leshan_captures.sh [scenario...]
#   scenarios: bootstrap nosec psk psk-cid oscore   (default: all)
#
# Requirements: root (tcpdump on lo), Java 17, Maven 3.8. The first build needs
# Maven Central (plugins + Leshan 2.0.0-M15 artifacts); afterwards it runs offline (-o).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEER="$HERE/peers/leshan"
JAR="$PEER/target/leshan-scenario.jar"
# Only the ports used by the scenario, so unrelated loopback traffic is not captured.
FILTER='udp and (port 5683 or port 5684 or port 5783 or port 56830 or port 56840)'

build() {
    if ! (cd "$PEER" && mvn -q -o package); then
        echo "offline build failed, retrying online" >&2
        (cd "$PEER" && mvn -q package)
    fi
}

capture() { # <scenario> <pcap name>
    local scenario="$1" out="$HERE/$2.pcap" log="$HERE/peers/leshan/target/$2.log"
    rm -f "$out"
    tcpdump -i lo -U -w "$out" "$FILTER" 2>"$log.tcpdump" &
    local tpid=$!
    # wait until tcpdump is listening
    for _ in $(seq 1 50); do
        grep -q "listening on" "$log.tcpdump" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
    local rc=0
    java -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -jar "$JAR" "$scenario" >"$log" 2>&1 || rc=$?
    sleep 1
    kill -INT "$tpid"
    wait "$tpid" || true
    echo "== $scenario -> $out (java rc=$rc, log: $log)"
    grep -E "^\[server\]|^\[client\]|^\[bs-server\]|^\[scenario\]" "$log" | cut -c1-160 | sed 's/^/   /' | tail -n 5
    if [ "$rc" != 0 ]; then
        echo "scenario $scenario FAILED, see $log" >&2
        return 1
    fi
}

build
scenarios=("$@")
[ ${#scenarios[@]} -eq 0 ] && scenarios=(bootstrap nosec psk psk-cid oscore)
for s in "${scenarios[@]}"; do
    case "$s" in
    bootstrap) capture bootstrap leshan-nosec-bootstrap ;;
    nosec) capture nosec leshan-nosec-operations ;;
    psk) capture psk leshan-psk-ccm8 ;;
    psk-cid) capture psk-cid leshan-psk-cid ;;
    oscore) capture oscore leshan-oscore ;;
    *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done
