package overlay

// DropReason says why a packet was dropped. Both directions count drops in an
// array indexed by DropReason; a reason only one direction can produce stays 0
// in the other.
type DropReason int

// notDropped is returned by the per-packet checks for a packet that passes.
const notDropped DropReason = -1

const (
	// DropTooShort: datagram shorter than the weft header (RX).
	DropTooShort DropReason = iota
	// DropBadMagic: first header byte is not the weft magic (RX).
	DropBadMagic
	// DropBadVersion: header version is not one this node speaks (RX).
	DropBadVersion
	// DropUnknownType: header type is not data (RX).
	DropUnknownType
	// DropReservedBits: header flags are not zero (RX).
	DropReservedBits
	// DropNotIPv4: the (inner) packet is not IPv4, on a network without
	// IPv6 (RX and TX).
	DropNotIPv4
	// DropTruncated: the (inner) packet is shorter than an IPv4 (IPv6) header (RX and TX).
	DropTruncated
	// DropBadHeaderLength: inner IHL below 5 or beyond the packet (RX).
	DropBadHeaderLength
	// DropLengthMismatch: inner total length differs from what arrived (RX).
	DropLengthMismatch
	// DropUnknownPeer: outer source address:port is no peer's lease endpoint (RX).
	DropUnknownPeer
	// DropSpoofedInnerSource: a known peer sent an inner source that is neither in
	// its subnet nor its own PublicIP (RX).
	DropSpoofedInnerSource
	// DropWrongDestination: inner destination is not inside this node's subnet (RX).
	DropWrongDestination
	// DropTTLExpired: the inner TTL (IPv6 hop limit) would reach 0 (RX).
	DropTTLExpired
	// DropOutsideNetwork: destination outside the overlay network (TX).
	DropOutsideNetwork
	// DropNoPeer: destination subnet has no lease; ICMP net unreachable sent (TX).
	DropNoPeer
	// DropTooBig: inner packet too big for the path; ICMP fragmentation needed sent (TX).
	DropTooBig
	// DropSendError: the UDP send failed (TX).
	DropSendError
	// DropTUNWriteError: writing a batch into the TUN failed (RX, counted per batch).
	DropTUNWriteError
	// DropBroadcastDestination: inner destination is this node's subnet
	// broadcast address; a remote sender must not reach every container (RX).
	DropBroadcastDestination
	// DropIPOptions: the inner IPv4 header carries options (IHL > 5), or the
	// inner IPv6 header is followed by a Hop-by-Hop Options or a Routing
	// header, which weft never forwards between nodes (source routing,
	// record route...) (RX).
	DropIPOptions
	// DropNotIP: the (inner) packet is of an IP version the network does
	// not carry, on a network with IPv6: neither IPv4 nor IPv6, or IPv4 on
	// an IPv6-only network (RX and TX).
	DropNotIP
	// DropQueueDelay: a TCP segment dropped by the TUN queue's AQM (CoDel)
	// to keep the standing delay in front of weftd short (TX).
	DropQueueDelay

	dropReasonCount
)

// NumDropReasons is the number of DropReason values (the length of the Drops arrays).
const NumDropReasons = int(dropReasonCount)

var dropReasonNames = [NumDropReasons]string{
	DropTooShort:             "too_short",
	DropBadMagic:             "bad_magic",
	DropBadVersion:           "bad_version",
	DropUnknownType:          "unknown_type",
	DropReservedBits:         "reserved_bits",
	DropNotIPv4:              "not_ipv4",
	DropTruncated:            "truncated",
	DropBadHeaderLength:      "bad_header_length",
	DropLengthMismatch:       "length_mismatch",
	DropUnknownPeer:          "unknown_peer",
	DropQueueDelay:           "queue_delay",
	DropSpoofedInnerSource:   "spoofed_inner_source",
	DropWrongDestination:     "wrong_destination",
	DropTTLExpired:           "ttl_expired",
	DropOutsideNetwork:       "outside_network",
	DropNoPeer:               "no_peer",
	DropTooBig:               "too_big",
	DropSendError:            "send_error",
	DropTUNWriteError:        "tun_write_error",
	DropBroadcastDestination: "broadcast_destination",
	DropIPOptions:            "ip_options",
	DropNotIP:                "not_ip",
}

// String returns the snake_case name of the reason, used in metrics and /status.
func (r DropReason) String() string {
	if r >= 0 && int(r) < NumDropReasons {
		return dropReasonNames[r]
	}
	if r == notDropped {
		return "not_dropped"
	}
	return "unknown"
}
