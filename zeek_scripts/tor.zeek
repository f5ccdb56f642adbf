##! Raises :zeek:see:`NKSensor::Tor_Traffic` for connections to or from a listed Tor
##! relay or exit, and for TLS sessions whose certificate has Tor's link-certificate
##! shape (issuer ``CN=www.<random>.com``, subject ``CN=www.<random>.net``), which
##! finds relays that no list knows yet. Both need an endpoint in the catalogue unless
##! :zeek:see:`NKSensor::tor_scope` is ``ALL_TRAFFIC``.

@load base/frameworks/notice
@load base/protocols/ssl
@load base/files/x509
@load ./main

module NKSensor;

function tor_notice(c: connection, msg: string, sub: string, key: string)
	{
	notice_once(Notice::Info($note=Tor_Traffic, $msg=msg, $sub=sub, $conn=c,
	                         $identifier=cat(c$id$orig_h, c$id$resp_h, key),
	                         $suppress_for=tor_suppress));
	}

event new_connection(c: connection)
	{
	# The catalogue test first: two subnet lookups, where the Tor table is thousands.
	if ( ! scoped(c, tor_scope) )
		return;

	local relay = c$id$resp_h;
	local peer = c$id$orig_h;
	if ( relay !in tor_nodes )
		{
		relay = c$id$orig_h;
		peer = c$id$resp_h;
		if ( relay !in tor_nodes )
			return;
		}

	local info = tor_nodes[relay];
	local listed = info?$feed ? fmt("listed by %s", info$feed) : "listed";
	if ( info?$last_seen )
		listed = fmt("%s, last seen %s", listed, info$last_seen);
	local msg = relay == c$id$resp_h
	            ? fmt("%s opened a connection to Tor %s %s", endpoint_label(peer), info$role, relay)
	            : fmt("Tor %s %s opened a connection to %s", info$role, relay, endpoint_label(peer));
	tor_notice(c, msg,
	           fmt("role %s, %s", info$role, listed), "address");
	}

hook SSL::ssl_finishing(c: connection) &priority=5
	{
	if ( ! scoped(c, tor_scope) )
		return;

	if ( ! tor_style_certificate(c) )
		return;

	local cert = c$ssl$cert_chain[0]$x509$certificate;
	tor_notice(c, fmt("%s opened a connection to a Tor relay at %s (Tor-style certificate)",
	                  endpoint_label(c$id$orig_h), c$id$resp_h),
	           fmt("certificate subject %s, issuer %s", cert$subject, cert$issuer), "certificate");
	}
