"""BitTorrent wire messages: metainfo, tracker announce, peer-wire handshake and DHT (BEP 3, 5, 23).

One sample torrent ties them together: its info_hash is what the tracker announce,
the DHT get_peers query and the peer handshake all carry, as in a real download.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import struct
from dataclasses import dataclass
from functools import cache
from urllib.parse import quote_from_bytes

from sensor_plugins.scenarios.bittorrent.bencode import bencode

PROTOCOL = b"\x13BitTorrent protocol"
# Reserved bits a 2017 client sets: extension protocol (BEP 10), fast extension and DHT.
RESERVED = bytes.fromhex("0000000000100005")
PIECE_LENGTH = 16384
CLIENT_PREFIX = b"-TR2920-"  # Transmission 2.92, current in May 2017
USER_AGENT = "Transmission/2.92"
ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

CHOKE, UNCHOKE, INTERESTED, HAVE, BITFIELD, REQUEST, PIECE = 0, 1, 2, 4, 5, 6, 7


@dataclass(frozen=True)
class Torrent:
    metainfo: bytes
    info_hash: bytes
    name: str
    length: int
    content: bytes


@cache
def sample_torrent(announce: str, created: int) -> Torrent:
    """A small single-file torrent whose pieces hash real (seeded) content."""
    rng = random.Random("torrent:sensor-plugins-sample")
    content = rng.randbytes(3 * PIECE_LENGTH + 1200)
    pieces = b"".join(
        hashlib.sha1(content[i : i + PIECE_LENGTH]).digest() for i in range(0, len(content), PIECE_LENGTH)
    )
    name = "sensor-plugins-sample.tar"
    info = {"length": len(content), "name": name, "piece length": PIECE_LENGTH, "pieces": pieces}
    metainfo = bencode(
        {
            "announce": announce,
            "created by": "Transmission/2.92 (14714)",
            "creation date": created,
            "encoding": "UTF-8",
            "info": info,
        }
    )
    return Torrent(metainfo, hashlib.sha1(bencode(info)).digest(), name, len(content), content)


def peer_id(rng: random.Random) -> bytes:
    return CLIENT_PREFIX + "".join(rng.choice(ALNUM) for _ in range(12)).encode("ascii")


def handshake(info_hash: bytes, peer: bytes) -> bytes:
    """The 68-byte peer-wire handshake."""
    return PROTOCOL + RESERVED + info_hash + peer


def message(msg_id: int, payload: bytes = b"") -> bytes:
    return struct.pack("!IB", len(payload) + 1, msg_id) + payload


def bitfield(piece_count: int) -> bytes:
    bits = bytearray((piece_count + 7) // 8)
    for i in range(piece_count):
        bits[i // 8] |= 0x80 >> (i % 8)
    return message(BITFIELD, bytes(bits))


def request(index: int, begin: int, length: int) -> bytes:
    return message(REQUEST, struct.pack("!III", index, begin, length))


def piece(index: int, begin: int, block: bytes) -> bytes:
    return message(PIECE, struct.pack("!II", index, begin) + block)


def compact_peer(address: str, port: int) -> bytes:
    return ipaddress.IPv4Address(address).packed + struct.pack("!H", port)


def dht_ping(transaction: bytes, node_id: bytes) -> bytes:
    return bencode({"a": {"id": node_id}, "q": "ping", "t": transaction, "y": "q"})


def dht_ping_response(transaction: bytes, node_id: bytes) -> bytes:
    return bencode({"r": {"id": node_id}, "t": transaction, "y": "r"})


def dht_get_peers(transaction: bytes, node_id: bytes, info_hash: bytes) -> bytes:
    return bencode({"a": {"id": node_id, "info_hash": info_hash}, "q": "get_peers", "t": transaction, "y": "q"})


def dht_get_peers_response(transaction: bytes, node_id: bytes, token: bytes, peers: list[bytes]) -> bytes:
    return bencode({"r": {"id": node_id, "token": token, "values": peers}, "t": transaction, "y": "r"})


def announce_uri(info_hash: bytes, peer: bytes, port: int, left: int, key: str) -> str:
    query = "&".join(
        (
            f"info_hash={quote_from_bytes(info_hash, safe='')}",
            f"peer_id={quote_from_bytes(peer, safe='')}",
            f"port={port}",
            "uploaded=0",
            "downloaded=0",
            f"left={left}",
            "numwant=80",
            f"key={key}",
            "compact=1",
            "supportcrypto=1",
            "event=started",
        )
    )
    return f"/announce?{query}"


def announce_response(peers: list[bytes]) -> bytes:
    return bencode({"complete": 4, "incomplete": 1, "interval": 1800, "min interval": 900, "peers": b"".join(peers)})
