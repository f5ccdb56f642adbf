#!/usr/bin/env bash
# Debian packages the project needs beyond Suricata: venv support for the system Python,
# tcpreplay, tcpdump and iproute2 for the virtual-tap tests, GNU time and valgrind for benchmarks,
# and chromium for the report's browser test. Idempotent: installs only what is missing.
set -euo pipefail

need=()
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
command -v tcpreplay >/dev/null 2>&1 || need+=(tcpreplay)
# The reload-under-load tap test times each SYN on the tap with tcpdump.
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ -x /usr/bin/time ] || need+=(time)
# make bench counts Suricata's and Zeek's instructions with callgrind (B5, B7).
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v make >/dev/null 2>&1 || need+=(make)
# deploy offers the rules as a suricata-update source; the tests run it offline.
command -v suricata-update >/dev/null 2>&1 || need+=(suricata-update)
# analyze --engine spark (pyspark 4.x) runs on Java 17.
java -version 2>&1 | grep -q 'version "17' || [ -x /usr/lib/jvm/java-17-openjdk-amd64/bin/java ] \
    || need+=(openjdk-17-jre-headless)

if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "install-system-deps: installed ${need[*]}"
