"""The weak-cipher table the JA3S rules are built from, checked against scapy's cipher-suite names."""

from __future__ import annotations

import re

from scapy.layers.tls.crypto.suites import _tls_cipher_suites as SCAPY_SUITES

from sensor_plugins.generate.suricata import weak_cipher_suites

# The worst weakness first: a suite belongs to the first class whose pattern its name matches.
CLASS_PATTERNS = (
    ("null", r"WITH_NULL"),
    ("export", r"EXPORT"),
    ("anon", r"_anon_"),
    ("rc4", r"_RC4_"),
    ("des", r"_DES_CBC_|_DES40_"),
    ("3des", r"_3DES_"),
)


def first_class(name: str) -> str | None:
    return next((cls for cls, pattern in CLASS_PATTERNS if re.search(pattern, name)), None)


def test_every_suite_in_the_table_is_named_as_scapy_names_it_and_sits_in_its_worst_class():
    table = weak_cipher_suites()
    wrong = [(cls, hex(code), name) for cls, suites in table.items() for code, name in suites
             if SCAPY_SUITES.get(code, name) != name or first_class(name) != cls]
    assert wrong == []


def test_every_weak_tls_suite_scapy_knows_is_in_the_table():
    listed = {code for suites in weak_cipher_suites().values() for code, _name in suites}
    missing = {hex(code): name for code, name in SCAPY_SUITES.items()
               if code < 0x10000 and first_class(name) and code not in listed}
    assert missing == {}
