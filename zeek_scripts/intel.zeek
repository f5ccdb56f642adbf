##! Feeds the Intel framework: the generated nk-intel.dat holds an ``Intel::SUBNET``
##! item for every catalogued range and an ``Intel::ADDR`` item for every Tor
##! address, so sites that run the Intel framework get intel.log hits.
##!
##! The stock ``frameworks/intel/seen/conn-established`` only reports hosts of
##! fully established TCP connections. This script also calls ``Intel::seen`` for UDP
##! and ICMP flows and for TCP connections that never established (scans, rejected
##! and half-open attempts), once per connection when it ends.

@load base/frameworks/intel
@load frameworks/intel/seen/where-locations
@load frameworks/intel/seen/conn-established
@load ./main

module NKSensor;

# Intel::read_files is the stock knob: a site that keeps the file elsewhere redefs it.
redef Intel::read_files += { @DIR + "/nk-intel.dat" };

redef record connection += {
	## Set when conn-established has already shown this connection to the Intel
	## framework, so it is not reported twice.
	nk_intel_seen: bool &default=F;
};

# The same test conn-established applies before calling Intel::seen.
event connection_established(c: connection)
	{
	if ( c$orig$state == TCP_ESTABLISHED && c$resp$state == TCP_ESTABLISHED )
		c$nk_intel_seen = T;
	}

event connection_state_remove(c: connection)
	{
	if ( ! intel_seen_unestablished || c$nk_intel_seen )
		return;

	# nk-intel.dat holds only catalogued ranges and Tor addresses: a connection with
	# neither endpoint among them cannot match, so it is not shown to the framework.
	if ( range_side(c) == "" && c$id$orig_h !in tor_nodes && c$id$resp_h !in tor_nodes )
		return;

	Intel::seen(Intel::Seen($host=c$id$orig_h, $conn=c, $where=Conn::IN_ORIG));
	Intel::seen(Intel::Seen($host=c$id$resp_h, $conn=c, $where=Conn::IN_RESP));
	}
