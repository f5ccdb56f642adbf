"""BitTorrent on the wire for the scenarios: bencoding, the peer handshake and DHT messages."""
