"""The self-signed certificate pcre: it finds issuer == subject in the DER, and nothing else.

The pattern is run here with Python's ``re``, which reads this pcre (hex escapes, a lazy
repeat, a back-reference) the way PCRE2 does; the scenario tests replay it through Suricata.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from sensor_plugins.generate.suricata import SELF_SIGNED_PCRE

PATTERN = re.compile(SELF_SIGNED_PCRE.strip("/").encode("latin-1"))
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())

# Name shapes: one short attribute; several; an attribute long enough for the 0x81 length
# form; a non-id-at attribute (emailAddress) in front.
NAMES = {
    "cn-only": [(NameOID.COMMON_NAME, "a.example")],
    "c-o-cn": [(NameOID.COUNTRY_NAME, "KP"), (NameOID.ORGANIZATION_NAME, "Star JV"),
               (NameOID.COMMON_NAME, "star.example")],
    "long-organisation": [(NameOID.ORGANIZATION_NAME, "o" * 150), (NameOID.COMMON_NAME, "long.example")],
    "email-first": [(NameOID.EMAIL_ADDRESS, "ca@example.com"), (NameOID.COMMON_NAME, "mail.example")],
}
# Validity ending after 2049 is a GeneralizedTime; before, a UTCTime.
NOT_AFTER = {"utctime": dt.datetime(2030, 1, 1), "generalizedtime": dt.datetime(2060, 1, 1)}


def name(shape: str, suffix: str = "") -> x509.Name:
    return x509.Name([x509.NameAttribute(oid, value + suffix if oid == NameOID.COMMON_NAME else value)
                      for oid, value in NAMES[shape]])


def certificate(subject: x509.Name, issuer: x509.Name, not_after: dt.datetime) -> bytes:
    signer = KEY if subject == issuer else OTHER_KEY
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(KEY.public_key()).serial_number(0x1F2E3D4C5B6A)
            .not_valid_before(dt.datetime(2020, 1, 1)).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(signer, hashes.SHA256()))
    return cert.public_bytes(Encoding.DER)


@pytest.mark.parametrize("time_form", sorted(NOT_AFTER))
@pytest.mark.parametrize("shape", sorted(NAMES))
def test_a_self_signed_certificate_matches(shape, time_form):
    der = certificate(name(shape), name(shape), NOT_AFTER[time_form])
    assert PATTERN.search(der) is not None


@pytest.mark.parametrize("time_form", sorted(NOT_AFTER))
@pytest.mark.parametrize("shape", sorted(NAMES))
def test_a_certificate_issued_by_a_ca_sharing_all_but_the_common_name_does_not_match(shape, time_form):
    der = certificate(name(shape, ".leaf"), name(shape, ".ca"), NOT_AFTER[time_form])
    assert PATTERN.search(der) is None
