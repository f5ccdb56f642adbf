##! Raises :zeek:see:`NKSensor::Weak_TLS` for weak TLS on catalogue traffic (or on
##! all traffic when :zeek:see:`NKSensor::weak_tls_scope` is ``ALL_TRAFFIC``).
##! Modelled on ``policy/protocols/ssl/weak-keys.zeek``, with a stricter version
##! floor (TLS 1.2), a wider cipher list, signature and validation checks.
##! When ``policy/protocols/ssl/validate-certs`` is loaded before this package
##! (``local.zeek`` loads it before ``packages``), a failed validation counts too.

@load base/frameworks/notice
@load base/protocols/ssl
@load base/files/x509
@load ./main

module NKSensor;

function weak(c: connection, reason: string, detail: string, key: string)
	{
	notice_once(Notice::Info($note=Weak_TLS,
	                         $msg=fmt("Weak TLS, %s: %s", detail, opened_connection(c)),
	                         $sub=reason,
	                         $conn=c,
	                         $identifier=cat(c$id$resp_h, c$id$resp_p, reason, key),
	                         $suppress_for=weak_tls_suppress));
	}

# DTLS numbers its versions downwards from 0xFEFF and TLS 1.3 drafts use 0x7Fxx, so a
# plain "<" on the version number would misjudge both.
function old_version(v: count): bool
	{
	if ( v == SSL::DTLSv10 )
		return T;
	if ( v >= 0x7F00 )
		return F;
	return v < tls_minimum_version;
	}

# SSL::ssl_finishing runs once per session just before ssl.log is written, for
# established and failed handshakes alike; validate-certs fills validation_status at
# priority 20, so priority 5 sees it.
hook SSL::ssl_finishing(c: connection) &priority=5
	{
	if ( ! scoped(c, weak_tls_scope) )
		return;

	if ( c$ssl?$version && c$ssl?$version_num && old_version(c$ssl$version_num) )
		weak(c, "old version",
		     fmt("version %s is below %s", c$ssl$version,
		         SSL::version_strings[tls_minimum_version]),
		     c$ssl$version);

	if ( c$ssl?$cipher && unsafe_cipher_regex in c$ssl$cipher )
		weak(c, "unsafe cipher", fmt("cipher suite %s", c$ssl$cipher), c$ssl$cipher);

	if ( c$ssl?$cert_chain && |c$ssl$cert_chain| > 0 && c$ssl$cert_chain[0]?$x509 &&
	     c$ssl$cert_chain[0]$x509?$certificate )
		{
		local cert = c$ssl$cert_chain[0]$x509$certificate;

		# Only RSA and DSA: an EC key is strong at far fewer bits.
		if ( cert?$key_type && cert?$key_length && (cert$key_type == "rsa" || cert$key_type == "dsa") &&
		     cert$key_length < minimal_key_length )
			weak(c, "short key",
			     fmt("%s certificate key of %d bits (subject %s)", cert$key_type, cert$key_length,
			         cert$subject),
			     cat(cert$key_length));

		if ( cert?$sig_alg && weak_signature_regex in cert$sig_alg )
			weak(c, "weak signature",
			     fmt("certificate signed with %s (subject %s)", cert$sig_alg, cert$subject),
			     cert$sig_alg);
		}

@ifdef ( SSL::Invalid_Server_Cert )
	# A Tor link certificate is signed by a key Tor never sends: it fails validation by
	# design, and the Tor_Traffic notice already says what the session is.
	if ( c$ssl?$validation_status && c$ssl$validation_status != "ok" && ! tor_style_certificate(c) )
		weak(c, "failed validation",
		     fmt("certificate validation failed: %s", c$ssl$validation_status),
		     c$ssl$validation_status);
@endif
	}
