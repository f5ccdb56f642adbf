"""ClientHellos given extension by extension, in wire order, as particular clients send them.

``wire.ClientHello`` writes one generic hello; the client-fingerprint scenarios need
hellos that differ where JA4 looks: GREASE values, ALPN, the extension set and order,
the highest version offered, the cipher list. Each builder here returns a
``CustomHello`` whose random parts (GREASE picks, key shares, session ids) come from
the scenario's seeded rng, so the pcaps stay byte-identical between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sensor_plugins.scenarios.tls import wire as t

GREASE = tuple(0x0A0A + 0x1010 * i for i in range(16))

EXT_STATUS_REQUEST = 5
EXT_ALPN = 16
EXT_SCT = 18
EXT_ENCRYPT_THEN_MAC = 22
EXT_EXTENDED_MASTER_SECRET = 23
EXT_COMPRESS_CERTIFICATE = 27
EXT_SESSION_TICKET = 35
EXT_ALPS = 0x4469
EXT_ECH = 0xFE0D
GROUP_SECP384R1 = 0x0018
BROWSER_SIGNATURE_ALGORITHMS = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)

# A Chromium 12x offer (FoxIO's table names its JA4 "Chromium Browser").
BROWSER_CIPHERS = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014,
                   0x009C, 0x009D, 0x002F, 0x0035)
# OpenSSL 1.1.1's default client offer, which the tor daemon's link connections use.
OPENSSL_CIPHERS = (0x1302, 0x1303, 0x1301, 0xC02C, 0xC030, 0x009F, 0xCCA9, 0xCCA8, 0xCCAA, 0xC02B, 0xC02F,
                   0x009E, 0xC024, 0xC028, 0x006B, 0xC023, 0xC027, 0x0067, 0xC00A, 0xC014, 0x0039, 0xC009,
                   0xC013, 0x0033, 0x009D, 0x009C, 0x003D, 0x003C, 0x0035, 0x002F, 0x00FF)
OPENSSL_SIGNATURE_ALGORITHMS = (0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080A, 0x080B, 0x0804,
                                0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0303, 0x0203, 0x0301, 0x0201,
                                0x0302, 0x0202, 0x0402, 0x0502, 0x0602)
# A Windows XP-era client: RC4, export and single-DES suites, nothing above TLS 1.0.
OLD_CLIENT_CIPHERS = (0x0004, 0x0005, 0x000A, 0x0009, 0x0064, 0x0062, 0x0003, 0x0006, 0x0013, 0x0012, 0x0063,
                      0x002F, 0x0035)
# An embedded TLS 1.2 client that connects by address: no SNI, no ALPN.
EMBEDDED_CIPHERS = (0xC02F, 0xC030, 0xC013, 0xC014, 0x009C, 0x009D, 0x002F, 0x0035)


@dataclass(frozen=True)
class CustomHello:
    """A ClientHello: legacy version, session id, ciphers and (type, data) extensions in order."""

    version: int
    ciphers: tuple[int, ...]
    extensions: tuple[tuple[int, bytes], ...]
    session_id: bytes = b""

    def to_bytes(self, client_random: bytes) -> bytes:
        body = (t.u16(self.version) + client_random + t.vec8(self.session_id)
                + t.vec16(t.u16_list(self.ciphers)) + t.vec8(b"\x00"))
        if self.extensions:
            body += t.vec16(b"".join(t.extension(kind, data) for kind, data in self.extensions))
        return t.handshake(t.CLIENT_HELLO, body)

    @property
    def server_name(self) -> str | None:
        for kind, data in self.extensions:
            if kind == t.EXT_SERVER_NAME:
                return data[5:].decode("ascii")
        return None


def x25519_share(rng: random.Random) -> bytes:
    return X25519PrivateKey.from_private_bytes(rng.randbytes(32)).public_key().public_bytes_raw()


def alpn(*protocols: str) -> bytes:
    return t.vec16(b"".join(t.vec8(p.encode("ascii")) for p in protocols))


def server_name(host: str) -> bytes:
    return t.vec16(t.u8(0) + t.vec16(host.encode("ascii")))


def grease_pair(rng: random.Random) -> tuple[int, int]:
    """Two different GREASE values, as Chromium picks a fresh one for each place."""
    first, second = rng.sample(GREASE, 2)
    return first, second


def browser_hello(rng: random.Random, host: str) -> CustomHello:
    """Chromium's TLS 1.3 hello: GREASE in ciphers, groups, key shares, versions and two extensions."""
    g_cipher, g_ext1 = grease_pair(rng)
    g_group, g_ext2 = grease_pair(rng)
    g_version = rng.choice(GREASE)
    # An ECH GREASE extension: outer type, HKDF-SHA256/AES-128-GCM, a random config id, a
    # random X25519 share and a 144-byte random payload, as Chromium sends without ECH configs.
    ech = t.u8(0) + t.u16(1) + t.u16(1) + t.u8(rng.randrange(256)) + t.vec16(x25519_share(rng)) \
        + t.vec16(rng.randbytes(144))
    extensions = (
        (g_ext1, b""),
        (t.EXT_SERVER_NAME, server_name(host)),
        (EXT_EXTENDED_MASTER_SECRET, b""),
        (t.EXT_RENEGOTIATION_INFO, b"\x00"),
        (t.EXT_SUPPORTED_GROUPS, t.vec16(t.u16_list((g_group, t.GROUP_X25519, t.GROUP_SECP256R1, GROUP_SECP384R1)))),
        (t.EXT_EC_POINT_FORMATS, t.vec8(b"\x00")),
        (EXT_SESSION_TICKET, b""),
        (EXT_ALPN, alpn("h2", "http/1.1")),
        (EXT_STATUS_REQUEST, b"\x01\x00\x00\x00\x00"),
        (t.EXT_SIGNATURE_ALGORITHMS, t.vec16(t.u16_list(BROWSER_SIGNATURE_ALGORITHMS))),
        (EXT_SCT, b""),
        (t.EXT_KEY_SHARE, t.vec16(t.u16(g_group) + t.vec16(b"\x00") + t.u16(t.GROUP_X25519)
                                  + t.vec16(x25519_share(rng)))),
        (t.EXT_PSK_KEY_EXCHANGE_MODES, t.vec8(b"\x01")),
        (t.EXT_SUPPORTED_VERSIONS, t.vec8(t.u16_list((g_version, t.TLS13, t.TLS12)))),
        (EXT_COMPRESS_CERTIFICATE, t.vec8(t.u16(2))),
        (EXT_ALPS, t.vec16(t.vec8(b"h2"))),
        (EXT_ECH, ech),
        (g_ext2, b"\x00"),
    )
    return CustomHello(t.TLS12, (g_cipher, *BROWSER_CIPHERS), extensions, rng.randbytes(32))


