// SPDX-License-Identifier: MIT OR Apache-2.0
//
// shoal's XDP program: hands UDP datagrams addressed to the tracker's ports
// to the AF_XDP socket of the receive queue they arrived on, and everything
// else to the kernel as before.
//
// Redirected: untagged Ethernet II; IPv4 with no options (IHL 5) and not a
// fragment (MF clear, offset 0); or IPv6 whose next header is UDP (so no
// extension headers, no fragment header); a UDP destination port set in
// `ports`. The rest of the checks (lengths, the IPv4 header checksum, the
// source) are the worker's (src/xdp/frame), which drops what fails them, as
// the kernel would. Everything else is XDP_PASS: ARP, ND, ICMP, TCP, other
// ports, fragments (the kernel reassembles them), VLAN-tagged frames.
//
// A queue with no socket in `xsks` falls back to XDP_PASS (the flags of
// bpf_redirect_map), so the kernel's own sockets on the same ports answer.
//
// Built by src/xdp/build.rs with `clang -target bpf -O2` when the `xdp`
// feature is on, and embedded in the binary.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// One AF_XDP socket per receive queue, keyed by the queue's index.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// ports[p] != 0: UDP port p (host order) is one of the tracker's.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} ports SEC(".maps");

// Frames that matched and were handed to bpf_redirect_map, per CPU.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} matched SEC(".maps");

SEC("xdp")
int shoal_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct udphdr *udp;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > end)
			return XDP_PASS;
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
			return XDP_PASS;
		if (ip->frag_off & bpf_htons(0x3FFF))
			return XDP_PASS;
		udp = (void *)(ip + 1);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		if (ip6->version != 6 || ip6->nexthdr != IPPROTO_UDP)
			return XDP_PASS;
		udp = (void *)(ip6 + 1);
	} else {
		return XDP_PASS;
	}
	if ((void *)(udp + 1) > end)
		return XDP_PASS;

	__u32 port = bpf_ntohs(udp->dest);
	__u8 *on = bpf_map_lookup_elem(&ports, &port);
	if (!on || !*on)
		return XDP_PASS;

	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&matched, &zero);
	if (n)
		*n += 1;
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
