"""Weak TLS from ssl.log joined with x509.log: old versions, weak ciphers, keys and signatures, bad certificates."""

from __future__ import annotations

import polars as pl

from sensor_plugins.analysis.detect.frames import LIST_UTF8, clip, detached, ensure, finding, iso
from sensor_plugins.analysis.findings import UTC_US

# Tor's link certificates come from crypto_random_hostname(8, 20, "www.", ".net"/".com"):
# 8 to 20 base32 characters (a-z, 2-7) between "www." and the suffix.
TOR_SUBJECT_RE = r"^CN=www\.[a-z2-7]{8,20}\.net$"
TOR_ISSUER_RE = r"^CN=www\.[a-z2-7]{8,20}\.com$"


OLD_VERSIONS = ("SSLv2", "SSLv3", "TLSv10", "TLSv11", "DTLSv10")
# Cipher suite names as Zeek logs them (IANA names, and SSLv20_CK_* for SSLv2).
WEAK_CIPHER_RE = r"(^|_)(EXPORT[0-9]*|RC4|NULL|anon|DES|DES40|3DES|MD5)(_|$)"
WEAK_SIG_RE = r"(?i)md2|md4|md5|sha1"


SSL_COLUMNS = {
    "version": pl.Utf8(), "cipher": pl.Utf8(), "server_name": pl.Utf8(),
    "validation_status": pl.Utf8(), "sni_matches_cert": pl.Boolean(),
    "cert_chain_fps": LIST_UTF8, "cert_chain_fuids": LIST_UTF8, "subject": pl.Utf8(),
    "issuer": pl.Utf8(), "issuer_subject": pl.Utf8(), "not_valid_before": UTC_US,
    "not_valid_after": UTC_US, "dh_param_size": pl.Int64(), "established": pl.Boolean(),
}
CERT_COLUMNS = {
    "certificate.subject": "c_subject", "certificate.issuer": "c_issuer",
    "certificate.not_valid_before": "c_nvb", "certificate.not_valid_after": "c_nva",
    "certificate.key_alg": "c_key_alg", "certificate.key_type": "c_key_type",
    "certificate.key_length": "c_key_len", "certificate.sig_alg": "c_sig_alg", "san.dns": "c_san",
}
X509_TYPES = {
    "fingerprint": pl.Utf8(), "id": pl.Utf8(), "certificate.subject": pl.Utf8(),
    "certificate.issuer": pl.Utf8(), "certificate.not_valid_before": UTC_US,
    "certificate.not_valid_after": UTC_US, "certificate.key_alg": pl.Utf8(),
    "certificate.key_type": pl.Utf8(), "certificate.key_length": pl.Int64(),
    "certificate.sig_alg": pl.Utf8(), "san.dns": LIST_UTF8,
}


def _x509_keys(x509: pl.LazyFrame) -> list[tuple[str, str]]:
    """(x509 key column, ssl leaf column) pairs this x509.log can be joined on."""
    have = x509.collect_schema()
    return [(k, leaf) for k, leaf in (("fingerprint", "_leaf_fp"), ("id", "_leaf_fuid")) if k in have]


def _with_leaf(ssl: pl.LazyFrame) -> pl.LazyFrame:
    """ssl rows with ``_leaf_fp``/``_leaf_fuid``: the first certificate of the server's chain."""
    if "_leaf_fp" in ssl.collect_schema():
        return ensure(ssl, SSL_COLUMNS)
    return ensure(ssl, SSL_COLUMNS).with_columns(
        pl.col("cert_chain_fps").list.first().alias("_leaf_fp"),
        pl.col("cert_chain_fuids").list.first().alias("_leaf_fuid"),
    )


def join_certs(ssl: pl.LazyFrame, x509: pl.LazyFrame | None, columns: dict[str, str],
               dtypes: dict[str, pl.DataType]) -> tuple[pl.LazyFrame, dict[str, list[pl.Expr]]]:
    """Left-join each ssl row with its leaf certificate's ``columns`` (x509 name -> alias).

    Returns the joined frame and, per alias, the joined columns to coalesce (one for
    each key the x509.log has: a log written by Zeek >= 4 has fingerprints, older ones
    file ids).
    """
    sources: dict[str, list[pl.Expr]] = {alias: [] for alias in columns.values()}
    lf = _with_leaf(ssl)
    if x509 is None:
        return lf, sources
    x = ensure(x509, {**X509_TYPES, **{c: t for c, t in dtypes.items() if c in X509_TYPES}})
    for key, leaf in _x509_keys(x509):
        suffix = f"_{key}"
        certs = (
            x.filter(pl.col(key).is_not_null())
            .select([key, *columns])
            .unique(subset=[key], keep="first")
            .rename({c: f"{alias}{suffix}" for c, alias in columns.items()})
        )
        lf = lf.join(certs, left_on=leaf, right_on=key, how="left")
        for alias in columns.values():
            sources[alias].append(pl.col(f"{alias}{suffix}"))
    return lf, sources


