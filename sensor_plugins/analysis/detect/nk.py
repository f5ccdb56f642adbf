"""Which endpoint of a connection is in a catalogued range, vectorised so 10M rows never become Python objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from sensor_plugins.analysis.detect.frames import CONN_KEYS, ensure
from sensor_plugins.inputs.catalogue import NAME_RE, Catalogue


def _ipv4_segments(catalogue: Catalogue) -> list[tuple[int, int, str]]:
    """Disjoint (first, last, name) IPv4 segments; where CIDRs nest, the most specific wins."""
    nets = sorted(
        ((int(r.cidr.network_address), int(r.cidr.broadcast_address), r.name)
         for r in catalogue.ranges if r.cidr.version == 4),
        key=lambda t: (t[0], -(t[1] - t[0])),
    )
    out: list[tuple[int, int, str]] = []
    stack: list[tuple[int, int, str]] = []
    pos = 0
    for start, end, name in nets:
        while stack and stack[-1][1] < start:
            top = stack.pop()
            if pos <= top[1]:
                out.append((pos, top[1], top[2]))
            pos = top[1] + 1
        if stack and pos < start:
            out.append((pos, start - 1, stack[-1][2]))
        stack.append((start, end, name))
        pos = start
    while stack:
        top = stack.pop()
        if pos <= top[1]:
            out.append((pos, top[1], top[2]))
        pos = top[1] + 1
    return out


def ipv4_int(col: pl.Expr) -> pl.Expr:
    """Dotted-quad text -> integer; null for anything that is not an IPv4 address.

    For a frame, ``with_ipv4_ints`` is cheaper: it splits each address once, where this
    expression splits it once per octet.
    """
    parts = col.str.splitn(".", 5)
    return _octets_to_int(col, [parts.struct.field(f"field_{i}") for i in range(5)])


def _octets_to_int(text: pl.Expr, fields: list[pl.Expr]) -> pl.Expr:
    # splitn(".", 5) leaves a fifth part only when there are more than four octets.
    octets = [f.cast(pl.Int64, strict=False) for f in fields[:4]]
    ok = (text.str.len_bytes() <= 15) & fields[4].is_null()
    for octet in octets:
        ok = ok & octet.is_between(0, 255)
    value = octets[0] * 16_777_216 + octets[1] * 65_536 + octets[2] * 256 + octets[3]
    return pl.when(ok).then(value)


def with_ipv4_ints(lf: pl.LazyFrame, columns: dict[str, str]) -> pl.LazyFrame:
    """Add an integer column for each text address column ({text column: int column})."""
    split = {f"{out}__parts": pl.col(src).str.splitn(".", 5) for src, out in columns.items()}
    lf = lf.with_columns(**split)
    ints = {
        out: _octets_to_int(pl.col(src), [pl.col(f"{out}__parts").struct.field(f"field_{i}") for i in range(5)])
        for src, out in columns.items()
    }
    return lf.with_columns(**ints).drop(list(split))


def range_of_int(ip: pl.Expr, text: pl.Expr, catalogue: Catalogue) -> pl.Expr:
    """The catalogue range name for each address (``ip`` its IPv4 integer, ``text`` its text)."""
    parts: list[pl.Expr] = []
    segments = _ipv4_segments(catalogue)
    if segments:
        starts = pl.Series([s for s, _, _ in segments], dtype=pl.Int64)
        ends = pl.Series([e for _, e, _ in segments], dtype=pl.Int64)
        names = pl.Series([n for _, _, n in segments], dtype=pl.Utf8)
        idx = (pl.lit(starts).search_sorted(ip, side="right").cast(pl.Int64) - 1).clip(0, len(segments) - 1)
        hit = ip.is_not_null() & (ip >= pl.lit(starts).gather(idx)) & (ip <= pl.lit(ends).gather(idx))
        parts.append(pl.when(hit).then(pl.lit(names).gather(idx)))
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        parts.append(text.map_batches(_ipv6_lookup(catalogue), return_dtype=pl.Utf8))
    if not parts:
        return pl.lit(None, dtype=pl.Utf8)
    return pl.coalesce(parts) if len(parts) > 1 else parts[0]


def range_of(col: pl.Expr, catalogue: Catalogue) -> pl.Expr:
    """The catalogue range name holding each address in ``col``, or null."""
    rules = prefix_rules(catalogue)
    if rules is None:
        return range_of_int(ipv4_int(col), col, catalogue)
    by_prefix = _range_by_prefix(col, rules)
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        return pl.coalesce(by_prefix, col.map_batches(_ipv6_lookup(catalogue), return_dtype=pl.Utf8))
    return by_prefix


MAX_PREFIX_RULES = 64


def prefix_rules(catalogue: Catalogue) -> list[tuple[str, int | None, int | None, str]] | None:
    """The IPv4 ranges as "a.b.c." text prefixes (plus a last-octet span below /24).

    Matching a few text prefixes costs a quarter of turning every address into an
    integer, which matters on a 10M-row conn.log; a catalogue that needs more than
    MAX_PREFIX_RULES prefixes uses the integer lookup instead. Most specific first,
    so a nested range wins over the range around it.
    """
    rules: list[tuple[str, int | None, int | None, str]] = []
    v4 = sorted((r for r in catalogue.ranges if r.cidr.version == 4), key=lambda r: -r.cidr.prefixlen)
    for r in v4:
        net = r.cidr
        if net.prefixlen < 24 and len(rules) + 2 ** (24 - net.prefixlen) > MAX_PREFIX_RULES:
            return None
        if net.prefixlen >= 24:
            octets = str(net.network_address).split(".")
            prefix = ".".join(octets[:3]) + "."
            if net.prefixlen == 24:
                rules.append((prefix, None, None, r.name))
            else:
                first = int(octets[3])
                rules.append((prefix, first, first + net.num_addresses - 1, r.name))
        else:
            for sub in net.subnets(new_prefix=24):
                rules.append((".".join(str(sub.network_address).split(".")[:3]) + ".", None, None, r.name))
    return rules if len(rules) <= MAX_PREFIX_RULES else None


def _range_by_prefix(col: pl.Expr, rules: list[tuple[str, int | None, int | None, str]]) -> pl.Expr:
    if not rules:
        return pl.lit(None, dtype=pl.Utf8)
    valid = (col.str.len_bytes() <= 15) & (col.str.count_matches(".", literal=True) == 3)
    chain: Any = pl
    for prefix, low, high, name in rules:
        cond = col.str.starts_with(prefix)
        if low is not None:
            cond = cond & col.str.slice(len(prefix)).cast(pl.Int64, strict=False).is_between(low, high)
        chain = chain.when(cond).then(pl.lit(name))
    return pl.when(valid).then(chain.otherwise(pl.lit(None, dtype=pl.Utf8)))


def nk_prefilter(col: pl.Expr, catalogue: Catalogue) -> pl.Expr | None:
    """A cheap test that is true for every address the catalogue may hold (and a few more).

    Text prefixes ("175.45.") cost a fraction of the integer lookup, so on a 10M-row
    conn.log the exact lookup runs only on the rows that pass. None when the catalogue
    is too spread out for prefixes to help.
    """
    prefixes: set[str] = set()
    for start, end, _ in _ipv4_segments(catalogue):
        blocks16 = range(start >> 16, (end >> 16) + 1)
        if len(blocks16) <= 256:
            prefixes.update(f"{b >> 8}.{b & 255}." for b in blocks16)
        else:
            prefixes.update(f"{b}." for b in range(start >> 24, (end >> 24) + 1))
    if len(prefixes) > 4096:
        return None
    tests = [col.str.starts_with(p) for p in sorted(prefixes)] if len(prefixes) <= 16 else [
        col.str.contains("^(?:" + "|".join(p.replace(".", r"\.") for p in sorted(prefixes)) + ")")
    ]
    if any(r.cidr.version == 6 for r in catalogue.ranges):
        tests.append(col.str.contains(":", literal=True))
    if not tests:
        return pl.lit(False)
    out = tests[0]
    for test in tests[1:]:
        out = out | test
    return out.fill_null(False)


def _ipv6_lookup(catalogue: Catalogue) -> Callable[[pl.Series], pl.Series]:
    # IPv6 has no cheap integer form in polars; the distinct IPv6 addresses of a batch are
    # few, so each is looked up once in Python and the answers mapped back in bulk.
    def lookup(series: pl.Series) -> pl.Series:
        series = series.cast(pl.Utf8)
        distinct = series.filter(series.str.contains(":", literal=True)).unique().drop_nulls()
        mapping = {}
        for text in distinct.to_list():
            found = catalogue.lookup(text)
            if found is not None and found.cidr.version == 6:
                mapping[text] = found.name
        if not mapping:
            return pl.Series(series.name, [None] * len(series), dtype=pl.Utf8)
        return series.replace_strict(mapping, default=None, return_dtype=pl.Utf8)

    return lookup


def _side_from_log(col: pl.Expr) -> pl.Expr:
    text = col.str.to_lowercase()
    return (
        pl.when(text.is_in(["orig", "originator", "o", "src"])).then(pl.lit("orig"))
        .when(text.is_in(["resp", "responder", "r", "dst"])).then(pl.lit("resp"))
        .when(text.is_in(["both", "b"])).then(pl.lit("both"))
    )


def tag_nk(conn: pl.LazyFrame, catalogue: Catalogue) -> pl.LazyFrame:
    """Add nk_range, nk_side, nk_host and peer_h to any frame with ``id.orig_h``/``id.resp_h``."""
    have = conn.collect_schema()
    lf = ensure(conn, {"id.orig_h": pl.Utf8(), "id.resp_h": pl.Utf8()})
    if prefix_rules(catalogue) is not None:
        lf = lf.with_columns(
            range_of(pl.col("id.orig_h"), catalogue).alias("_orig_r"),
            range_of(pl.col("id.resp_h"), catalogue).alias("_resp_r"),
            pl.lit(None, dtype=pl.Int64).alias("_orig_i"), pl.lit(None, dtype=pl.Int64).alias("_resp_i"),
        )
    else:
        lf = with_ipv4_ints(lf, {"id.orig_h": "_orig_i", "id.resp_h": "_resp_i"})
        lf = lf.with_columns(
            range_of_int(pl.col("_orig_i"), pl.col("id.orig_h"), catalogue).alias("_orig_r"),
            range_of_int(pl.col("_resp_i"), pl.col("id.resp_h"), catalogue).alias("_resp_r"),
        )
    computed_side = (
        pl.when(pl.col("_orig_r").is_not_null() & pl.col("_resp_r").is_not_null()).then(pl.lit("both"))
        .when(pl.col("_orig_r").is_not_null()).then(pl.lit("orig"))
        .when(pl.col("_resp_r").is_not_null()).then(pl.lit("resp"))
    )
    computed_range = pl.coalesce(pl.col("_orig_r"), pl.col("_resp_r"))
    if "nk_range" in have and "nk_side" in have:
        # A range name from a log reaches HTML and TSV output, so only a catalogue-style
        # slug is taken; anything else falls back to the catalogue lookup.
        logged = pl.col("nk_range").cast(pl.Utf8)
        valid = logged.str.contains(f"^{NAME_RE.pattern}$")
        logged_side = _side_from_log(pl.col("nk_side").cast(pl.Utf8))
        use_log = valid.fill_null(False) & logged_side.is_not_null()
        side = pl.when(use_log).then(logged_side).otherwise(computed_side)
        rng = pl.when(use_log).then(logged).otherwise(computed_range)
    else:
        side, rng = computed_side, computed_range
    lf = lf.with_columns(rng.alias("_nk_range"), side.alias("_nk_side"))
    lf = lf.drop([c for c in ("nk_range", "nk_side") if c in have])
    lf = lf.rename({"_nk_range": "nk_range", "_nk_side": "nk_side"})
    return lf.drop("_orig_r", "_resp_r", "_orig_i", "_resp_i").with_columns(
        pl.when(pl.col("nk_side") == "resp").then(pl.col("id.resp_h"))
        .when(pl.col("nk_side").is_not_null()).then(pl.col("id.orig_h")).alias("nk_host"),
        pl.when(pl.col("nk_side") == "resp").then(pl.col("id.orig_h"))
        .when(pl.col("nk_side").is_not_null()).then(pl.col("id.resp_h")).alias("peer_h"),
    )


def scoped(lf: pl.LazyFrame, catalogue: Catalogue, scope: str) -> pl.LazyFrame:
    """Tag a log with NK columns and, for scope ``nk``, keep only rows with an NK endpoint."""
    lf = ensure(lf, CONN_KEYS)
    if scope == "all":
        return tag_nk(lf, catalogue)
    orig_pre = nk_prefilter(pl.col("id.orig_h"), catalogue)
    if orig_pre is not None:
        keep = orig_pre | nk_prefilter(pl.col("id.resp_h"), catalogue)
        if "nk_range" in lf.collect_schema():
            keep = keep | pl.col("nk_range").is_not_null()
        lf = lf.filter(keep)
    return tag_nk(lf, catalogue).filter(pl.col("nk_range").is_not_null())


