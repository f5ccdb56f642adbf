"""The Zeek backend: the catalogue and Tor lists in, a loadable Zeek 7.0 package out.

The package keeps code and data apart: the scripts are fixed templates, while the
ranges and Tor addresses go into Input-framework TSV files that Zeek re-reads when
they change, plus one Intel-framework file for the ranges (the opt-in Tor intel is
inserted by intel-tor.zeek from the Tor table itself). Only ``defaults.zeek`` carries catalogue
text inside Zeek code, so that is where the string-literal escaping matters most.

Every string from the catalogue or a feed passes through one of the escapers below
before it reaches a file; the renderer does its own escaping even though the loaders
already refuse control characters, because it alone knows the target syntax.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from sensor_plugins.errors import SensorPluginsError
from sensor_plugins.generate.content import Rendered, SensorContent
from sensor_plugins.generate.templating import environment
from sensor_plugins.inputs.catalogue import Range
from sensor_plugins.inputs.feeds import TorEntry, address_order

PACKAGE_NAME = "nk-sensor"
RANGES_TSV = "nk-ranges.tsv"
TOR_TSV = "tor-relays.tsv"
INTEL_FILE = "nk-intel.dat"

RANGE_FIELDS = (
    "cidr", "name", "country", "owner", "source", "confidence", "asn", "first_seen", "last_seen", "notes",
)
TOR_FIELDS = ("address", "role", "feed", "last_seen")
INTEL_FIELDS = ("indicator", "indicator_type", "meta.source", "meta.desc")
INTEL_SOURCE_RANGES = "sensor-plugins catalogue"
INTEL_SOURCE_TOR = "sensor-plugins tor"

# The Tor-style certificate test (Tor's tortls.c names both ends with
# crypto_random_hostname(8, 20, "www.", ...): base32 characters, .com issuer, .net
# subject). Kept here so the test suite checks the very regex the package ships.
TOR_CERT_ISSUER_RE = r"^CN=www\.[a-z2-7]{8,20}\.com$"
TOR_CERT_SUBJECT_RE = r"^CN=www\.[a-z2-7]{8,20}\.net$"
# Cipher suite names Zeek reports (SSL::cipher_desc) that are unsafe.
UNSAFE_CIPHER_RE = r"_EXPORT|_RC4_|_NULL|_anon_|_DES_|_DES40_|_3DES_|_MD5"
# Certificate signature algorithms (X509::Certificate$sig_alg) built on MD2/4/5, SHA-1 or SHA-0
# ("shaWithRSAEncryption"); spelled without /i or inner anchors, which Zeek patterns handle poorly.
WEAK_SIG_ALG_RE = r"[mM][dD][245]|[sS][hH][aA]1|shaWith"

# Files whose text depends on no input; rendered once each, in this order.
STATIC_SCRIPTS = (
    "__load__.zeek", "main.zeek", "live-data.zeek", "tagging.zeek", "tls.zeek", "tor.zeek",
    "bittorrent.zeek", "intel.zeek", "intel-tor.zeek", "bittorrent.sig", "zkg.meta",
)
# Scripts that __load__.zeek leaves out, for a site to load by hand after the package.
OPT_IN_SCRIPTS = ("intel-tor.zeek",)


class ZeekRenderError(SensorPluginsError):
    """A value the renderer cannot write safely; the message names the entry and field."""


def zeek_string(value: str) -> str:
    """A Zeek string literal (with the quotes) holding exactly ``value``'s UTF-8 bytes.

    Everything outside printable ASCII becomes ``\\xNN`` so the file stays ASCII and no
    byte can end the literal or the line.
    """
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


def zeek_comment(value: str) -> str:
    """Text safe inside a ``#``/``##`` comment: one line, printable ASCII, bytes escaped."""
    return "".join(
        chr(b) if 0x20 <= b < 0x7F and chr(b) != "\\" else f"\\x{b:02x}" for b in value.encode("utf-8")
    )


# A whole field equal to one of these is read back as something else by Zeek's
# ASCII reader (unset, empty set), so it is escaped rather than written verbatim.
_TSV_MARKERS = {"-", "(empty)"}


