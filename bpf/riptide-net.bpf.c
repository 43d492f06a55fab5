// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Riptide network observation points and TCP health (issue 19), a separate object from
 * bpf/riptide.bpf.c so that the two load, fail and evolve independently.
 *
 *   tc ingress/egress  rt_net_ingress, rt_net_egress: attached by user space to the interfaces the
 *                      user chose (--net-interfaces, default: host-side veth ends), nowhere else.
 *                      Per TCP segment that carries payload (and, with the agent's port filter,
 *                      has one of its ports): interface, direction, tuple, sequence, payload
 *                      length, timestamp and the first net_capture_limit payload bytes. Always
 *                      TC_ACT_UNSPEC (TCX_NEXT): the programs observe, they never change a
 *                      packet's fate nor stop the programs after them (another agent's, a CNI's).
 *   tcp:tcp_retransmit_skb   one record per retransmitted segment (socket tuple, RTT so far).
 *   (The RTT at data syscalls is read by the capture program's own exit from the socket it holds:
 *                      rt_data_event.tcp_srtt_us in bpf/riptide.h, no tracepoint per syscall.)
 *   sock:inet_sock_set_state a connect finishing (SYN_SENT -> ESTABLISHED: the first smoothed RTT;
 *                      SYN_SENT -> CLOSE: a failed connect) and an established connection
 *                      ending (its final smoothed RTT and retransmit count).
 *
 * Tracepoint arguments are read at offsets that have not moved since 4.16 (skbaddr/skaddr, the
 * states); everything else comes from the socket through CO-RE, so the object does not depend on
 * one kernel's tracepoint structs.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "riptide-net.h"

/* TC_ACT_UNSPEC, which tcx calls TCX_NEXT: run the next program on the hook and leave the packet's
 * fate to it (or to the default, pass). TC_ACT_OK (TCX_PASS) would end the chain there: a second
 * agent on the same interface — or a CNI's own program after ours — would never see the packet. */
#define RT_TC_NEXT -1
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define AF_INET 2
#define AF_INET6 10
#define ETH_HLEN 14
#define RT_NET_HDR_SIZE __builtin_offsetof(struct rt_net_event, payload)

const volatile __u32 net_capture_limit = 256; /* payload bytes copied per packet, <= RT_NET_MAX_PAYLOAD */
/* 1: keep only packets and health events with a port in net_ports (the agent's --filter-port,
 * when it has no pid or name filter): other traffic is counted, never copied. */
const volatile __u32 net_filter_ports = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);  /* host order */
	__type(value, __u8);
} net_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20); /* resized by the loader */
} net_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rt_net_event);
} net_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RT_NET_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} net_counters SEC(".maps");

static __always_inline void net_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&net_counters, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/* Whether a tuple passes the port filter (always, without one). */
static __always_inline int net_port_wanted(__u16 a, __u16 b)
{
	if (!net_filter_ports)
		return 1;
	if (bpf_map_lookup_elem(&net_ports, &a) || bpf_map_lookup_elem(&net_ports, &b))
		return 1;
	net_count(RT_NET_CNT_FILTERED);
	return 0;
}

static __always_inline struct rt_net_event *net_scratch_event(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&net_scratch, &zero);
}

/* ---- TC: packets on chosen interfaces ---- */

