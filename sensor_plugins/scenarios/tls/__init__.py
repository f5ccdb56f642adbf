"""TLS on the wire for the scenarios: records, handshakes, certificates and whole flows."""
