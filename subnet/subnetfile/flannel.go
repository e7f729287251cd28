package subnetfile

import (
	"bytes"
	"fmt"
)

// MarshalFlannel renders e in flannel's subnet.env format, which flannel's
// CNI plugin (type "flannel") and scripts written for flanneld read:
//
//	FLANNEL_NETWORK=10.244.0.0/16
//	FLANNEL_SUBNET=10.244.7.1/24
//	FLANNEL_MTU=1468
//	FLANNEL_IPMASQ=false
//
// FLANNEL_IPMASQ=true means the daemon masquerades traffic leaving the
// network itself (flannel's plugin then sets ipMasq false on its delegate).
func (e Env) MarshalFlannel() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "FLANNEL_NETWORK=%s\n", e.Network)
	fmt.Fprintf(&b, "FLANNEL_SUBNET=%s\n", e.Subnet)
	fmt.Fprintf(&b, "FLANNEL_MTU=%d\n", e.MTU)
	fmt.Fprintf(&b, "FLANNEL_IPMASQ=%t\n", e.IPMasq)
	return b.Bytes()
}

// WriteFlannel writes e in flannel's format (MarshalFlannel) to path,
// atomically like Write.
func WriteFlannel(path string, e Env) error {
	if err := e.Validate(); err != nil {
		return fmt.Errorf("write flannel subnet file: %w", err)
	}
	if err := writeAtomic(path, e.MarshalFlannel()); err != nil {
		return fmt.Errorf("write flannel subnet file: %w", err)
	}
	return nil
}
