"""TLS and SSLv3 records and handshake messages as real wire bytes, and a reader for them.

Only what the scenario pcaps need is here: the clear handshake a sensor inspects
(hellos, certificates, key exchange) is exact, and what would be encrypted is filled
with seeded random bytes of the length a real cipher would produce.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

SSL3 = 0x0300
TLS10 = 0x0301
TLS11 = 0x0302
TLS12 = 0x0303
TLS13 = 0x0304

CHANGE_CIPHER_SPEC = 20
ALERT = 21
HANDSHAKE = 22
APPLICATION_DATA = 23
CONTENT_TYPES = (CHANGE_CIPHER_SPEC, ALERT, HANDSHAKE, APPLICATION_DATA)

CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11
SERVER_KEY_EXCHANGE = 12
SERVER_HELLO_DONE = 14
CLIENT_KEY_EXCHANGE = 16

TLS_RSA_WITH_RC4_128_SHA = 0x0005
TLS_RSA_WITH_3DES_EDE_CBC_SHA = 0x000A
TLS_RSA_WITH_AES_128_CBC_SHA = 0x002F
TLS_RSA_WITH_AES_256_CBC_SHA = 0x0035
TLS_RSA_WITH_AES_128_GCM_SHA256 = 0x009C
TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 = 0xC02F
TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 = 0xC030
TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA = 0xC013
TLS_AES_128_GCM_SHA256 = 0x1301
TLS_AES_256_GCM_SHA384 = 0x1302
TLS_CHACHA20_POLY1305_SHA256 = 0x1303

EXT_SERVER_NAME = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_SUPPORTED_VERSIONS = 43
EXT_PSK_KEY_EXCHANGE_MODES = 45
EXT_KEY_SHARE = 51
EXT_RENEGOTIATION_INFO = 0xFF01

GROUP_X25519 = 0x001D
GROUP_SECP256R1 = 0x0017
RSA_PKCS1_SHA256 = 0x0401
SIGNATURE_ALGORITHMS = (0x0401, 0x0501, 0x0601, 0x0804, 0x0805, 0x0806, 0x0201)

# Bytes an encrypted record adds to its plaintext: (fixed overhead, block size or 0).
# GCM: 8-byte explicit nonce + 16-byte tag; RC4-SHA: 20-byte MAC; CBC-SHA: IV + MAC, padded.
RECORD_OVERHEAD = {
    TLS_RSA_WITH_RC4_128_SHA: (20, 0),
    TLS_RSA_WITH_AES_128_CBC_SHA: (20, 16),
    TLS_RSA_WITH_AES_128_GCM_SHA256: (24, 0),
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: (24, 0),
    TLS_AES_128_GCM_SHA256: (17, 0),  # 1.3: inner content type byte + 16-byte tag
}


def u8(n: int) -> bytes:
    return struct.pack("!B", n)


def u16(n: int) -> bytes:
    return struct.pack("!H", n)


def u24(n: int) -> bytes:
    return struct.pack("!I", n)[1:]


def vec8(data: bytes) -> bytes:
    return u8(len(data)) + data


def vec16(data: bytes) -> bytes:
    return u16(len(data)) + data


def vec24(data: bytes) -> bytes:
    return u24(len(data)) + data


def record(content_type: int, version: int, body: bytes) -> bytes:
    """One TLS record; bodies over 2^14 bytes are not needed by any scenario and refused."""
    if len(body) > 16384 + 2048:
        raise ValueError(f"TLS record body of {len(body)} bytes is too long")
    return u8(content_type) + u16(version) + vec16(body)


def handshake(msg_type: int, body: bytes) -> bytes:
    return u8(msg_type) + vec24(body)


def extension(ext_type: int, data: bytes) -> bytes:
    return u16(ext_type) + vec16(data)


def sni_extension(host: str) -> bytes:
    # server_name_list of one host_name (type 0) entry.
    return extension(EXT_SERVER_NAME, vec16(u8(0) + vec16(host.encode("ascii"))))


def u16_list(values: Iterable[int]) -> bytes:
    return b"".join(u16(v) for v in values)


@dataclass(frozen=True)
class ClientHello:
    version: int
    random: bytes
    ciphers: tuple[int, ...]
    server_name: str | None = None
    session_id: bytes = b""
    supported_versions: tuple[int, ...] = ()
    key_share: bytes = b""  # an x25519 public key, for TLS 1.3
    ecc: bool = False

    def extensions(self) -> bytes:
        exts = []
        if self.server_name:
            exts.append(sni_extension(self.server_name))
        if self.ecc or self.supported_versions:
            exts.append(extension(EXT_SUPPORTED_GROUPS, vec16(u16_list((GROUP_X25519, GROUP_SECP256R1)))))
            exts.append(extension(EXT_EC_POINT_FORMATS, vec8(b"\x00")))
        if self.version >= TLS12:
            exts.append(extension(EXT_SIGNATURE_ALGORITHMS, vec16(u16_list(SIGNATURE_ALGORITHMS))))
        if self.version >= TLS10:
            exts.append(extension(EXT_RENEGOTIATION_INFO, b"\x00"))
        if self.supported_versions:
            exts.append(extension(EXT_SUPPORTED_VERSIONS, vec8(u16_list(self.supported_versions))))
            exts.append(extension(EXT_PSK_KEY_EXCHANGE_MODES, vec8(b"\x01")))
        if self.key_share:
            entry = u16(GROUP_X25519) + vec16(self.key_share)
            exts.append(extension(EXT_KEY_SHARE, vec16(entry)))
        return b"".join(exts)

    def to_bytes(self) -> bytes:
        body = (
            u16(self.version)
            + self.random
            + vec8(self.session_id)
            + vec16(u16_list(self.ciphers))
            + vec8(b"\x00")  # compression: null only
        )
        exts = self.extensions()
        if exts:
            body += vec16(exts)
        return handshake(CLIENT_HELLO, body)


@dataclass(frozen=True)
class ServerHello:
    version: int
    random: bytes
    cipher: int
    session_id: bytes = b""
    selected_version: int | None = None  # TLS 1.3 puts the real version in supported_versions
    key_share: bytes = b""
    ecc: bool = False

    def extensions(self) -> bytes:
        exts = []
        if self.selected_version is not None:
            exts.append(extension(EXT_SUPPORTED_VERSIONS, u16(self.selected_version)))
            exts.append(extension(EXT_KEY_SHARE, u16(GROUP_X25519) + vec16(self.key_share)))
            return b"".join(exts)
        if self.version >= TLS10:
            exts.append(extension(EXT_RENEGOTIATION_INFO, b"\x00"))
        if self.ecc:
            exts.append(extension(EXT_EC_POINT_FORMATS, vec8(b"\x00")))
        return b"".join(exts)

    def to_bytes(self) -> bytes:
        body = u16(self.version) + self.random + vec8(self.session_id) + u16(self.cipher) + b"\x00"
        exts = self.extensions()
        if exts:
            body += vec16(exts)
        return handshake(SERVER_HELLO, body)


def certificate(chain_der: Iterable[bytes]) -> bytes:
    """The TLS 1.2-and-earlier Certificate message: leaf first, then the issuers."""
    return handshake(CERTIFICATE, vec24(b"".join(vec24(c) for c in chain_der)))


def server_key_exchange_ecdhe(public_key: bytes, signature: bytes) -> bytes:
    return handshake(SERVER_KEY_EXCHANGE, ecdhe_params(public_key) + u16(RSA_PKCS1_SHA256) + vec16(signature))


def ecdhe_params(public_key: bytes) -> bytes:
    """ServerECDHParams for a named curve (x25519); this is what the server signs."""
    return u8(3) + u16(GROUP_X25519) + vec8(public_key)


def server_hello_done() -> bytes:
    return handshake(SERVER_HELLO_DONE, b"")


def client_key_exchange_rsa(encrypted_premaster: bytes, version: int) -> bytes:
    # SSLv3 sends the RSA block bare; TLS prefixes it with a two-byte length.
    body = encrypted_premaster if version == SSL3 else vec16(encrypted_premaster)
    return handshake(CLIENT_KEY_EXCHANGE, body)


def client_key_exchange_ecdhe(public_key: bytes) -> bytes:
    return handshake(CLIENT_KEY_EXCHANGE, vec8(public_key))


def change_cipher_spec(version: int) -> bytes:
    return record(CHANGE_CIPHER_SPEC, version, b"\x01")


def encrypted_length(cipher: int, plaintext_len: int) -> int:
    overhead, block = RECORD_OVERHEAD.get(cipher, (24, 0))
    if not block:
        return plaintext_len + overhead
    # CBC pads to the next whole block, with at least one byte of padding. Only SSLv3
    # uses CBC here, and SSLv3 has no explicit IV.
    return (plaintext_len + overhead) // block * block + block


def encrypted_record(
    rng: random.Random, content_type: int, version: int, cipher: int, plaintext_len: int
) -> bytes:
    """A record whose body looks like ciphertext of ``plaintext_len`` bytes under ``cipher``."""
    return record(content_type, version, rng.randbytes(encrypted_length(cipher, plaintext_len)))


@dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    body: bytes


def parse_records(stream: bytes) -> Iterator[Record]:
    """Split one direction of a TLS stream into records; raises ValueError on a short or odd one."""
    offset = 0
    while offset < len(stream):
        if len(stream) - offset < 5:
            raise ValueError(f"truncated record header at offset {offset}")
        content_type, version, length = struct.unpack_from("!BHH", stream, offset)
        if content_type not in CONTENT_TYPES:
            raise ValueError(f"unknown record content type {content_type} at offset {offset}")
        body = stream[offset + 5 : offset + 5 + length]
        if len(body) != length:
            raise ValueError(f"record at offset {offset} says {length} bytes, has {len(body)}")
        yield Record(content_type, version, body)
        offset += 5 + length


def parse_handshakes(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Split clear handshake bytes (records' bodies joined) into (type, body) messages."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < 4:
            raise ValueError(f"truncated handshake header at offset {offset}")
        msg_type = data[offset]
        length = int.from_bytes(data[offset + 1 : offset + 4], "big")
        body = data[offset + 4 : offset + 4 + length]
        if len(body) != length:
            raise ValueError(f"handshake type {msg_type} at offset {offset} says {length} bytes")
        yield msg_type, body
        offset += 4 + length


def parse_certificate_chain(body: bytes) -> list[bytes]:
    """The DER certificates of a Certificate message body, checking every length."""
    total = int.from_bytes(body[:3], "big")
    if total != len(body) - 3:
        raise ValueError(f"certificate list says {total} bytes, has {len(body) - 3}")
    chain, offset = [], 3
    while offset < len(body):
        length = int.from_bytes(body[offset : offset + 3], "big")
        cert = body[offset + 3 : offset + 3 + length]
        if len(cert) != length:
            raise ValueError(f"certificate at offset {offset} says {length} bytes, has {len(cert)}")
        chain.append(cert)
        offset += 3 + length
    return chain