def tor_hello(rng: random.Random, host: str) -> CustomHello:
    """The tor daemon's link hello: OpenSSL 1.1.1 defaults, a random www.<x>.com SNI, no ALPN."""
    extensions = (
        (t.EXT_SERVER_NAME, server_name(host)),
        (t.EXT_EC_POINT_FORMATS, t.vec8(b"\x00\x01\x02")),
        (t.EXT_SUPPORTED_GROUPS, t.vec16(t.u16_list((t.GROUP_X25519, t.GROUP_SECP256R1, 0x001E, 0x0019,
                                                     GROUP_SECP384R1)))),
        (EXT_SESSION_TICKET, b""),
        (EXT_ENCRYPT_THEN_MAC, b""),
        (EXT_EXTENDED_MASTER_SECRET, b""),
        (t.EXT_SIGNATURE_ALGORITHMS, t.vec16(t.u16_list(OPENSSL_SIGNATURE_ALGORITHMS))),
        (t.EXT_SUPPORTED_VERSIONS, t.vec8(t.u16_list((t.TLS13, t.TLS12, t.TLS11, t.TLS10)))),
        (t.EXT_PSK_KEY_EXCHANGE_MODES, t.vec8(b"\x01")),
        (t.EXT_KEY_SHARE, t.vec16(t.u16(t.GROUP_X25519) + t.vec16(x25519_share(rng)))),
    )
    return CustomHello(t.TLS12, OPENSSL_CIPHERS, extensions, rng.randbytes(32))


def old_client_hello(rng: random.Random, host: str) -> CustomHello:
    """A TLS 1.0 client that still offers RC4, export and DES: SNI and renegotiation_info only."""
    extensions = ((t.EXT_SERVER_NAME, server_name(host)), (t.EXT_RENEGOTIATION_INFO, b"\x00"))
    return CustomHello(t.TLS10, OLD_CLIENT_CIPHERS, extensions)


def embedded_hello(rng: random.Random, host: str | None = None) -> CustomHello:
    """A TLS 1.2 client talking to an address: no SNI and no ALPN."""
    extensions = (
        (t.EXT_SUPPORTED_GROUPS, t.vec16(t.u16_list((t.GROUP_X25519, t.GROUP_SECP256R1)))),
        (t.EXT_EC_POINT_FORMATS, t.vec8(b"\x00")),
        (t.EXT_SIGNATURE_ALGORITHMS, t.vec16(t.u16_list(BROWSER_SIGNATURE_ALGORITHMS))),
        (EXT_EXTENDED_MASTER_SECRET, b""),
        (t.EXT_RENEGOTIATION_INFO, b"\x00"),
    )
    return CustomHello(t.TLS12, EMBEDDED_CIPHERS, extensions)
