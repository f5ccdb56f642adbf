##! Feeds the Intel framework: the generated nk-intel.dat holds an ``Intel::SUBNET``
##! item for every catalogued range, so sites that run the Intel framework get intel.log
##! hits. Tor addresses are not in it: tor.zeek raises Tor_Traffic from its own table, and
##! thousands of Tor items in the Intel store cost the sensor about 12 MiB. A site that
##! wants them in intel.log too loads ``intel-tor`` beside the package.
##!
##! The package shows the Intel framework only connections with a catalogued endpoint, in
##! every state (TCP established or not, UDP, ICMP), once each when it ends: no other
##! connection can match its items. It does not load the stock
##! ``frameworks/intel/seen/conn-established``, which would call ``Intel::seen`` twice for
##! every established TCP connection on the tap. A site that loads it anyway gets its
##! established catalogue connections in intel.log twice, once from each script.

@load base/frameworks/intel
@load frameworks/intel/seen/where-locations
@load ./main

module NKSensor;

# Intel::read_files is the stock knob: a site that keeps the file elsewhere redefs it.
redef Intel::read_files += { @DIR + "/nk-intel.dat" };

## Shows ``c`` to the Intel framework, both endpoints, as the stock seen scripts do.
function intel_seen_connection(c: connection)
	{
	Intel::seen(Intel::Seen($host=c$id$orig_h, $conn=c, $where=Conn::IN_ORIG));
	Intel::seen(Intel::Seen($host=c$id$resp_h, $conn=c, $where=Conn::IN_RESP));
	}

event connection_state_remove(c: connection)
	{
	if ( ! intel_seen_catalogue )
		return;

	# nk-intel.dat holds only catalogued ranges: a connection with neither endpoint
	# in the catalogue cannot match, so it is not shown to the framework.
	if ( range_side(c) == "" )
		return;

	intel_seen_connection(c);
	}
