##! Feeds the Intel framework: the generated nk-intel.dat holds an ``Intel::SUBNET``
##! item for every catalogued range and an ``Intel::ADDR`` item for every Tor
##! address, so sites that run the Intel framework get intel.log hits.
##!
##! The package shows the Intel framework only connections with a catalogued or listed
##! Tor endpoint, in every state (TCP established or not, UDP, ICMP), once each when it
##! ends: no other connection can match its items. It does not load the stock
##! ``frameworks/intel/seen/conn-established``, which would call ``Intel::seen`` twice for
##! every established TCP connection on the tap. A site that loads it anyway gets its
##! established catalogue connections in intel.log twice, once from each script.

@load base/frameworks/intel
@load frameworks/intel/seen/where-locations
@load ./main

module NKSensor;

# Intel::read_files is the stock knob: a site that keeps the file elsewhere redefs it.
redef Intel::read_files += { @DIR + "/nk-intel.dat" };

event connection_state_remove(c: connection)
	{
	if ( ! intel_seen_catalogue )
		return;

	# nk-intel.dat holds only catalogued ranges and Tor addresses: a connection with
	# neither endpoint among them cannot match, so it is not shown to the framework.
	if ( range_side(c) == "" && c$id$orig_h !in tor_nodes && c$id$resp_h !in tor_nodes )
		return;

	Intel::seen(Intel::Seen($host=c$id$orig_h, $conn=c, $where=Conn::IN_ORIG));
	Intel::seen(Intel::Seen($host=c$id$resp_h, $conn=c, $where=Conn::IN_RESP));
	}
