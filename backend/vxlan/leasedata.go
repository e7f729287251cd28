package vxlan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
)

// MAC is an Ethernet address, comparable (a map key).
type MAC [6]byte

func (m MAC) String() string { return net.HardwareAddr(m[:]).String() }

// HardwareAddr returns m as a net.HardwareAddr (a new slice).
func (m MAC) HardwareAddr() net.HardwareAddr { return net.HardwareAddr(bytes.Clone(m[:])) }

// MACFrom converts a 6-byte hardware address.
func MACFrom(hw net.HardwareAddr) (MAC, error) {
	var m MAC
	if len(hw) != len(m) {
		return m, fmt.Errorf("%q is not a 6-byte Ethernet address", hw.String())
	}
	copy(m[:], hw)
	return m, nil
}

// checkUnicast refuses what cannot be a VTEP's address: all zeros, or a
// group (multicast or broadcast) address.
func (m MAC) checkUnicast() error {
	if m == (MAC{}) {
		return errors.New("VtepMAC is all zeros")
	}
	if m[0]&1 != 0 {
		return fmt.Errorf("VtepMAC %s is a group address", m)
	}
	return nil
}

// LeaseData is a vxlan lease's BackendData, flannel's {"VNI":1,"VtepMAC":"..."}.
type LeaseData struct {
	VNI     int
	VtepMAC MAC
}

// leaseDataJSON is the wire form.
type leaseDataJSON struct {
	VNI     int    `json:"VNI"`
	VtepMAC string `json:"VtepMAC"`
}

// MaxLeaseDataSize bounds BackendData before it is decoded (flannel's is
// about 45 bytes).
const MaxLeaseDataSize = 512

// Marshal renders d as flannel does.
func (d LeaseData) Marshal() []byte {
	b, _ := json.Marshal(leaseDataJSON{VNI: d.VNI, VtepMAC: d.VtepMAC.String()})
	return b
}

// ParseLeaseData decodes and checks another node's BackendData.
func ParseLeaseData(raw []byte) (LeaseData, error) {
	if len(raw) == 0 {
		return LeaseData{}, errors.New("no BackendData")
	}
	if len(raw) > MaxLeaseDataSize {
		return LeaseData{}, fmt.Errorf("BackendData of %d bytes (at most %d)", len(raw), MaxLeaseDataSize)
	}
	var j leaseDataJSON
	if err := json.Unmarshal(raw, &j); err != nil {
		return LeaseData{}, fmt.Errorf("BackendData: %w", err)
	}
	if j.VNI < 0 || j.VNI > MaxVNI {
		return LeaseData{}, fmt.Errorf("BackendData: VNI %d out of range", j.VNI)
	}
	hw, err := net.ParseMAC(j.VtepMAC)
	if err != nil {
		return LeaseData{}, fmt.Errorf("BackendData: VtepMAC: %w", err)
	}
	m, err := MACFrom(hw)
	if err != nil {
		return LeaseData{}, fmt.Errorf("BackendData: VtepMAC: %w", err)
	}
	if err := m.checkUnicast(); err != nil {
		return LeaseData{}, fmt.Errorf("BackendData: %w", err)
	}
	return LeaseData{VNI: j.VNI, VtepMAC: m}, nil
}
