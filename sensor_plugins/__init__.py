"""sensor-plugins: Zeek and Suricata content for North Korea's routable networks, Tor and BitTorrent."""

__version__ = "0.1.0"