static __always_inline int net_packet(struct __sk_buff *skb, __u8 direction)
{
	__u16 proto = bpf_ntohs(skb->protocol);
	__u32 l3 = ETH_HLEN, l4, ip_len, hdr_len;
	struct rt_net_event *e = net_scratch_event();
	if (!e)
		return RT_TC_NEXT;
	__builtin_memset(e, 0, RT_NET_HDR_SIZE);

	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, l3, &ip, sizeof(ip)) < 0)
			goto not_tcp;
		/* fragments other than the first carry no TCP header */
		if (ip.protocol != IPPROTO_TCP || (bpf_ntohs(ip.frag_off) & 0x1fff))
			goto not_tcp;
		hdr_len = (ip.ihl & 0xf) * 4;
		if (hdr_len < 20)
			goto not_tcp;
		ip_len = bpf_ntohs(ip.tot_len);
		if (ip_len < hdr_len)
			goto not_tcp;
		ip_len -= hdr_len;
		l4 = l3 + hdr_len;
		e->family = 4;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, l3, &ip6, sizeof(ip6)) < 0)
			goto not_tcp;
		/* extension headers are not walked: TCP straight after the fixed header only */
		if (ip6.nexthdr != IPPROTO_TCP)
			goto not_tcp;
		ip_len = bpf_ntohs(ip6.payload_len);
		l4 = l3 + sizeof(ip6);
		e->family = 6;
		__builtin_memcpy(e->saddr, &ip6.saddr, 16);
		__builtin_memcpy(e->daddr, &ip6.daddr, 16);
	} else {
		goto not_tcp;
	}

	struct tcphdr tcp;
	if (bpf_skb_load_bytes(skb, l4, &tcp, sizeof(tcp)) < 0)
		goto not_tcp;
	__u32 doff = tcp.doff * 4;
	if (doff < 20 || ip_len <= doff) {
		net_count(RT_NET_CNT_NO_PAYLOAD);
		return RT_TC_NEXT;
	}
	if (!net_port_wanted(bpf_ntohs(tcp.source), bpf_ntohs(tcp.dest)))
		return RT_TC_NEXT;
	__u32 payload_len = ip_len - doff;
	__u32 off = l4 + doff;

	e->ts_ns = bpf_ktime_get_ns();
	e->kind = RT_NET_PACKET;
	e->ifindex = skb->ifindex;
	e->direction = direction;
	e->sport = bpf_ntohs(tcp.source);
	e->dport = bpf_ntohs(tcp.dest);
	e->seq = bpf_ntohl(tcp.seq);
	e->payload_len = payload_len;
	e->tcp_flags = ((__u8 *)&tcp)[13];

	__u32 n = payload_len;
	if (n > net_capture_limit)
		n = net_capture_limit;
	if (off + n > skb->len)
		n = skb->len > off ? skb->len - off : 0;
	n &= (RT_NET_MAX_PAYLOAD * 2 - 1);
	if (n > RT_NET_MAX_PAYLOAD)
		n = RT_NET_MAX_PAYLOAD;
	if (n > 0 && bpf_skb_load_bytes(skb, off, e->payload, n) < 0)
		n = 0;
	e->captured = n;
	__u64 size = RT_NET_HDR_SIZE + (__u64)n;
	if (size > sizeof(*e))
		return RT_TC_NEXT;
	if (bpf_ringbuf_output(&net_events, e, size, 0) < 0)
		net_count(RT_NET_CNT_RINGBUF_FULL);
	else
		net_count(RT_NET_CNT_PACKETS);
	return RT_TC_NEXT;

not_tcp:
	net_count(RT_NET_CNT_NOT_TCP);
	return RT_TC_NEXT;
}

SEC("tc")
int rt_net_ingress(struct __sk_buff *skb)
{
	return net_packet(skb, RT_NET_INGRESS);
}

SEC("tc")
int rt_net_egress(struct __sk_buff *skb)
{
	return net_packet(skb, RT_NET_EGRESS);
}

/* ---- TCP health: retransmits, failed connects, connection ends ---- */

/* The prefix of the tracepoint records that is the same on every kernel since 4.16. */
struct rt_tp_sk_skb {
	__u64 common;
	const void *skbaddr;
	const void *skaddr;
};

struct rt_tp_set_state {
	__u64 common;
	const void *skaddr;
	int oldstate;
	int newstate;
};

static __always_inline void net_health(const void *skaddr, __u32 kind, int oldstate, int newstate)
{
	struct sock *sk = (struct sock *)skaddr;
	if (!sk)
		return;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return;
	__u16 sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	__u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (!net_port_wanted(sport, dport))
		return;
	struct rt_net_event *e = net_scratch_event();
	if (!e)
		return;
	__builtin_memset(e, 0, RT_NET_HDR_SIZE);
	e->ts_ns = bpf_ktime_get_ns();
	e->sk = (__u64)skaddr;
	e->kind = kind;
	e->old_state = oldstate;
	e->new_state = newstate;
	e->sport = sport;
	e->dport = dport;
	if (family == AF_INET) {
		e->family = 4;
		__u32 s = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
		__u32 d = BPF_CORE_READ(sk, __sk_common.skc_daddr);
		__builtin_memcpy(e->saddr, &s, 4);
		__builtin_memcpy(e->daddr, &d, 4);
	} else {
		e->family = 6;
		BPF_CORE_READ_INTO(&e->saddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&e->daddr, sk, __sk_common.skc_v6_daddr);
	}
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	e->srtt_us = BPF_CORE_READ(tp, srtt_us) >> 3;
	e->total_retrans = BPF_CORE_READ(tp, total_retrans);
	if (bpf_ringbuf_output(&net_events, e, RT_NET_HDR_SIZE, 0) < 0)
		net_count(RT_NET_CNT_RINGBUF_FULL);
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int rt_tcp_retransmit(struct rt_tp_sk_skb *ctx)
{
	net_health(ctx->skaddr, RT_NET_RETRANS, 0, 0);
	return 0;
}

SEC("tracepoint/sock/inet_sock_set_state")
int rt_tcp_set_state(struct rt_tp_set_state *ctx)
{
	int o = ctx->oldstate, n = ctx->newstate;
	/* a connect finishing (established: first RTT sample; closed: failed) or an established
	 * connection ending (final RTT, retransmits): nothing else is sent up */
	if (!(o == RT_TCP_SYN_SENT || o == RT_TCP_ESTABLISHED))
		return 0;
	net_health(ctx->skaddr, RT_NET_STATE, o, n);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
