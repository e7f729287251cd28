package subnetfile

import "fmt"

// MarshalFlannel renders e in flannel's subnet.env format, which flannel's
// CNI plugin (type "flannel") and scripts written for flanneld read:
//
//	FLANNEL_NETWORK=10.244.0.0/16
//	FLANNEL_SUBNET=10.244.7.1/24
//	FLANNEL_IPV6_NETWORK=fd10:244::/56
//	FLANNEL_IPV6_SUBNET=fd10:244:0:7::1/64
//	FLANNEL_MTU=1468
//	FLANNEL_IPMASQ=false
//
// A family the network lacks has no keys, as flanneld writes it.
//
// FLANNEL_IPMASQ=true means the daemon masquerades traffic leaving the
// network itself (flannel's plugin then sets ipMasq false on its delegate).
func (e Env) MarshalFlannel() []byte { return e.marshal("FLANNEL_") }

// WriteFlannel writes e in flannel's format (MarshalFlannel) to path,
// atomically like Write.
func WriteFlannel(path string, e Env) error {
	if err := e.validate("FLANNEL_"); err != nil {
		return fmt.Errorf("write flannel subnet file: %w", err)
	}
	if err := writeAtomic(path, e.MarshalFlannel()); err != nil {
		return fmt.Errorf("write flannel subnet file: %w", err)
	}
	return nil
}
