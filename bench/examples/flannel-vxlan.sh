#!/bin/sh
# Example extra path for the benchmark harness: a kernel VXLAN set up the way
# flannel's vxlan backend does it (VNI 1, UDP port 8472, no learning, the
# peer's MAC in a static FDB entry and neighbour entry).
#   go run ./bench --extra "flannel-vxlan=bench/examples/flannel-vxlan.sh"
# The harness sets HOST1_NS, HOST2_NS, HOST1_IP, HOST2_IP; the script prints
# the two overlay addresses "A B" (A on host 1, B on host 2) on stdout.
set -eu
A=10.98.0.1 B=10.98.0.2
for side in 1 2; do
	if [ "$side" = 1 ]; then ns=$HOST1_NS self=$HOST1_IP addr=$A; else ns=$HOST2_NS self=$HOST2_IP addr=$B; fi
	ip -n "$ns" link add flannel.1 type vxlan id 1 local "$self" dstport 8472 nolearning dev eth0
	ip -n "$ns" link set flannel.1 mtu 1450 up
	ip -n "$ns" addr add "$addr/24" dev flannel.1
done
mac() { ip -n "$1" -o link show flannel.1 | sed -n 's/.*link\/ether \([0-9a-f:]*\).*/\1/p'; }
mac1=$(mac "$HOST1_NS") mac2=$(mac "$HOST2_NS")
bridge -n "$HOST1_NS" fdb append "$mac2" dev flannel.1 dst "$HOST2_IP"
bridge -n "$HOST2_NS" fdb append "$mac1" dev flannel.1 dst "$HOST1_IP"
ip -n "$HOST1_NS" neigh replace "$B" lladdr "$mac2" dev flannel.1 nud permanent
ip -n "$HOST2_NS" neigh replace "$A" lladdr "$mac1" dev flannel.1 nud permanent
echo "$A $B"
