##! Opt-in: puts every listed Tor address into the Intel framework as well, from the
##! generated nk-intel-tor.dat, for sites that want Tor peers in intel.log beside the
##! package's own Tor_Traffic notices. Load it after the package, for instance
##! ``@load nk-sensor/intel-tor``. It costs about 12 MiB of Intel store for the
##! bundled list of some 8,000 addresses, which is why the package leaves it out.

@load ./intel

module NKSensor;

redef Intel::read_files += { @DIR + "/nk-intel-tor.dat" };

event connection_state_remove(c: connection)
	{
	if ( ! intel_seen_catalogue )
		return;

	# A catalogued connection was shown already by intel.zeek; show the rest only when
	# an endpoint is a listed Tor address, the only other items that can match.
	if ( range_side(c) != "" )
		return;
	if ( c$id$orig_h !in tor_nodes && c$id$resp_h !in tor_nodes )
		return;

	intel_seen_connection(c);
	}
