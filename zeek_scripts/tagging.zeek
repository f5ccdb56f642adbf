##! Tags conn.log with ``nk_range``/``nk_side`` and raises
##! :zeek:see:`NKSensor::Range_Traffic` on first contact between a host pair.
##! TCP, UDP and ICMP, failed connections and scans are all tagged alike: both
##! handlers run for every connection Zeek tracks, whatever its state.

@load base/frameworks/notice
@load base/protocols/conn
@load ./main

module NKSensor;

event new_connection(c: connection)
	{
	local side = range_side(c);
	if ( side == "" )
		return;

	local inside = side == "orig" ? c$id$orig_h : c$id$resp_h;
	local outside = side == "orig" ? c$id$resp_h : c$id$orig_h;
	local info = ranges[inside];
	# The identifier puts the catalogued host first whatever the direction, so the
	# notice framework (cluster-wide) suppresses the pair, not the direction; the
	# message says who opened this first connection of the pair.
	notice_once(Notice::Info($note=Range_Traffic,
	                         $msg=opened_connection(c),
	                         $sub=fmt("range %s, country %s, confidence %s, %s endpoint",
	                                  info$name, info$country, info$confidence, side),
	                         $conn=c,
	                         $identifier=cat(inside, outside),
	                         $suppress_for=range_traffic_suppress));
	}

# Conn::set_conn fills c$conn at priority 5 and conn.log is written at priority -5,
# so priority 0 sets the fields after the record exists and before it is logged.
# Looking up again here (rather than caching from new_connection) keeps the tag
# right when Zeek flips the connection's direction.
event connection_state_remove(c: connection) &priority=0
	{
	if ( ! c?$conn )
		return;

	local side = range_side(c);
	if ( side == "" )
		return;

	c$conn$nk_side = side;
	c$conn$nk_range = range_name(side == "orig" ? c$id$orig_h : c$id$resp_h);
	}
