# BitTorrent signatures for the NKSensor package (loaded by __load__.zeek with
# @load-sigs). Zeek ships a BitTorrent peer-wire analyzer but no DPD signature that
# attaches it; the first signature does that. The others, and the first one's event,
# raise signature_match, which bittorrent.zeek turns into NKSensor::BitTorrent notices.

# Peer-wire handshake (BEP 3): pstrlen 19, then the protocol string. The analyzer it
# enables returns early on a connection whose SYN Zeek never saw (picked up mid-stream),
# so the match is raised as an event too: bittorrent.zeek reports the handshake from it
# only on such connections, and leaves every other one to the analyzer.
signature nksensor-bittorrent-peer-wire {
	ip-proto == tcp
	payload /^\x13BitTorrent protocol/
	enable "bittorrent"
	event "BitTorrent peer-wire handshake"
}

# Mainline DHT query (BEP 5): a bencoded dict whose first key is "a" holding the id.
signature nksensor-bittorrent-dht-query {
	ip-proto == udp
	payload /^d1:ad2:id20:/
	event "BitTorrent DHT query"
}

# Mainline DHT response: first key "r" holding the responder's id.
signature nksensor-bittorrent-dht-response {
	ip-proto == udp
	payload /^d1:rd2:id20:/
	event "BitTorrent DHT response"
}

# uTP (BEP 29) connection setup: a bare 20-byte ST_SYN header (type 4, version 1)
# answered by a bare 20-byte ST_STATE header (type 2, version 1).
signature nksensor-bittorrent-utp-syn {
	ip-proto == udp
	payload-size == 20
	payload /^\x41[\x00\x01\x02]/
}

signature nksensor-bittorrent-utp-state {
	ip-proto == udp
	payload-size == 20
	payload /^\x21[\x00\x01\x02]/
	requires-reverse-signature nksensor-bittorrent-utp-syn
	event "uTP connection setup"
}

# BitTorrent over uTP: an ST_DATA packet (type 0, version 1) whose payload after the
# 20-byte header is the peer-wire handshake.
signature nksensor-bittorrent-utp-peer-wire {
	ip-proto == udp
	payload /^\x01[\x00-\xff]{19}\x13BitTorrent protocol/
	event "BitTorrent handshake over uTP"
}

# UDP tracker connect request (BEP 15): the protocol id 0x41727101980, action 0.
signature nksensor-bittorrent-udp-tracker {
	ip-proto == udp
	payload-size == 16
	payload /^\x00\x00\x04\x17\x27\x10\x19\x80\x00\x00\x00\x00/
	event "BitTorrent UDP tracker connect"
}
