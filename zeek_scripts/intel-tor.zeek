##! Opt-in: puts every listed Tor address into the Intel framework as well, for sites that
##! want Tor peers in intel.log beside the package's own Tor_Traffic notices. Load it after
##! the package, for instance ``@load nk-sensor/intel-tor``. It costs about 12 MiB of
##! Intel store for the bundled list of some 8,000 addresses, which is why the package
##! leaves it out.
##!
##! The items come from :zeek:see:`NKSensor::tor_nodes`, the table live-data.zeek reads
##! from tor-relays.tsv inside the package's start-up gate. They are inserted when that read
##! ends, before the gate lets the first packet through, so under ``zeek -r`` the first
##! Tor connection of a trace is matched like every later one; a data file of its own,
##! read by the Intel framework's ungated input stream, could arrive after it. Each re-read
##! of tor-relays.tsv inserts the addresses that are new or changed and removes the ones no
##! longer listed.
##!
##! In a cluster only the manager inserts: it holds the full Intel store and sends each new
##! item to the workers (and the whole store to a worker that connects later). Workers
##! read the same table for Tor_Traffic, but an insert there would only travel to the
##! manager and back, once per worker.

@load base/frameworks/cluster
@load base/frameworks/intel
@load ./intel
@load ./live-data

module NKSensor;

export {
	## The ``sources`` value of the Tor items in intel.log.
	const intel_tor_source = "sensor-plugins tor" &redef;
}

# What this node has put into the Intel store: address -> description. A re-read then
# touches only the addresses that changed, not 8,000 items each time.
global intel_tor_items: table[addr] of string = table();

function intel_tor_description(info: TorInfo): string
	{
	local text = fmt("Tor %s relay", info$role);
	if ( info?$feed )
		text = cat(text, " listed by ", info$feed);
	if ( info?$last_seen )
		text = cat(text, ", last seen ", info$last_seen);
	return text;
	}

function intel_tor_item(a: addr, desc: string): Intel::Item
	{
	return Intel::Item($indicator=cat(a), $indicator_type=Intel::ADDR,
	                   $meta=Intel::MetaData($source=intel_tor_source, $desc=desc));
	}

## Brings the Intel store in line with :zeek:see:`NKSensor::tor_nodes`.
function sync_intel_tor()
	{
	local gone: set[addr] = set();
	for ( a in intel_tor_items )
		if ( a !in tor_nodes )
			add gone[a];

	for ( a in gone )
		{
		# Not purged: a site's own intel may list the same address under another source.
		Intel::remove(intel_tor_item(a, intel_tor_items[a]), F);
		delete intel_tor_items[a];
		}

	for ( a, info in tor_nodes )
		{
		local desc = intel_tor_description(info);
		if ( a in intel_tor_items && intel_tor_items[a] == desc )
			next;
		Intel::insert(intel_tor_item(a, desc));
		intel_tor_items[a] = desc;
		}
	}

@if ( ! Cluster::is_enabled() || Cluster::local_node_type() == Cluster::MANAGER )
# Priority 5: before live-data.zeek's handler (priority 0) ends the start-up gate.
event Input::end_of_data(name: string, source: string) &priority=5
	{
	if ( name != tor_stream )
		return;

	sync_intel_tor();
	}
@endif

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
