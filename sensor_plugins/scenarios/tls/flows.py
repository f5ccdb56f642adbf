"""Complete TLS conversations over a ``TcpFlow``: handshake, key exchange, encrypted data, close.

The clear part (hellos, certificate chain, ECDHE parameters and their RSA signature) is
exact, so a sensor logs what it would log for a real session; everything after the
ChangeCipherSpec is seeded random bytes of a realistic length.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from sensor_plugins.scenarios.flows import TcpFlow
from sensor_plugins.scenarios.tls import wire as t
from sensor_plugins.scenarios.tls.hellos import CustomHello

ECDHE_CIPHERS = frozenset(
    {t.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, t.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
     t.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
)
# A 2017 browser's offer, and a legacy client's, so the server's pick is visible in the logs.
MODERN_CLIENT_CIPHERS = (
    t.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    t.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    t.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
    t.TLS_RSA_WITH_AES_128_GCM_SHA256,
    t.TLS_RSA_WITH_AES_128_CBC_SHA,
    t.TLS_RSA_WITH_AES_256_CBC_SHA,
)
LEGACY_CLIENT_CIPHERS = (
    t.TLS_RSA_WITH_RC4_128_SHA,
    0x0004,  # TLS_RSA_WITH_RC4_128_MD5
    t.TLS_RSA_WITH_AES_128_CBC_SHA,
    t.TLS_RSA_WITH_AES_256_CBC_SHA,
    t.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
)
TLS13_CLIENT_CIPHERS = (
    t.TLS_AES_128_GCM_SHA256,
    t.TLS_AES_256_GCM_SHA384,
    t.TLS_CHACHA20_POLY1305_SHA256,
    *MODERN_CLIENT_CIPHERS,
)


@dataclass(frozen=True)
class TlsSession:
    """What the server negotiates and presents."""

    version: int
    cipher: int
    server_name: str | None
    chain: tuple[bytes, ...]
    server_key: rsa.RSAPrivateKey
    client_ciphers: tuple[int, ...] = MODERN_CLIENT_CIPHERS
    # Plaintext sizes of the application records after the handshake, client then server.
    request_sizes: tuple[int, ...] = (420,)
    response_sizes: tuple[int, ...] = (1400, 2900)
    # A particular client's hello (scenarios/tls/hellos.py) instead of the generic one.
    hello: CustomHello | None = None


def hello_random(flow: TcpFlow, rng: random.Random) -> bytes:
    # Pre-1.3 hellos begin with gmt_unix_time; the capture clock keeps it consistent.
    return (flow.capture.now_us // 1_000_000).to_bytes(4, "big") + rng.randbytes(28)


def x25519_public(rng: random.Random) -> bytes:
    return X25519PrivateKey.from_private_bytes(rng.randbytes(32)).public_key().public_bytes_raw()


def tls12_conversation(flow: TcpFlow, session: TlsSession, rng: random.Random) -> None:
    """SSLv3 to TLS 1.2 with RSA or ECDHE key exchange, a full handshake, then data."""
    version = session.version
    ecdhe = session.cipher in ECDHE_CIPHERS
    # Clients put the lowest version they accept on the hello's record, usually TLS 1.0.
    client_record_version = t.SSL3 if version == t.SSL3 else t.TLS10
    client_random = hello_random(flow, rng)
    hello = t.ClientHello(
        version=version,
        random=client_random,
        ciphers=session.client_ciphers,
        # SSLv3 clients send no extensions at all, so no SNI either.
        server_name=session.server_name if version >= t.TLS10 else None,
        ecc=ecdhe or version == t.TLS12,
    )
    hello_bytes = session.hello.to_bytes(client_random) if session.hello else hello.to_bytes()
    flow.send(t.record(t.HANDSHAKE, client_record_version, hello_bytes))

    server_random = hello_random(flow, rng)
    messages = [
        t.ServerHello(version, server_random, session.cipher, rng.randbytes(32), ecc=ecdhe).to_bytes(),
        t.certificate(session.chain),
    ]
    if ecdhe:
        public = x25519_public(rng)
        signed = client_random + server_random + t.ecdhe_params(public)
        signature = session.server_key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
        messages.append(t.server_key_exchange_ecdhe(public, signature))
    messages.append(t.server_hello_done())
    flow.send(b"".join(t.record(t.HANDSHAKE, version, m) for m in messages), from_client=False)

    if ecdhe:
        key_exchange = t.client_key_exchange_ecdhe(x25519_public(rng))
    else:
        modulus = session.server_key.public_key().public_numbers().n
        block = rng.randrange(1, modulus).to_bytes(session.server_key.key_size // 8, "big")
        key_exchange = t.client_key_exchange_rsa(block, version)
    # Finished carries 12 bytes of verify_data (36 in SSLv3) behind its 4-byte header.
    finished_len = 40 if version == t.SSL3 else 16
    flow.send(
        t.record(t.HANDSHAKE, version, key_exchange)
        + t.change_cipher_spec(version)
        + t.encrypted_record(rng, t.HANDSHAKE, version, session.cipher, finished_len)
    )
    flow.send(
        t.change_cipher_spec(version)
        + t.encrypted_record(rng, t.HANDSHAKE, version, session.cipher, finished_len),
        from_client=False,
    )
    application_data(flow, session, rng, version)


def tls13_conversation(flow: TcpFlow, session: TlsSession, rng: random.Random) -> None:
    """TLS 1.3: the version is only in supported_versions and the certificate is encrypted."""
    hello = t.ClientHello(
        version=t.TLS12,
        random=rng.randbytes(32),
        ciphers=session.client_ciphers,
        server_name=session.server_name,
        session_id=rng.randbytes(32),
        supported_versions=(t.TLS13, t.TLS12),
        key_share=x25519_public(rng),
    )
    if session.hello:
        hello_bytes, session_id = session.hello.to_bytes(rng.randbytes(32)), session.hello.session_id
    else:
        hello_bytes, session_id = hello.to_bytes(), hello.session_id
    flow.send(t.record(t.HANDSHAKE, t.TLS10, hello_bytes))
    server_hello = t.ServerHello(
        version=t.TLS12,
        random=rng.randbytes(32),
        cipher=session.cipher,
        session_id=session_id,
        selected_version=t.TLS13,
        key_share=x25519_public(rng),
    )
    chain_len = sum(len(c) + 5 for c in session.chain) + 8
    # EncryptedExtensions, Certificate, CertificateVerify and Finished, each in its own record.
    encrypted_flight = b"".join(
        t.encrypted_record(rng, t.APPLICATION_DATA, t.TLS12, session.cipher, size)
        for size in (6, chain_len, 264, 36)
    )
    flow.send(
        t.record(t.HANDSHAKE, t.TLS12, server_hello.to_bytes())
        + t.change_cipher_spec(t.TLS12)
        + encrypted_flight,
        from_client=False,
    )
    flow.send(
        t.change_cipher_spec(t.TLS12)
        + t.encrypted_record(rng, t.APPLICATION_DATA, t.TLS12, session.cipher, 36)
    )
    application_data(flow, session, rng, t.TLS12)


def application_data(flow: TcpFlow, session: TlsSession, rng: random.Random, record_version: int) -> None:
    # TLS 1.3 hides every content type behind application_data, the alert included.
    alert_type = t.APPLICATION_DATA if session.version == t.TLS13 else t.ALERT

    def records(sizes: tuple[int, ...]) -> bytes:
        return b"".join(
            t.encrypted_record(rng, t.APPLICATION_DATA, record_version, session.cipher, size) for size in sizes
        )

    flow.send(records(session.request_sizes))
    flow.send(records(session.response_sizes), from_client=False)
    # close_notify: a 2-byte alert, encrypted.
    flow.send(t.encrypted_record(rng, alert_type, record_version, session.cipher, 2))


def tls_conversation(flow: TcpFlow, session: TlsSession, rng: random.Random) -> None:
    if session.version == t.TLS13:
        tls13_conversation(flow, session, rng)
    else:
        tls12_conversation(flow, session, rng)