def _coalesced(alias: str, sources: list[pl.Expr], dtype: pl.DataType) -> pl.Expr:
    if not sources:
        return pl.lit(None, dtype=dtype).alias(alias)
    return (pl.coalesce(sources) if len(sources) > 1 else sources[0]).alias(alias)


CERT_DTYPES = {
    "c_subject": pl.Utf8(), "c_issuer": pl.Utf8(), "c_nvb": UTC_US, "c_nva": UTC_US, "c_key_alg": pl.Utf8(),
    "c_key_type": pl.Utf8(), "c_key_len": pl.Int64(), "c_sig_alg": pl.Utf8(), "c_san": LIST_UTF8,
}


def tls_sessions(ssl: pl.LazyFrame, x509: pl.LazyFrame | None) -> pl.LazyFrame:
    """ssl.log rows with their leaf certificate's fields (``c_*``) from x509.log.

    Zeek >= 4 links the chain by fingerprint (``cert_chain_fps`` -> x509 ``fingerprint``),
    older Zeek by file id (``cert_chain_fuids`` -> x509 ``id``). Before Zeek 2.4 ssl.log
    held the leaf's subject, issuer and dates itself; those fill in.
    """
    lf, sources = join_certs(ssl, x509, CERT_COLUMNS, X509_TYPES)
    own = {
        "c_subject": pl.col("subject"),
        "c_issuer": pl.coalesce(pl.col("issuer"), pl.col("issuer_subject")),
        "c_nvb": pl.col("not_valid_before"), "c_nva": pl.col("not_valid_after"),
    }
    merged = []
    for alias in CERT_COLUMNS.values():
        extra = [own[alias]] if alias in own else []
        merged.append(_coalesced(alias, sources[alias] + extra, CERT_DTYPES[alias]))
    return lf.with_columns(merged)


def cert_flag() -> pl.Expr:
    """On x509.log rows: the certificate alone makes a finding (weak key or signature,
    self-signed, Tor's link certificate)."""
    rsa_dsa = (
        pl.col("certificate.key_type").str.to_lowercase().is_in(["rsa", "dsa"])
        | pl.col("certificate.key_alg").is_in(["rsaEncryption", "dsaEncryption"])
    ).fill_null(False)
    subject, issuer = pl.col("certificate.subject"), pl.col("certificate.issuer")
    return (
        (rsa_dsa & (pl.col("certificate.key_length") < 2048)).fill_null(False)
        | pl.col("certificate.sig_alg").str.contains(WEAK_SIG_RE).fill_null(False)
        | (subject == issuer).fill_null(False)
        | (subject.str.contains(TOR_SUBJECT_RE) & issuer.str.contains(TOR_ISSUER_RE)).fill_null(False)
    )


def risky_certs(ssl: pl.LazyFrame, x509: pl.LazyFrame | None) -> tuple[list[str], list[str]]:
    """(fingerprints, file ids) of the certificates that can make a finding in ``ssl``.

    Those that make one alone (``cert_flag``), and those whose validity does not cover
    the whole time span of ``ssl`` (only they can be expired for some session in it). Both
    lists are short; checking membership in them streams, where a join of a 10M-row
    ssl.log with x509.log would hold one side in memory.
    """
    if x509 is None:
        return [], []
    span = ssl.select(pl.col("ts").min().alias("first"), pl.col("ts").max().alias("last")).collect(
        engine="streaming")
    first, last = span["first"][0], span["last"][0]
    x = ensure(x509, X509_TYPES)
    risky = cert_flag()
    if first is not None and last is not None:
        risky = risky | (pl.col("certificate.not_valid_before") > first).fill_null(False) | (
            pl.col("certificate.not_valid_after") < last).fill_null(False)
    keys = dict(_x509_keys(x509))
    found = detached(x.filter(risky).select(["fingerprint", "id"])).collect(engine="streaming")
    fps = found["fingerprint"].drop_nulls().unique().to_list() if "fingerprint" in keys else []
    ids = found["id"].drop_nulls().unique().to_list() if "id" in keys else []
    return fps, ids


