/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Record layout of bpf/riptide-net.bpf.c (network observation points and TCP health, issue 19):
 * the contract with agent/capture/net-*.ts. Offsets are generated from the object's BTF into
 * agent/capture/net-layout.generated.ts by bpf/gen-layout.ts.
 */
#ifndef RIPTIDE_NET_H
#define RIPTIDE_NET_H

#define RT_NET_MAX_PAYLOAD 1024

enum rt_net_kind {
	RT_NET_PACKET = 1,  /* a TCP segment carrying payload, seen at a TC hook */
	RT_NET_RETRANS = 2, /* tcp:tcp_retransmit_skb */
	RT_NET_STATE = 3,   /* sock:inet_sock_set_state, the transitions user space needs */
	RT_NET_RTT = 4,     /* sock:sock_send/recv_length: a data syscall found a new smoothed RTT */
};

enum rt_net_dir {
	RT_NET_EGRESS = 0,
	RT_NET_INGRESS = 1,
};

/* Kernel TCP states (include/net/tcp_states.h) that user space reads. */
enum rt_net_tcp_state {
	RT_TCP_ESTABLISHED = 1,
	RT_TCP_SYN_SENT = 2,
	RT_TCP_CLOSE = 7,
};

/* Counters in the per-CPU array net_counters. */
enum rt_net_counter {
	RT_NET_CNT_PACKETS = 0,   /* packets emitted */
	RT_NET_CNT_RINGBUF_FULL = 1,
	RT_NET_CNT_NOT_TCP = 2,   /* skipped: not IPv4/IPv6 TCP, or a fragment */
	RT_NET_CNT_NO_PAYLOAD = 3,
	RT_NET_CNT_FILTERED = 4,  /* packets and health events of ports the agent was not asked for */
	RT_NET_CNT_MAX = 5,
};

/*
 * One record. For packets: the interface, direction, 5-tuple (source → destination as on the
 * wire, network byte order addresses, host order ports), sequence, TCP payload length and the
 * first `captured` payload bytes. For TCP health (ifindex 0): the socket's local → remote tuple
 * in saddr/sport → daddr/dport, the states, and the smoothed RTT read from the socket.
 */
struct rt_net_event {
	__u64 ts_ns;       /* CLOCK_MONOTONIC */
	__u64 sk;          /* socket address (health records), 0 for packets */
	__u32 kind;
	__u32 ifindex;
	__u32 seq;
	__u32 payload_len; /* TCP payload bytes in the segment (GSO: the whole super-packet) */
	__u32 captured;    /* payload bytes that follow the header */
	__u32 srtt_us;     /* health records: smoothed RTT (tcp_sock.srtt_us >> 3) */
	__u32 total_retrans;
	__s32 old_state;
	__s32 new_state;
	__u16 sport;
	__u16 dport;
	__u8 direction;
	__u8 family;       /* 4 or 6 */
	__u8 tcp_flags;
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 payload[RT_NET_MAX_PAYLOAD];
};

#endif
