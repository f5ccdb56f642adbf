#!/usr/bin/env bash
# Installs Zeek 7.0 LTS into /opt/zeek from a prebuilt tarball, when no Zeek 7.0 is on PATH.
#
# ZEEK_TARBALL names the tarball (the Makefile passes ../shared/zeek/'s where it exists).
# Its sha256 must match the SHA256SUMS file beside it (or ZEEK_SHA256, where set): a
# tarball that does not match is refused, never unpacked. The tarball unpacks at / into
# /opt/zeek, which is the only prefix it runs from (library and script paths are built in).
# Without a tarball this says in one line how to get Zeek and exits 0: the Zeek-marked
# tests then skip locally, and fail under CI=true (tests/conftest.py).
set -euo pipefail

PREFIX=/opt/zeek
LINKS=(zeek zeek-cut zeek-config zeekctl zkg)

have_zeek7() {
    command -v zeek >/dev/null 2>&1 && zeek --version 2>/dev/null | grep -q 'version 7\.0\.'
}

# zeekctl and zkg are Python programs for Debian's python3 (the broker bindings in
# /opt/zeek/lib are built for it); the build machine's shebang may name another Python.
fix_shebangs() {
    for b in zeekctl zkg; do
        [ -f "$PREFIX/bin/$b" ] && sed -i '1s|^#!.*python3.*$|#!/usr/bin/python3|' "$PREFIX/bin/$b"
    done
    return 0
}

link_bins() {
    for b in "${LINKS[@]}"; do
        [ -x "$PREFIX/bin/$b" ] && ln -sf "$PREFIX/bin/$b" "/usr/local/bin/$b"
    done
}

# A Zeek already on PATH is the site's own (or one this script unpacked and fixed): left as it is.
if have_zeek7; then
    echo "install-zeek: $(zeek --version) already installed"
    exit 0
fi

tarball=${ZEEK_TARBALL:-}
if [ -z "$tarball" ] || [ ! -r "$tarball" ]; then
    echo "install-zeek: no Zeek 7.0 on PATH and no tarball (set ZEEK_TARBALL, or install Zeek 7.0 LTS from zeek.org's packages and put zeek on PATH); Zeek tests will skip"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "install-zeek: must run as root (unpacks into $PREFIX and installs runtime libraries)" >&2
    exit 1
fi

want=${ZEEK_SHA256:-}
if [ -z "$want" ]; then
    sums="$(dirname "$tarball")/SHA256SUMS"
    if [ ! -r "$sums" ]; then
        echo "install-zeek: $sums not found: set ZEEK_SHA256 to the tarball's sha256" >&2
        exit 1
    fi
    want=$(awk -v f="$(basename "$tarball")" '$2 == f || $2 == "*" f {print $1}' "$sums")
    if [ -z "$want" ]; then
        echo "install-zeek: $sums has no line for $(basename "$tarball")" >&2
        exit 1
    fi
fi
got=$(sha256sum "$tarball" | awk '{print $1}')
if [ "$got" != "$want" ]; then
    echo "install-zeek: $tarball has sha256 $got, expected $want: refusing to unpack it" >&2
    exit 1
fi

# The build's runtime libraries (its README), zstd for tar, and what zkg imports under
# Debian's python3 (zeekctl and zkg run under /usr/bin/python3, not a venv's).
need=()
for pkg in zstd libpcap0.8 libmaxminddb0 libsqlite3-0 libssl3 zlib1g python3-git python3-semantic-version; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tar -C / -xf "$tarball"
fix_shebangs
link_bins
hash -r
if ! have_zeek7; then
    echo "install-zeek: unpacked $tarball but 'zeek --version' does not report 7.0" >&2
    exit 1
fi
echo "install-zeek: $(zeek --version) installed in $PREFIX"
