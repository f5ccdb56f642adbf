##! Raises :zeek:see:`NKSensor::BitTorrent` for a peer-wire handshake (Zeek's
##! BitTorrent analyzer, attached by the signature in bittorrent.sig, or that signature
##! itself on a connection picked up mid-stream, where the analyzer does not parse), for the DHT,
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
	["nksensor-bittorrent-peer-wire"] = Signatures::SIG_IGNORE,
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

## The peer-wire signature of bittorrent.sig: it attaches the analyzer and raises an event.
const peer_wire_signature = "nksensor-bittorrent-peer-wire";

## Where the info_hash lies in a peer-wire handshake: after pstrlen, the 19-byte
## protocol string and 8 reserved bytes (BEP 3).
const handshake_info_hash_offset = 28;
const info_hash_length = 20;

function peer_wire_notice(c: connection, info_hash: string)
	{
	bittorrent_notice(c, fmt("BitTorrent peer-wire handshake, info_hash %s: %s",
	                         bytestring_to_hexstr(info_hash), opened_connection(c)),
	                  "peer-wire handshake");
	}

## Whether Zeek's TCP analyzer took the connection up mid-stream. Its first packet then
## carried no SYN, so the history holds neither a SYN (S) nor a SYN-ACK (H) from either
## side; on such a partial connection the BitTorrent analyzer returns before parsing.
function picked_up_midstream(c: connection): bool
	{
	return /[SsHh]/ !in c$history;
	}

event bittorrent_peer_handshake(c: connection, is_orig: bool, reserved: string,
                                info_hash: string, peer_id: string)
	{
	if ( ! scoped(c, bittorrent_scope) )
		return;

	peer_wire_notice(c, info_hash);
	}

event signature_match(state: signature_state, msg: string, data: string) &priority=0
	{
	if ( state$sig_id == peer_wire_signature )
		{
		# The analyzer reports every connection it parses; this match speaks only for
		# the ones it gives up on, so a handshake never raises two notices.
		local partial = state$conn;
		if ( ! picked_up_midstream(partial) || ! scoped(partial, bittorrent_scope) )
			return;

		peer_wire_notice(partial, data[handshake_info_hash_offset:handshake_info_hash_offset + info_hash_length]);
		return;
		}

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
