##! Raises :zeek:see:`NKSensor::BitTorrent` for a peer-wire handshake (Zeek's
##! BitTorrent analyzer, attached by the signature in bittorrent.sig), for the DHT,
##! uTP and UDP-tracker signatures in bittorrent.sig, and for HTTP tracker announces.
##! Each needs an endpoint in the catalogue unless :zeek:see:`NKSensor::bittorrent_scope`
##! is ``ALL_TRAFFIC``.

@load base/frameworks/notice
@load base/frameworks/signatures
@load base/protocols/http
@load ./main

module NKSensor;

## The signatures of bittorrent.sig that raise a notice through signature_match.
const bittorrent_signatures: set[string] = {
	"nksensor-bittorrent-dht-query",
	"nksensor-bittorrent-dht-response",
	"nksensor-bittorrent-utp-state",
	"nksensor-bittorrent-utp-peer-wire",
	"nksensor-bittorrent-udp-tracker",
};

# The notice is the report; the generic Signatures::Sensitive_Signature notice and
# signatures.log line would only repeat it for every DHT packet.
redef Signatures::actions += {
	["nksensor-bittorrent-dht-query"] = Signatures::SIG_IGNORE,
	["nksensor-bittorrent-dht-response"] = Signatures::SIG_IGNORE,
	["nksensor-bittorrent-utp-syn"] = Signatures::SIG_IGNORE,
	["nksensor-bittorrent-utp-state"] = Signatures::SIG_IGNORE,
	["nksensor-bittorrent-utp-peer-wire"] = Signatures::SIG_IGNORE,
	["nksensor-bittorrent-udp-tracker"] = Signatures::SIG_IGNORE,
};

function bittorrent_notice(c: connection, msg: string, sub: string)
	{
	notice_once(Notice::Info($note=BitTorrent, $msg=msg, $sub=sub, $conn=c,
	                         $identifier=cat(c$id$orig_h, c$id$resp_h, sub),
	                         $suppress_for=bittorrent_suppress));
	}

event bittorrent_peer_handshake(c: connection, is_orig: bool, reserved: string,
                                info_hash: string, peer_id: string)
	{
	if ( ! scoped(c, bittorrent_scope) )
		return;

	bittorrent_notice(c, fmt("BitTorrent peer-wire handshake, info_hash %s: %s",
	                         bytestring_to_hexstr(info_hash), opened_connection(c)),
	                  "peer-wire handshake");
	}

event signature_match(state: signature_state, msg: string, data: string)
	{
	if ( state$sig_id !in bittorrent_signatures )
		return;

	local c = state$conn;
	if ( ! scoped(c, bittorrent_scope) )
		return;

	bittorrent_notice(c, fmt("%s: %s", msg, opened_connection(c)), msg);
	}

event http_request(c: connection, method: string, original_URI: string,
                   unescaped_URI: string, version: string)
	{
	# The scope first: a regex over every request URI on a tap is the dearer test.
	if ( ! scoped(c, bittorrent_scope) )
		return;

	if ( ! (tracker_announce_regex in original_URI) )
		return;

	bittorrent_notice(c, fmt("BitTorrent tracker announce: %s", opened_connection(c)),
	                  "HTTP tracker announce");
	}
