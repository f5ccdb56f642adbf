#!/usr/bin/env bash
# Installs Suricata 7 from Debian's official <codename>-backports suite.
# Suricata 7 is not in bookworm main. The mirror and keyring are taken from the
# first stanza of the machine's own deb822 sources file, so this script never
# names a registry host itself.
set -euo pipefail

SOURCES=${DEBIAN_SOURCES:-/etc/apt/sources.list.d/debian.sources}
TARGET=/etc/apt/sources.list.d/sensor-plugins-backports.sources

if command -v suricata >/dev/null 2>&1 && suricata -V 2>/dev/null | grep -q 'version 7\.'; then
    echo "install-suricata: $(suricata -V 2>&1 | head -n1) already installed"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-suricata: must run as root (apt-get install)" >&2
    exit 1
fi
if [ ! -r "$SOURCES" ]; then
    echo "install-suricata: $SOURCES not found; add <codename>-backports by hand, then: apt-get install -t <codename>-backports suricata" >&2
    exit 1
fi

# The first stanza ends at the first blank line.
stanza=$(awk 'BEGIN{RS=""} NR==1{print; exit}' "$SOURCES")
uris=$(printf '%s\n' "$stanza" | sed -n 's/^URIs:[[:space:]]*//p' | head -n1)
signed_by=$(printf '%s\n' "$stanza" | sed -n 's/^Signed-By:[[:space:]]*//p' | head -n1)
. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}

if [ -z "$uris" ]; then
    echo "install-suricata: no URIs: line in the first stanza of $SOURCES" >&2
    exit 1
fi

tmp=$(mktemp "$TARGET.XXXXXX")
{
    echo "Types: deb"
    echo "URIs: $uris"
    echo "Suites: ${codename}-backports"
    echo "Components: main"
    [ -n "$signed_by" ] && echo "Signed-By: $signed_by"
} >"$tmp"
chmod 0644 "$tmp"
mv "$tmp" "$TARGET"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# -t is needed: without it apt mixes bookworm's libhtp2 with backports' suricata and fails.
apt-get install -y -qq -t "${codename}-backports" suricata >/dev/null
suricata -V