def tsv_field(value: str, *, optional: bool = False, where: str = "") -> str:
    """One field of an Input-framework ASCII file, read back byte for byte by Zeek.

    Zeek's reader unescapes ``\\xNN`` in every field, splits lines on tab, skips lines
    starting with ``#``, and reads a bare ``-`` as unset. So backslash, tab, newline,
    ``#`` and every byte outside printable ASCII are written as ``\\xNN``, a field that
    is exactly ``-`` or ``(empty)`` gets its first byte escaped, and an empty value is
    written as unset (``-``) when the field is optional and refused otherwise: a
    trailing empty field would be lost by the reader's tab split. The set separator ``,`` stays literal: no
    generated column is a set, and in a string column the reader keeps it as it is.
    """
    if value == "":
        if optional:
            return "-"
        raise ZeekRenderError(f"{where}: empty value for a required field of the Zeek data file")
    if value.isascii() and value.isprintable() and "\\" not in value and "#" not in value \
            and value not in _TSV_MARKERS:
        # Nothing to escape, the common case; the byte loop below cost a 10k-range
        # catalogue over a second.
        return value
    data = value.encode("utf-8")
    out = []
    for i, byte in enumerate(data):
        ch = chr(byte)
        escape = (
            not 0x20 <= byte < 0x7F
            or ch in "\\#"
            or (i == 0 and value in _TSV_MARKERS)
        )
        out.append(f"\\x{byte:02x}" if escape else ch)
    return "".join(out)


def tsv_unescape(field: str) -> str:
    """The inverse of :func:`tsv_field` as Zeek's reader applies it (``-`` is unset -> "")."""
    if field == "-":
        return ""
    raw = bytearray()
    i = 0
    while i < len(field):
        if field.startswith("\\x", i) and len(field) >= i + 4 and _is_hex(field[i + 2 : i + 4]):
            raw.append(int(field[i + 2 : i + 4], 16))
            i += 4
        else:
            raw.extend(field[i].encode("utf-8"))
            i += 1
    return raw.decode("utf-8")


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