def ssl_candidates(ssl: pl.LazyFrame, risky: tuple[list[str], list[str]], tor_addrs: list[str]) -> pl.LazyFrame:
    """The ssl.log rows that may make a finding; certificate fields are joined later."""
    fps, ids = risky
    lf = _with_leaf(ssl)
    version, status, sni = pl.col("version"), pl.col("validation_status"), pl.col("server_name")
    subject, issuer = pl.col("subject"), pl.coalesce(pl.col("issuer"), pl.col("issuer_subject"))
    keep = (
        pl.col("_leaf_fp").is_in(fps) | pl.col("_leaf_fuid").is_in(ids)
        | version.is_in(OLD_VERSIONS)
        | pl.col("cipher").str.contains(WEAK_CIPHER_RE)
        | (pl.col("dh_param_size") < 2048)
        | (status.is_not_null() & (status != "ok") & (status != ""))
        | (version.is_not_null() & sni.is_null())
        # Without Zeek's sni_matches_cert the names are compared later, on these rows.
        | (sni.is_not_null() & pl.col("sni_matches_cert").is_null())
        | (pl.col("sni_matches_cert") == False)  # noqa: E712
        # ssl.log before Zeek 2.4 carries the leaf's subject, issuer and dates itself.
        | (subject.is_not_null() & (subject == issuer))
        | (subject.str.contains(TOR_SUBJECT_RE) & issuer.str.contains(TOR_ISSUER_RE))
        | (pl.col("ts") < pl.col("not_valid_before")) | (pl.col("ts") > pl.col("not_valid_after"))
        | pl.col("id.resp_h").is_in(tor_addrs) | pl.col("id.orig_h").is_in(tor_addrs)
    )
    # Only the leaf of each chain is used later; the whole chains would triple the size.
    return lf.filter(keep.fill_null(False)).drop("cert_chain_fps", "cert_chain_fuids")


def certs_for(ssl: pl.DataFrame, x509: pl.LazyFrame) -> pl.LazyFrame:
    """The x509.log rows of the leaf certificates of ``ssl`` (a small frame)."""
    fps = ssl["_leaf_fp"].drop_nulls().unique().to_list()
    fuids = ssl["_leaf_fuid"].drop_nulls().unique().to_list()
    keys = dict(_x509_keys(x509))
    cond = pl.lit(False)
    if "fingerprint" in keys:
        cond = cond | pl.col("fingerprint").is_in(fps)
    if "id" in keys:
        cond = cond | pl.col("id").is_in(fuids)
    return detached(ensure(x509, X509_TYPES).filter(cond).select(list(X509_TYPES)))


def _tls_evidence(*names: str) -> dict[str, pl.Expr]:
    base = {"version": pl.col("version"), "cipher": pl.col("cipher"), "server_name": clip(pl.col("server_name"))}
    return {**base, **{n: EVIDENCE_COLUMNS[n] for n in names}}


EVIDENCE_COLUMNS: dict[str, pl.Expr] = {
    "subject": clip(pl.col("c_subject")),
    "issuer": clip(pl.col("c_issuer")),
    "key_type": pl.col("c_key_type"),
    "key_length": pl.col("c_key_len"),
    "dh_param_size": pl.col("dh_param_size"),
    "sig_alg": pl.col("c_sig_alg"),
    "validation_status": clip(pl.col("validation_status")),
    "not_valid_before": iso(pl.col("c_nvb")),
    "not_valid_after": iso(pl.col("c_nva")),
    "san_dns": pl.col("c_san").list.head(20),
}


