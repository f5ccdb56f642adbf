"""Deterministic RSA keys and X.509 certificates for the scenario pcaps.

``cryptography`` draws RSA keys from the OS random source, which would make every
regenerated pcap differ. Here the primes come from a ``random.Random`` seeded with a
name, so the same seed gives the same key on every machine; fixed serials and dates
do the rest, and PKCS#1 v1.5 signatures are deterministic by construction.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

PUBLIC_EXPONENT = 65537
# Far beyond what random 1024-bit candidates need (FIPS 186-4 table C.2 asks for 5).
MILLER_RABIN_ROUNDS = 8
SMALL_PRIMES = tuple(n for n in range(3, 20000, 2) if all(n % d for d in range(3, math.isqrt(n) + 1, 2)))
# One gcd with the product of the small primes rejects most candidates before any modular power.
SMALL_PRIMES_PRODUCT = math.prod(SMALL_PRIMES)
# DER of the AlgorithmIdentifier SEQUENCE {OID, NULL} for the two signature kinds we make.
SHA256_WITH_RSA = bytes.fromhex("300d06092a864886f70d01010b0500")
SHA1_WITH_RSA = bytes.fromhex("300d06092a864886f70d0101050500")


def is_probable_prime(n: int, rng: random.Random, rounds: int = MILLER_RABIN_ROUNDS) -> bool:
    """Miller-Rabin with witnesses drawn from ``rng`` (so the test itself is reproducible)."""
    if n <= SMALL_PRIMES[-1]:
        return n == 2 or (n > 2 and n in SMALL_PRIMES)
    if n % 2 == 0 or math.gcd(n, SMALL_PRIMES_PRODUCT) != 1:
        return False
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for _ in range(rounds):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def seeded_prime(bits: int, rng: random.Random) -> int:
    """A prime of exactly ``bits`` bits whose top two bits are set, usable with e = 65537."""
    while True:
        # Setting the two top bits makes p * q exactly 2 * bits long.
        candidate = rng.getrandbits(bits) | (0b11 << (bits - 2)) | 1
        if (candidate - 1) % PUBLIC_EXPONENT and is_probable_prime(candidate, rng):
            return candidate


def seeded_rsa_key(seed: str, bits: int = 2048) -> rsa.RSAPrivateKey:
    """The same RSA private key for the same (seed, bits), on every run and machine."""
    # Positional arguments, so that the cache has one entry per key whatever the call style.
    return _seeded_rsa_key(seed, bits)


@cache
def _seeded_rsa_key(seed: str, bits: int) -> rsa.RSAPrivateKey:
    rng = random.Random(f"rsa:{bits}:{seed}")
    p = seeded_prime(bits // 2, rng)
    q = seeded_prime(bits // 2, rng)
    while q == p:
        q = seeded_prime(bits // 2, rng)
    d = pow(PUBLIC_EXPONENT, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(PUBLIC_EXPONENT, p * q),
    )
    return numbers.private_key()


def name(common_name: str, organisation: str | None = None, country: str | None = None) -> x509.Name:
    attributes = []
    if country:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


@dataclass(frozen=True)
class CertSpec:
    """What a certificate must say; every field a scenario varies is here."""

    subject: x509.Name
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    key_seed: str
    key_bits: int = 2048
    hash_name: str = "sha256"
    dns_names: tuple[str, ...] = ()
    is_ca: bool = False


@dataclass(frozen=True)
class Issuer:
    """Who signs: a name and a key. A self-signed certificate uses its own subject and key."""

    name: x509.Name
    key: rsa.RSAPrivateKey


def issue(spec: CertSpec, issuer: Issuer | None = None) -> x509.Certificate:
    """Build and sign the certificate; ``issuer=None`` makes it self-signed."""
    key = seeded_rsa_key(spec.key_seed, spec.key_bits)
    signer = issuer or Issuer(spec.subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(spec.subject)
        .issuer_name(signer.name)
        .public_key(key.public_key())
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=spec.is_ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.key.public_key()), critical=False
        )
    )
    if spec.dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in spec.dns_names]), critical=False
        )
    cert = builder.sign(signer.key, hashes.SHA256())
    if spec.hash_name == "sha256":
        return cert
    if spec.hash_name == "sha1":
        return resign_sha1(cert, signer.key)
    raise ValueError(f"unsupported certificate hash {spec.hash_name!r}")


def resign_sha1(cert: x509.Certificate, key: rsa.RSAPrivateKey) -> x509.Certificate:
    """The same certificate signed with SHA-1, which ``CertificateBuilder`` refuses to do.

    The scenarios need a SHA-1-signed certificate because sensors flag them; the TBS
    names its own signature algorithm, so that field is swapped before re-signing.
    """
    tbs = cert.tbs_certificate_bytes
    if tbs.count(SHA256_WITH_RSA) != 1:
        raise ValueError("expected exactly one sha256WithRSAEncryption identifier in the TBS")
    tbs = tbs.replace(SHA256_WITH_RSA, SHA1_WITH_RSA)
    signature = key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    body = tbs + SHA1_WITH_RSA + der_tlv(0x03, b"\x00" + signature)
    return x509.load_der_x509_certificate(der_tlv(0x30, body))


def der_tlv(tag: int, value: bytes) -> bytes:
    """One DER tag-length-value, with the long length form above 127 bytes."""
    if len(value) < 0x80:
        return bytes([tag, len(value)]) + value
    length = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)
