"""Whole TCP conversations and UDP exchanges as frozen scapy packets on a fixed clock.

A sensor reassembles streams, so every TCP flow here is complete and consistent:
three-way handshake, data cut at the MSS with exact seq/ack numbers, each flight
acknowledged, and a FIN from both sides. Every packet is built to bytes once (scapy
fills in lengths and checksums) and parsed back, so what the caller holds is exactly
what goes in the pcap.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
from dataclasses import dataclass, field
from decimal import Decimal

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

# 2017-05-15 03:00:00 UTC, inside the window of the 2017 study the catalogue cites.
START_US = 1_494_817_200 * 1_000_000
HALF_RTT_US = 15_000
SEGMENT_GAP_US = 120
TTL = 64
WINDOW = 64240


def mac_for(address: str) -> str:
    """A stable, locally administered MAC for an IP address, so each host keeps one MAC."""
    digest = hashlib.sha256(address.encode("ascii")).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def mss_for(address: str) -> int:
    # Ethernet MTU 1500 minus the IP and TCP headers.
    return 1440 if ipaddress.ip_address(address).version == 6 else 1460


@dataclass
class Capture:
    """The packets of one scenario, in time order."""

    now_us: int = START_US
    packets: list[Packet] = field(default_factory=list)

    def emit(self, frame: Packet, gap_us: int) -> Packet:
        self.now_us += gap_us
        frozen = Ether(bytes(frame))
        frozen.time = Decimal(self.now_us) / 1_000_000
        self.packets.append(frozen)
        return frozen

    def pause(self, gap_us: int) -> None:
        """Idle time between conversations, so flows do not share a timestamp."""
        self.now_us += gap_us


@dataclass
class Endpoint:
    address: str
    port: int
    next_seq: int
    ip_id: int

    def ip_header(self, peer: Endpoint) -> Packet:
        if ipaddress.ip_address(self.address).version == 6:
            return IPv6(src=self.address, dst=peer.address, hlim=TTL)
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        return IP(src=self.address, dst=peer.address, id=self.ip_id, flags="DF", ttl=TTL)

    def frame(self, peer: Endpoint) -> Packet:
        return Ether(src=mac_for(self.address), dst=mac_for(peer.address)) / self.ip_header(peer)


class TcpFlow:
    """One TCP connection; ``rng`` fixes its ISNs and IP ids."""

    def __init__(
        self,
        capture: Capture,
        client: tuple[str, int],
        server: tuple[str, int],
        rng: random.Random,
    ) -> None:
        self.capture = capture
        self.client = Endpoint(client[0], client[1], rng.getrandbits(32), rng.getrandbits(16))
        self.server = Endpoint(server[0], server[1], rng.getrandbits(32), rng.getrandbits(16))
        self.mss = mss_for(client[0])

    def _segment(
        self, sender: Endpoint, flags: str, payload: bytes, gap_us: int, options: list | None = None
    ) -> Packet:
        receiver = self.server if sender is self.client else self.client
        tcp = TCP(
            sport=sender.port,
            dport=receiver.port,
            seq=sender.next_seq & 0xFFFFFFFF,
            ack=(receiver.next_seq & 0xFFFFFFFF) if "A" in flags else 0,
            flags=flags,
            window=WINDOW,
            options=options or [],
        )
        frame = sender.frame(receiver) / tcp
        if payload:
            frame = frame / Raw(payload)
        sender.next_seq += len(payload) + (1 if ("S" in flags or "F" in flags) else 0)
        return self.capture.emit(frame, gap_us)

    def open(self) -> TcpFlow:
        syn_options = [("MSS", self.mss)]
        self._segment(self.client, "S", b"", HALF_RTT_US, syn_options)
        self._segment(self.server, "SA", b"", HALF_RTT_US, syn_options)
        self._segment(self.client, "A", b"", HALF_RTT_US)
        return self

    def send(self, data: bytes, from_client: bool = True) -> TcpFlow:
        """Send ``data`` cut at the MSS; the peer acknowledges the whole flight."""
        sender, receiver = (self.client, self.server) if from_client else (self.server, self.client)
        for i in range(0, len(data), self.mss):
            self._segment(sender, "PA", data[i : i + self.mss], HALF_RTT_US if i == 0 else SEGMENT_GAP_US)
        self._segment(receiver, "A", b"", HALF_RTT_US)
        return self

    def close(self, client_first: bool = True) -> TcpFlow:
        first, second = (self.client, self.server) if client_first else (self.server, self.client)
        self._segment(first, "FA", b"", HALF_RTT_US)
        self._segment(second, "FA", b"", HALF_RTT_US)
        self._segment(first, "A", b"", HALF_RTT_US)
        return self


def udp_datagram(capture: Capture, src: tuple[str, int], dst: tuple[str, int], payload: bytes) -> Packet:
    sender = Endpoint(src[0], src[1], 0, 0)
    receiver = Endpoint(dst[0], dst[1], 0, 0)
    if ipaddress.ip_address(src[0]).version == 4:
        # Derived from the payload so that repeated datagrams keep distinct, stable ids.
        sender.ip_id = int.from_bytes(hashlib.sha256(payload).digest()[:2], "big")
    frame = sender.frame(receiver) / UDP(sport=src[1], dport=dst[1]) / Raw(payload)
    return capture.emit(frame, HALF_RTT_US)