def tls_conditions() -> dict[str, pl.Expr]:
    """reason -> the condition on a ``tls_sessions`` row (never null)."""
    version = pl.col("version")
    rsa_dsa = (
        pl.col("c_key_type").str.to_lowercase().is_in(["rsa", "dsa"])
        | pl.col("c_key_alg").is_in(["rsaEncryption", "dsaEncryption"])
    ).fill_null(False)
    weak_key = (rsa_dsa & (pl.col("c_key_len") < 2048)).fill_null(False) | (
        pl.col("dh_param_size") < 2048
    ).fill_null(False)
    status = pl.col("validation_status")
    tor = (pl.col("c_subject").str.contains(TOR_SUBJECT_RE) & pl.col("c_issuer").str.contains(TOR_ISSUER_RE)
           ).fill_null(False)
    conditions = {
        "old-version": version.is_in(OLD_VERSIONS),
        "weak-cipher": pl.col("cipher").str.contains(WEAK_CIPHER_RE),
        "weak-key": weak_key,
        "weak-signature": pl.col("c_sig_alg").str.contains(WEAK_SIG_RE),
        # A Tor link certificate fails validation and names another host by design; the
        # tor-cert finding says what the session is, so neither is reported again for it.
        "invalid-cert": status.is_not_null() & (status != "ok") & (status != "") & ~tor,
        "expired-cert": (pl.col("ts") < pl.col("c_nvb")) | (pl.col("ts") > pl.col("c_nva")),
        "self-signed": (pl.col("c_subject").is_not_null() & (pl.col("c_subject") == pl.col("c_issuer")))
        | (status == "self signed certificate"),
        "sni-mismatch": _sni_mismatch_condition() & ~tor,
        "no-sni": version.is_not_null() & pl.col("server_name").is_null(),
        "tor-cert": tor,
    }
    return {reason: cond.fill_null(False) for reason, cond in conditions.items()}


def weak_tls(tls: pl.LazyFrame) -> list[pl.LazyFrame]:
    """One finding per (session, reason) for every weak-tls reason."""
    cond = tls_conditions()
    very_old = pl.col("version").is_in(["SSLv2", "SSLv3"])
    return [
        finding(tls.filter(cond["old-version"]), "ssl", "old-version", _tls_evidence(),
                severity=pl.when(very_old).then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["weak-cipher"]), "ssl", "weak-cipher", _tls_evidence(),
                severity=pl.when(pl.col("cipher").str.contains("EXPORT|NULL|anon"))
                .then(pl.lit("high")).otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["weak-key"]), "ssl", "weak-key",
                _tls_evidence("key_type", "key_length", "dh_param_size", "subject")),
        finding(tls.filter(cond["weak-signature"]), "ssl", "weak-signature", _tls_evidence("sig_alg", "subject")),
        finding(tls.filter(cond["invalid-cert"]), "ssl", "invalid-cert",
                _tls_evidence("validation_status", "subject", "issuer")),
        finding(tls.filter(cond["expired-cert"]), "ssl", "expired-cert",
                _tls_evidence("not_valid_before", "not_valid_after", "subject")),
        finding(tls.filter(cond["self-signed"]), "ssl", "self-signed",
                _tls_evidence("subject", "issuer", "validation_status")),
        finding(tls.filter(cond["sni-mismatch"]), "ssl", "sni-mismatch", _tls_evidence("subject", "san_dns"),
                confidence=pl.when(pl.col("sni_matches_cert").is_not_null()).then(pl.lit("high"))
                .otherwise(pl.lit("medium"))),
        finding(tls.filter(cond["no-sni"]), "ssl", "no-sni", _tls_evidence("subject")),
    ]


def _sni_mismatch_condition() -> pl.Expr:
    """The SNI is not among the certificate's names (SAN DNS entries or subject CN).

    Zeek's own ``sni_matches_cert`` wins when logged; otherwise the names are compared
    here, a ``*.`` wildcard standing for exactly one leftmost label (RFC 6125).
    """
    sni = pl.col("server_name").str.to_lowercase()
    cn = pl.col("c_subject").str.extract(r"(?:^|,)CN=([^,]+)", 1).str.to_lowercase()
    san = pl.col("c_san").fill_null(pl.lit([], dtype=LIST_UTF8)).list.eval(pl.element().str.to_lowercase())
    names = pl.concat_list(san, cn).list.drop_nulls()
    wildcard = sni.str.replace(r"^[^.]+\.", "*.")
    matches = names.list.contains(sni) | names.list.contains(wildcard)
    has_cert = pl.col("c_subject").is_not_null() | (pl.col("c_san").list.len() > 0).fill_null(False)
    computed = sni.is_not_null() & has_cert & ~matches.fill_null(False)
    logged = pl.col("sni_matches_cert")
    return pl.when(logged.is_not_null()).then(~logged & sni.is_not_null()).otherwise(computed)