def zeek_subnet(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """A subnet literal: IPv6 needs brackets around the address in Zeek source."""
    if network.version == 6:
        return f"[{network.network_address}]/{network.prefixlen}"
    return str(network)


def _checked_network(value: object, where: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # A hand-built Range could hold anything; only a real network object reaches a file.
    if not isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        raise ZeekRenderError(f"{where}: field 'cidr' is not a network: {value!r}")
    return value


def _checked_address(value: str, where: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError as exc:
        raise ZeekRenderError(f"{where}: field 'address' is not an IP address: {value[:60]!r}") from exc


@dataclass(frozen=True)
class RangeRow:
    """One catalogue range as the Zeek files need it: every text already a plain str."""

    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    name: str
    country: str
    owner: str
    source: str
    confidence: str
    asn: str
    first_seen: str
    last_seen: str
    notes: str

    @classmethod
    def of(cls, r: Range, index: int) -> RangeRow:
        where = f"catalogue ranges[{index}]"
        return cls(
            cidr=_checked_network(r.cidr, where),
            name=str(r.name),
            country=str(r.country),
            owner=str(r.owner),
            source=str(r.source),
            confidence=str(r.confidence),
            asn="" if r.asn is None else str(int(r.asn)),
            first_seen=r.first_seen.isoformat() if r.first_seen else "",
            last_seen=r.last_seen.isoformat() if r.last_seen else "",
            notes=str(r.notes),
        )

    def description(self) -> str:
        facts = [self.country]
        if self.asn:
            facts.append(f"AS{self.asn}")
        facts.append(f"confidence {self.confidence}")
        if self.last_seen:
            facts.append(f"historical, last seen {self.last_seen}")
        return f"{self.name}: {self.owner} ({', '.join(facts)}; source: {self.source})"


def range_rows(content: SensorContent) -> list[RangeRow]:
    return [RangeRow.of(r, i) for i, r in enumerate(content.catalogue.ranges)]


def tor_entries(content: SensorContent) -> list[TorEntry]:
    """Every Tor address once, IPv4 before IPv6 and in numeric order, for stable output."""
    entries = []
    for address, entry in content.tor.entries.items():
        _checked_address(address, f"Tor list entry {address[:60]!r}")
        entries.append(entry)
    return sorted(entries, key=lambda e: address_order(e.address))


def _tsv(fields: tuple[str, ...], rows: list[list[str]], header: list[str]) -> str:
    lines = [f"# {zeek_comment(h)}" for h in header]
    lines.append("#fields\t" + "\t".join(fields))
    lines.extend("\t".join(row) for row in rows)
    return "\n".join(lines) + "\n"


def render_ranges_tsv(rows: list[RangeRow], header: list[str]) -> str:
    body = []
    for i, r in enumerate(rows):
        where = f"catalogue ranges[{i}] ({r.name[:40]!r})"
        body.append([
            str(r.cidr),
            tsv_field(r.name, where=f"{where} field 'name'"),
            tsv_field(r.country, where=f"{where} field 'country'"),
            tsv_field(r.owner, where=f"{where} field 'owner'"),
            tsv_field(r.source, where=f"{where} field 'source'"),
            tsv_field(r.confidence, where=f"{where} field 'confidence'"),
            tsv_field(r.asn, optional=True),
            tsv_field(r.first_seen, optional=True),
            tsv_field(r.last_seen, optional=True),
            tsv_field(r.notes, optional=True),
        ])
    return _tsv(RANGE_FIELDS, body, header)


def render_tor_tsv(entries: list[TorEntry], header: list[str]) -> str:
    body = [
        [
            e.address,
            tsv_field(e.role, where=f"Tor list entry {e.address} field 'role'"),
            tsv_field(e.feed, optional=True),
            tsv_field(e.last_seen.isoformat() if e.last_seen else "", optional=True),
        ]
        for e in entries
    ]
    return _tsv(TOR_FIELDS, body, header)


def render_intel(rows: list[RangeRow], header: list[str]) -> str:
    body = [
        [str(r.cidr), "Intel::SUBNET", tsv_field(INTEL_SOURCE_RANGES),
         tsv_field(r.description(), where=f"catalogue range {r.name[:40]!r} description")]
        for r in rows
    ]
    return _tsv(INTEL_FIELDS, body, header)


def provenance_header(content: SensorContent) -> list[str]:
    """Comment lines naming the inputs; dates only from the inputs, never the clock."""
    lines = ["Generated by sensor-plugins; regenerate instead of editing.",
             f"Catalogue: {content.catalogue.description or 'no description'}",
             f"Content date: {content.content_date.isoformat()}"]
    lines += [f"Tor feed: {f.name} ({f.format}, fetched {f.fetched.isoformat()})" for f in content.tor.feeds]
    return lines


class ZeekRenderer:
    """Renders the ``zeek_scripts/`` package; writes nothing to disk."""

    name = "zeek"

    def render(self, content: SensorContent, previous: Path | None) -> Rendered:
        rows = range_rows(content)
        entries = tor_entries(content)
        header = provenance_header(content)
        env = environment("zeek", filters={
            "zeek_string": zeek_string,
            "zeek_comment": zeek_comment,
            "zeek_subnet": zeek_subnet,
        })
        context = {
            "package": PACKAGE_NAME,
            "header": header,
            "ranges": rows,
            "ranges_tsv": RANGES_TSV,
            "tor_tsv": TOR_TSV,
            "intel_file": INTEL_FILE,
            "intel_source_tor": INTEL_SOURCE_TOR,
            "tor_cert_issuer_re": TOR_CERT_ISSUER_RE,
            "tor_cert_subject_re": TOR_CERT_SUBJECT_RE,
            "unsafe_cipher_re": UNSAFE_CIPHER_RE,
            "weak_sig_alg_re": WEAK_SIG_ALG_RE,
        }
        files = {name: env.get_template(name + ".j2").render(context) for name in STATIC_SCRIPTS}
        files["defaults.zeek"] = env.get_template("defaults.zeek.j2").render(context)
        files[RANGES_TSV] = render_ranges_tsv(rows, header)
        files[TOR_TSV] = render_tor_tsv(entries, header)
        files[INTEL_FILE] = render_intel(rows, header)
        files = dict(sorted(files.items()))
        return Rendered(files=files, summary=self._summary(rows, entries, files, previous))

    @staticmethod
    def _summary(rows: list[RangeRow], entries: list[TorEntry], files: dict[str, str],
                 previous: Path | None) -> list[str]:
        exits = sum(1 for e in entries if e.role == "exit")
        lines = [f"zeek: {len(rows)} ranges, {len(entries)} Tor addresses ({exits} exits), "
                 f"{len(files)} files"]
        if previous is not None and previous.is_dir():
            changed = [
                rel for rel, text in files.items()
                if not (previous / rel).is_file() or (previous / rel).read_bytes() != text.encode("utf-8")
            ]
            lines.append("zeek: changed: " + (", ".join(changed) if changed else "nothing"))
        return lines


def render(content: SensorContent) -> Rendered:
    """Convenience: render without a previous output directory."""
    return ZeekRenderer().render(content, None)
