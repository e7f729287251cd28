package overlay

// The weft wire format: every UDP datagram carries one inner IPv4 packet behind
// a fixed 4-byte header (see docs/wire-format.md).
//
//	0        1        2        3
//	+--------+--------+--------+--------+
//	| magic  | version|  type  | flags  |
//	+--------+--------+--------+--------+
//	| inner IPv4 packet ...
const (
	// HeaderLen is the length of the weft header in front of every inner packet.
	HeaderLen = 4

	// headerMagic is chosen so that a datagram can never be mistaken for a bare
	// IPv4 packet (whose first byte is 0x45..0x4f).
	headerMagic byte = 0x77 // 'w'
	// headerVersion is the only version this code speaks.
	headerVersion byte = 1
	// typeData marks a datagram whose payload is an inner IPv4 packet.
	typeData byte = 1
	// flagL4Partial marks an inner TCP segment whose checksum field holds
	// only the pseudo-header sum; the receiver has its kernel complete it.
	flagL4Partial byte = 0x01
)

// putHeader writes a data header into b[:HeaderLen].
func putHeader(b []byte) {
	_ = b[HeaderLen-1]
	b[0] = headerMagic
	b[1] = headerVersion
	b[2] = typeData
	b[3] = 0
}

// putHeaderL4Partial writes a data header with the flagL4Partial bit.
func putHeaderL4Partial(b []byte) {
	putHeader(b)
	b[3] = flagL4Partial
}

// checkHeader validates the weft header at the start of a datagram and returns
// notDropped when the datagram carries data this node understands.
func checkHeader(d []byte) DropReason {
	if len(d) < HeaderLen {
		return DropTooShort
	}
	switch {
	case d[0] != headerMagic:
		return DropBadMagic
	case d[1] != headerVersion:
		return DropBadVersion
	case d[2] != typeData:
		return DropUnknownType
	case d[3]&^flagL4Partial != 0:
		return DropReservedBits
	}
	return notDropped
}
