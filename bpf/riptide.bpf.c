// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Riptide capture program: the ten data syscalls on sockets, enter and exit, plus socket
 * lifecycle (connect, accept, close) and process exec/exit, all on syscall/sched tracepoints
 * (the baseline every kernel with BTF has; kprobes and fentry are optional accelerators that
 * this kernel does not offer).
 *
 * Path: enter stashes the arguments per thread (one syscall per thread at a time) after
 * resolving the fd to a socket -- non-socket fds stop here; exit combines them with the
 * return value, copies the head of the payload and writes one record to the ring buffer.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "riptide.h"

#define AF_INET 2
#define AF_INET6 10
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define EINPROGRESS 115

/* ---- load-time constants (set by the loader before load) ---- */
const volatile __u32 capture_limit = 1024; /* payload bytes copied, <= RT_MAX_PAYLOAD */
const volatile __u32 self_tgid = 0;        /* the agent itself is never traced */
const volatile __u64 id_seed = 0;          /* socket and trace ids start here (unique per run) */
const volatile __u8 filter_pids = 0;       /* when any filter is on, a message must match one */
const volatile __u8 filter_ports = 0;
const volatile __u8 filter_comms = 0;
const volatile __u8 exclude_pids = 0;      /* pid_exclude holds entries */
const volatile __u8 direct_reads = 1;      /* 0: read kernel structs with probe reads only (see RD) */

/* ---- maps ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20); /* resized by the loader */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2); /* 0: socket ids, 1: syscall-trace ids */
	__type(key, __u32);
	__type(value, __u64);
} id_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u8);
} pid_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u16);
	__type(value, __u8);
} port_filter SEC(".maps");

/* Processes never traced, whatever the filters say (e.g. the other Riptide roles on this host). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u8);
} pid_exclude SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, char[RT_COMM_LEN]);
	__type(value, __u8);
} comm_filter SEC(".maps");

/* What enter learned, for exit to finish. */
struct rt_args {
	__u64 enter_ns;
	__u64 sk;        /* struct sock * */
	__u64 buf;       /* buffer, iovec array, user_msghdr or mmsghdr, by syscall */
	__u64 addr;      /* sockaddr for sendto/recvfrom (unconnected UDP) */
	__u32 count;     /* iovcnt for readv/writev */
	__u32 tcp_seq;
	__u32 fd;
	__u16 family;
	__u8 l4;
	__u8 syscall;
	__u8 recheck_ports; /* unconnected UDP: the peer port is only known from the sockaddr at exit */
	__u8 in_flight;     /* set at enter, cleared at exit */
	/* The thread's syscall-trace state, kept across syscalls (see trace_id_for). */
	__u8 trace_last_dir;
	__u64 trace_id;
	__u64 trace_socket;
	__u64 goid; /* running goroutine of a Go process at enter, else 0 (see current_goid) */
};

/*
 * Per-thread scratch for enter → exit. Task-local storage: no hashing or bucket locks on the
 * hottest path, and it goes away with the thread (a hash keyed by pid_tgid would need deletes).
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct rt_args);
} active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, __u32); /* fd being connected */
} connecting SEC(".maps");

struct rt_sock_info {
	__u64 socket_id;
	__u64 sk;
	__u8 role;
	__u8 tuple_ok; /* the tuple below is filled (connected TCP: it never changes) */
	__u16 family;
	__u16 local_port;
	__u16 remote_port;
	__u8 local_addr[16];
	__u8 remote_addr[16];
	/* The socket's verdict as last read from `verdicts` (see "per-socket capture verdicts"). */
	__u64 verdict_gen; /* verdict_gen[0] when it was read: read again when that moved */
	__u8 vd_mode;
	__u16 vd_cap_egress;
	__u16 vd_cap_ingress;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* tgid << 32 | fd */
	__type(value, struct rt_sock_info);
} sockets SEC(".maps");

/* Scratch space to build a record: double size so variable offsets stay provably in bounds. */
struct rt_scratch {
	__u8 bytes[sizeof(struct rt_data_event) + 2 * RT_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rt_scratch);
} scratch SEC(".maps");

/* Force BTF for the records user space decodes (the generator reads their layout). */
const struct rt_data_event *unused_data_event __attribute__((unused));
const struct rt_close_event *unused_close_event __attribute__((unused));
const struct rt_proc_event *unused_proc_event __attribute__((unused));
const struct rt_verdict *unused_verdict __attribute__((unused));

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* ---- helpers ---- */

/*
 * Kernel structs reached from an fd (file, inode, socket, sock) are read with direct loads through
 * bpf_rdonly_cast (kernel >= 6.2): the verifier turns the cast into nothing and each field into
 * one fault-tolerant load, where BPF_CORE_READ costs a bpf_probe_read_kernel call per field --
 * about ten of them on every read/write syscall on the machine. The kfunc is weak: on a kernel
 * without it libbpf resolves it to 0, the verifier drops the direct branch and the probe-read
 * one runs instead (the loader can also ask for that path: direct_reads = 0).
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;
#define RD(type, ptr, field) \
	(direct_reads && bpf_rdonly_cast ? ((type *)bpf_rdonly_cast((ptr), bpf_core_type_id_kernel(type)))->field \
			 : BPF_CORE_READ((type *)(ptr), field))

static __always_inline void count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &which);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u64 next_id(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&id_counters, &which);
	if (!v)
		return 0;
	return id_seed + __sync_fetch_and_add(v, 1) + 1;
}

static __always_inline bool any_filter(void)
{
	return filter_pids || filter_ports || filter_comms;
}

/* Filters that need no socket: the agent itself, pids and process names. */
static __always_inline bool task_selected(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (exclude_pids && bpf_map_lookup_elem(&pid_exclude, &tgid))
		return false;
	if (!any_filter())
		return true;
	if (filter_pids && bpf_map_lookup_elem(&pid_filter, &tgid))
		return true;
	if (filter_comms) {
		char comm[RT_COMM_LEN] = {};
		bpf_get_current_comm(&comm, sizeof(comm));
		if (bpf_map_lookup_elem(&comm_filter, &comm))
			return true;
	}
	return false;
}

static __always_inline bool port_selected(__u16 lport, __u16 rport)
{
	return filter_ports && (bpf_map_lookup_elem(&port_filter, &lport) || bpf_map_lookup_elem(&port_filter, &rport));
}

/*
 * fd -> struct sock *, or NULL when the fd is not a socket. The walk uses the BTF-typed current
 * task, so each hop is a direct (fault-tolerant) load rather than a bpf_probe_read_kernel call:
 * this runs on every read/write syscall on the machine, sockets or not.
 */
static __always_inline struct sock *fd_to_sock(__u32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct fdtable *fdt = task->files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	struct file *file = NULL;
	bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]);
	if (!file)
		return NULL;
	struct inode *inode = RD(struct file, file, f_inode);
	if (!inode)
		return NULL;
	umode_t mode = RD(struct inode, inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = RD(struct file, file, private_data);
	if (!sock)
		return NULL;
	return RD(struct socket, sock, sk);
}

static __always_inline __u16 sock_ports(struct sock *sk, __u16 *rport)
{
	*rport = bpf_ntohs(RD(struct sock, sk, __sk_common.skc_dport));
	return RD(struct sock, sk, __sk_common.skc_num);
}

/* ---- goroutines (issue 15; riptide.h: struct rt_go_proc) ---- */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* tgid */
	__type(value, struct rt_go_proc);
} go_procs SEC(".maps");

struct rt_go_key {
	__u32 tgid;
	__u32 _pad;
	__u64 goid;
};

/* A goroutine's syscall-trace state: what trace_id_for keeps per thread, per goroutine instead. */
struct rt_go_trace {
	__u64 trace_id;
	__u64 trace_socket;
	__u8 trace_last_dir;
	__u8 _pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* goroutines that ended are evicted as new ones come */
	__type(key, struct rt_go_key);
	__type(value, struct rt_go_trace);
} go_traces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RT_GO_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} go_counters SEC(".maps");

const struct rt_go_proc *unused_go_proc __attribute__((unused));

static __always_inline void go_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&go_counters, &which);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * The running goroutine's id, or 0 when the process is not a Go process the agent described. Go
 * keeps the current g in TLS (besides R14 under the register ABI, which a syscall tracepoint does
 * not see as the user's), at g_tls_offset from the thread pointer: two user reads.
 */
static __always_inline __u64 current_goid(__u32 tgid)
{
	struct rt_go_proc *gp = bpf_map_lookup_elem(&go_procs, &tgid);
	if (!gp)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 fsbase = task->thread.fsbase;
	__u64 g = 0, goid = 0;
	if (!fsbase || bpf_probe_read_user(&g, sizeof(g), (void *)(fsbase + (__s64)gp->g_tls_offset)) || !g ||
	    bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + gp->goid_offset)) || !goid) {
		go_count(RT_GO_CNT_READ_FAILED);
		return 0;
	}
	go_count(RT_GO_CNT_READ_OK);
	return goid;
}

/* trace_id_for, with the state of goroutine `goid` (created on first sight); 0 when the map refuses. */
static __always_inline __u64 go_trace_id_for(__u32 tgid, __u64 goid, __u8 dir, __u64 socket_id, bool *ok)
{
	struct rt_go_key key = { .tgid = tgid, .goid = goid };
	struct rt_go_trace *t = bpf_map_lookup_elem(&go_traces, &key);
	if (!t) {
		struct rt_go_trace fresh = {};
		bpf_map_update_elem(&go_traces, &key, &fresh, BPF_NOEXIST);
		t = bpf_map_lookup_elem(&go_traces, &key);
		if (!t) {
			go_count(RT_GO_CNT_STATE_FULL);
			*ok = false;
			return 0;
		}
	}
	*ok = true;
	if (dir == RT_DIR_INGRESS) {
		if (!(t->trace_id && t->trace_last_dir == RT_DIR_INGRESS && t->trace_socket == socket_id))
			t->trace_id = next_id(1);
		t->trace_socket = socket_id;
		t->trace_last_dir = RT_DIR_INGRESS;
		return t->trace_id;
	}
	t->trace_last_dir = RT_DIR_EGRESS;
	t->trace_socket = socket_id;
	return t->trace_id;
}

/* Enter of a data syscall: resolve the socket, apply filters, stash what exit needs. */
static __always_inline int on_enter(__u8 sys, __u32 fd, __u64 buf, __u32 count_arg, __u64 addr)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	if (tgid == self_tgid)
		return 0;
	if (exclude_pids && bpf_map_lookup_elem(&pid_exclude, &tgid))
		return 0;
	bool selected = task_selected(tgid);
	if (!selected && !filter_ports)
		return 0;

	struct sock *sk = fd_to_sock(fd);
	if (!sk)
		return 0;
	__u16 family = RD(struct sock, sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	__u16 type = RD(struct sock, sk, sk_type);
	__u8 l4;
	if (type == SOCK_STREAM)
		l4 = IPPROTO_TCP;
	else if (type == SOCK_DGRAM)
		l4 = IPPROTO_UDP;
	else
		return 0;
	__u8 recheck = 0;
	if (!selected) {
		__u16 rport;
		__u16 lport = sock_ports(sk, &rport);
		if (!port_selected(lport, rport)) {
			if (l4 != IPPROTO_UDP || rport != 0)
				return 0;
			recheck = 1;
		}
	}

	struct rt_args a = {};
	a.recheck_ports = recheck;
	a.enter_ns = bpf_ktime_get_ns();
	a.sk = (__u64)sk;
	a.buf = buf;
	a.addr = addr;
	a.count = count_arg;
	a.fd = fd;
	a.family = family;
	a.l4 = l4;
	a.syscall = sys;
	if (l4 == IPPROTO_TCP) {
		struct tcp_sock *tp = (struct tcp_sock *)sk;
		a.tcp_seq = sys <= RT_SYS_SENDMMSG ? RD(struct tcp_sock, tp, write_seq) : RD(struct tcp_sock, tp, copied_seq);
	}
	struct rt_args *slot = bpf_task_storage_get(&active, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot) {
		count(RT_CNT_ARGS_FULL);
		return 0;
	}
	/* Field by field: the thread's trace state in the same slot outlives this syscall. */
	slot->enter_ns = a.enter_ns;
	slot->sk = a.sk;
	slot->buf = a.buf;
	slot->addr = a.addr;
	slot->count = a.count;
	slot->tcp_seq = a.tcp_seq;
	slot->fd = a.fd;
	slot->family = a.family;
	slot->l4 = a.l4;
	slot->syscall = a.syscall;
	slot->recheck_ports = a.recheck_ports;
	slot->in_flight = 1;
	slot->goid = current_goid(tgid);
	return 0;
}

/* Reads a user sockaddr into the remote address/port (unconnected UDP). */
static __always_inline void read_sockaddr(struct rt_data_event *ev, __u64 uaddr)
{
	if (!uaddr)
		return;
	__u16 fam = 0;
	bpf_probe_read_user(&fam, sizeof(fam), (void *)uaddr);
	if (fam == AF_INET) {
		struct sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), (void *)uaddr);
		__builtin_memcpy(ev->remote_addr, &sin.sin_addr.s_addr, 4);
		ev->remote_port = bpf_ntohs(sin.sin_port);
	} else if (fam == AF_INET6) {
		struct sockaddr_in6 sin6 = {};
		bpf_probe_read_user(&sin6, sizeof(sin6), (void *)uaddr);
		__builtin_memcpy(ev->remote_addr, &sin6.sin6_addr, 16);
		ev->remote_port = bpf_ntohs(sin6.sin6_port);
	}
}

/* Copies up to `want` bytes from an iovec array into the payload; returns bytes copied. */
static __always_inline __u32 copy_iov(struct rt_data_event *ev, __u64 iov_ptr, __u32 iovcnt, __u32 want)
{
	__u32 off = 0;
#pragma unroll
	for (int i = 0; i < RT_MAX_IOV; i++) {
		if (i >= iovcnt || off >= want)
			break;
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(iov_ptr + i * sizeof(struct iovec))))
			break;
		__u32 n = iov.iov_len;
		if (n > want - off)
			n = want - off;
		__u32 o = off & (RT_MAX_PAYLOAD - 1);
		n &= (RT_MAX_PAYLOAD - 1);
		if (n == 0)
			continue;
		if (bpf_probe_read_user(&ev->payload[o], n, iov.iov_base))
			break;
		off += n;
	}
	return off;
}

static __always_inline void fill_tuple(struct rt_data_event *ev, struct sock *sk, __u16 family)
{
	ev->family = family;
	ev->local_port = RD(struct sock, sk, __sk_common.skc_num);
	ev->remote_port = bpf_ntohs(RD(struct sock, sk, __sk_common.skc_dport));
	if (family == AF_INET) {
		__u32 l = RD(struct sock, sk, __sk_common.skc_rcv_saddr);
		__u32 r = RD(struct sock, sk, __sk_common.skc_daddr);
		__builtin_memcpy(ev->local_addr, &l, 4);
		__builtin_memcpy(ev->remote_addr, &r, 4);
	} else {
		BPF_CORE_READ_INTO(&ev->local_addr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&ev->remote_addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	}
}

/* Socket id and role for (tgid, fd): created on first sight, renewed when the fd now names another socket. */
static __always_inline struct rt_sock_info *sock_info(__u32 tgid, __u32 fd, __u64 sk)
{
	__u64 key = ((__u64)tgid << 32) | fd;
	struct rt_sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	if (info) {
		if (info->sk == sk)
			return info;
		if (info->sk == 0) { /* registered by connect/accept before we knew the sock */
			info->sk = sk;
			return info;
		}
	}
	struct rt_sock_info fresh = {};
	fresh.socket_id = next_id(0);
	fresh.sk = sk;
	fresh.role = RT_ROLE_UNKNOWN;
	bpf_map_update_elem(&sockets, &key, &fresh, BPF_ANY);
	return bpf_map_lookup_elem(&sockets, &key);
}

static __always_inline __u64 trace_id_for(struct rt_args *t, __u8 dir, __u64 socket_id)
{
	if (dir == RT_DIR_INGRESS) {
		/* A request split over several reads keeps its id; any other receive starts a new one. */
		if (!(t->trace_id && t->trace_last_dir == RT_DIR_INGRESS && t->trace_socket == socket_id))
			t->trace_id = next_id(1);
		t->trace_socket = socket_id;
		t->trace_last_dir = RT_DIR_INGRESS;
		return t->trace_id;
	}
	/* Egress reuses what the thread last received (0 when it received nothing). */
	t->trace_last_dir = RT_DIR_EGRESS;
	t->trace_socket = socket_id;
	return t->trace_id;
}

/* Writes the record in the scratch buffer to the ring (header + `got` payload bytes). */
static __always_inline void emit(struct rt_scratch *s, struct rt_data_event *ev, __u32 got)
{
	ev->payload_len = got;
	__u64 size = sizeof(struct rt_data_event) + got;
	if (size > sizeof(struct rt_scratch))
		size = sizeof(struct rt_scratch);
	if (bpf_ringbuf_output(&events, s->bytes, size, BPF_RB_NO_WAKEUP))
		count(RT_CNT_RINGBUF_FULL);
	else
		count(RT_CNT_EMITTED);
}

/*
 * sendmmsg/recvmmsg move several messages in one call (glibc's resolver sends the A and AAAA
 * queries together): one record per message, up to RT_MAX_MMSG, each with its own length, peer
 * and, on TCP, its own sequence number.
 */
static __always_inline void emit_mmsg(struct rt_scratch *s, struct rt_data_event *ev, struct rt_args *a, long nmsgs, __u32 limit)
{
	__u32 seq = ev->tcp_seq;
	bool unconnected = a->l4 == IPPROTO_UDP && ev->remote_port == 0;
#pragma unroll
	for (int i = 0; i < RT_MAX_MMSG; i++) {
		if (i >= nmsgs)
			break;
		struct mmsghdr mm = {};
		if (bpf_probe_read_user(&mm, sizeof(mm), (void *)(a->buf + i * sizeof(struct mmsghdr))))
			break;
		ev->bytes = mm.msg_len;
		ev->tcp_seq = a->l4 == IPPROTO_TCP ? seq : 0;
		seq += mm.msg_len;
		if (unconnected) {
			__builtin_memset(ev->remote_addr, 0, sizeof(ev->remote_addr));
			ev->remote_port = 0;
			read_sockaddr(ev, (__u64)mm.msg_hdr.msg_name);
			if (a->recheck_ports && !port_selected(ev->local_port, ev->remote_port))
				continue;
		}
		__u32 want = mm.msg_len < limit ? mm.msg_len : limit;
		emit(s, ev, copy_iov(ev, (__u64)mm.msg_hdr.msg_iov, mm.msg_hdr.msg_iovlen, want));
	}
}

/*
 * ---- syscalls already under way when capture began (issue 15: the first request after start-up) ----
 * A thread that was blocked in recv() when the programs attached -- a thread-per-connection server
 * on a keep-alive connection opened earlier (nginx's upstream pool, a pooled client) -- never ran
 * enter for that call, so its exit had nothing to finish and the first request on the connection
 * was lost. At the first exit a thread shows without any slot, run enter from the syscall's
 * arguments, still in its saved registers (only ax is the return value), and take the TCP sequence
 * back by the bytes the call moved (enter reads it before they move). The slot created here marks
 * the thread as seen, whatever this syscall was: from then on every syscall of the thread began
 * after attach, an exit without an in-flight enter is one enter turned down, and stays as cheap as
 * before. Kernels without bpf_task_pt_regs (before 5.15) skip this and lose that one call, as before.
 */
static __always_inline struct rt_args *enter_missed(__u8 sys, long ret)
{
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return NULL;
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid == self_tgid || (!filter_ports && !task_selected(tgid)))
		return NULL;
	struct task_struct *task = bpf_get_current_task_btf();
	struct rt_args *slot = bpf_task_storage_get(&active, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot || ret <= 0)
		return slot;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return slot;
	__u32 fd = PT_REGS_PARM1_CORE_SYSCALL(regs);
	__u64 buf = PT_REGS_PARM2_CORE_SYSCALL(regs);
	__u32 n = PT_REGS_PARM3_CORE_SYSCALL(regs);
	__u64 addr = PT_REGS_PARM5_CORE_SYSCALL(regs);
	bool vec = sys == RT_SYS_WRITEV || sys == RT_SYS_READV || sys == RT_SYS_SENDMMSG || sys == RT_SYS_RECVMMSG;
	bool mmsg = sys == RT_SYS_SENDMMSG || sys == RT_SYS_RECVMMSG;
	on_enter(sys, fd, buf, vec ? n : 0, sys == RT_SYS_SENDTO || sys == RT_SYS_RECVFROM ? addr : 0);
	if (slot->in_flight && slot->l4 == IPPROTO_TCP && !mmsg)
		slot->tcp_seq -= (__u32)ret;
	return slot;
}

/* ---- hand-offs between threads (issue 15) ----
 *
 * A thread pool's reader receives a request and wakes a worker to serve it: the worker's sends then
 * carry the worker's own syscall-trace id, which says nothing of that request. On sched_waking, when
 * the waker has a live context (its last socket syscall received something, recently, and it is not
 * inside a socket syscall or interrupt), the wakee is given that context; its next sends carry it as
 * handoff_trace_id beside their own id. It ends when the wakee answers on a server socket, receives
 * a request of its own or wakes the thread that handed it the work, or another wake-up replaces it. Trace assembly's `handoff` rule
 * decides whether to believe it (docs/TRACE-ASSEMBLY.md). Off unless the loader sets handoff_enabled
 * (the sched_waking program is then not even attached).
 *
 * Wake-backs, the reverse direction: a thread whose last socket syscall received a reply (on a
 * socket it did not accept: a worker that has just read its last database answer) and wakes another
 * stamps the wakee with its own syscall-trace id (back_id). The stamp is carried only by the wakee's
 * very next socket syscall, and only when that is the answer to the request the wakee had read last
 * (a send on the same accepted socket it last received on): a reader that handed its request to a
 * worker and waited for the result (a CompletableFuture) answers right after the worker completing
 * that future woke it, and the worker's id is the response id of its last call for that request.
 * Any other next syscall drops it (a thread woken by a pool returning a connection goes on to send
 * a query, not an answer), and so does a second wake-back with another id before it (ambiguous). The answer carries it in handoff_trace_id (a server-side send: a
 * forward hand-off is never carried there, so the field is unambiguous per side).
 */
const volatile __u8 handoff_enabled = 0;
const volatile __u64 handoff_window_ns = 50000000; /* the waker's context must be this fresh */

struct rt_handoff {
	__u64 trace_id; /* forward hand-off: the waker's request id; 0 when none */
	__u64 ts_ns;
	__u32 waker_tgid;
	__u32 waker_tid;
	__u64 back_id;  /* wake-back: the waker's id right after it read a reply; 0 when none */
	__u32 back_tgid;
	__u32 back_conflict; /* a second wake-back with another id came before the wakee's next socket syscall */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32); /* wakee tid */
	__type(value, struct rt_handoff);
} handoffs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RT_HO_MAX);
	__type(key, __u32);
	__type(value, __u64);
} handoff_counters SEC(".maps");

static __always_inline void ho_count(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&handoff_counters, &which);
	if (v)
		__sync_fetch_and_add(v, 1);
}

/*
 * The hand-off a data syscall of this thread carries, ending it where its work ends. `answers`: an
 * egress on the accepted socket the thread last received on (the answer to the request it read); a
 * wake-back stamp is carried only then, and is gone after this syscall either way. A forward
 * hand-off is carried by client-side sends only.
 */
static __always_inline __u64 handoff_for(__u32 tgid, __u32 tid, __u8 dir, __u8 role, bool answers)
{
	if (!handoff_enabled)
		return 0;
	struct rt_handoff *h = bpf_map_lookup_elem(&handoffs, &tid);
	if (!h)
		return 0;
	__u64 back = 0;
	if (h->back_id) {
		if (answers && h->back_tgid == tgid && !h->back_conflict) {
			back = h->back_id;
			ho_count(RT_HO_BACK_CARRIED);
		} else {
			ho_count(RT_HO_BACK_DROPPED);
		}
		h->back_id = 0;
		h->back_conflict = 0;
	}
	__u64 id = h->trace_id;
	if (id && h->waker_tgid != tgid) {
		h->trace_id = id = 0;
		ho_count(RT_HO_OTHER_PROCESS);
	}
	if (id && role == RT_ROLE_SERVER) {
		/* Answering (egress) or reading a request of its own (ingress): the handed work is over. */
		h->trace_id = 0;
		ho_count(RT_HO_ENDED);
	}
	if (!h->trace_id && !h->back_id)
		bpf_map_delete_elem(&handoffs, &tid);
	if (back)
		return back;
	if (!id || role == RT_ROLE_SERVER || dir != RT_DIR_EGRESS)
		return 0;
	ho_count(RT_HO_CARRIED);
	return id;
}

/* ---- per-socket capture verdicts (issue 18; the contract is in riptide.h) ----
 *
 * User space puts a verdict into `verdicts` (keyed by socket_id) once it knows what a socket
 * carries: count-only for sockets no parser recognises (no payload copy, no ring record, still
 * counted here), or a payload cap per direction for a recognised protocol (an HTTP/1 response needs
 * its status line and headers, not capture_limit bytes of body). Keyed by the id sock_info hands
 * out, so a reused fd (a new sock behind it) starts without a verdict; close deletes it. Off when
 * the loader sets verdicts_on = 0 (no lookup at all).
 */
const volatile __u8 verdicts_on = 1;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64); /* socket_id */
	__type(value, struct rt_verdict);
} verdicts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, RT_VD_MAX);
	__type(key, __u32);
	__type(value, __u64);
} verdict_counters SEC(".maps");

static __always_inline void vd_count(__u32 which, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&verdict_counters, &which);
	if (v)
		__sync_fetch_and_add(v, n);
}

/*
 * Bumped by user space after every change to `verdicts`. A socket keeps the verdict it last read
 * in its `sockets` entry with the generation it read it at, and looks `verdicts` up again only when
 * the generation moved: in steady state an exit pays one inlined array load, not a hash lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} verdict_gen SEC(".maps");

/* The socket's verdict mode; lowers *limit to the cap for this direction when it has one. */
static __always_inline __u8 verdict_for(struct rt_sock_info *info, __u8 dir, __u32 *limit)
{
	if (!verdicts_on)
		return RT_VERDICT_FULL;
	__u32 zero = 0;
	__u64 *gen = bpf_map_lookup_elem(&verdict_gen, &zero);
	if (gen && *gen != info->verdict_gen) {
		info->verdict_gen = *gen;
		struct rt_verdict *v = bpf_map_lookup_elem(&verdicts, &info->socket_id);
		info->vd_mode = v ? v->mode : RT_VERDICT_FULL;
		info->vd_cap_egress = v ? v->cap_egress : 0;
		info->vd_cap_ingress = v ? v->cap_ingress : 0;
	}
	if (info->vd_mode == RT_VERDICT_CAP) {
		__u32 cap = dir == RT_DIR_EGRESS ? info->vd_cap_egress : info->vd_cap_ingress;
		if (cap && cap < *limit)
			*limit = cap;
	}
	return info->vd_mode;
}

/* A count-only socket's message: keep the thread's trace and hand-off state as if it had been sent, count it. */
static __always_inline void verdict_skip(struct rt_args *a, __u32 tgid, __u32 tid, __u8 dir, struct rt_sock_info *info, __u8 sys, long ret)
{
	/* As for a sent message: does this send answer the request the thread read last (wake-backs)? */
	bool answers = dir == RT_DIR_EGRESS && info->role == RT_ROLE_SERVER && !a->goid && a->trace_id &&
		       a->trace_last_dir == RT_DIR_INGRESS && a->trace_socket == info->socket_id;
	bool go_ok = false;
	if (a->goid)
		go_trace_id_for(tgid, a->goid, dir, info->socket_id, &go_ok);
	if (!go_ok)
		trace_id_for(a, dir, info->socket_id);
	handoff_for(tgid, tid, dir, info->role, answers);
	if (sys == RT_SYS_SENDMMSG || sys == RT_SYS_RECVMMSG) {
		vd_count(RT_VD_SKIPPED, ret < RT_MAX_MMSG ? ret : RT_MAX_MMSG);
		return;
	}
	vd_count(RT_VD_SKIPPED, 1);
	vd_count(RT_VD_SKIPPED_BYTES, ret);
}

/* Counts a message whose payload the cap cut shorter than capture_limit would have. */
static __always_inline void verdict_capped(long ret, __u32 base_limit, __u32 limit)
{
	if (limit >= base_limit || ret <= limit)
		return;
	__u32 full = ret < base_limit ? (__u32)ret : base_limit;
	vd_count(RT_VD_CAPPED, 1);
	vd_count(RT_VD_CAPPED_BYTES, full - limit);
}

/* Close: drop the socket's verdict (only when it had one: a delete is a hash operation). */
static __always_inline void verdict_forget(struct rt_sock_info *info)
{
	if (verdicts_on && info->vd_mode != RT_VERDICT_FULL)
		bpf_map_delete_elem(&verdicts, &info->socket_id);
}

/* Exit of a data syscall: build the record and write it to the ring buffer. */
static __always_inline int on_exit(__u8 sys, long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rt_args *a = bpf_task_storage_get(&active, bpf_get_current_task_btf(), 0, 0);
	if (!a)
		a = enter_missed(sys, ret);
	if (!a || !a->in_flight)
		return 0;
	if (a->syscall != sys || ret <= 0)
		goto out;

	__u32 zero = 0;
	struct rt_scratch *s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s)
		goto out;
	struct rt_data_event *ev = (struct rt_data_event *)s->bytes;
	__u32 tgid = pid_tgid >> 32;
	__u8 dir = sys <= RT_SYS_SENDMMSG ? RT_DIR_EGRESS : RT_DIR_INGRESS;
	struct sock *sk = (struct sock *)a->sk;

	struct rt_sock_info *info = sock_info(tgid, a->fd, a->sk);
	__u32 base_limit = capture_limit;
	if (base_limit > RT_MAX_PAYLOAD)
		base_limit = RT_MAX_PAYLOAD;
	__u32 limit = base_limit;
	/* Unconnected UDP still has its port filter to pass: those go the full way. */
	if (info && !a->recheck_ports && verdict_for(info, dir, &limit) == RT_VERDICT_COUNT) {
		verdict_skip(a, tgid, (__u32)pid_tgid, dir, info, sys, ret);
		goto out;
	}

	ev->kind = RT_EV_DATA;
	ev->pid = tgid;
	ev->tid = (__u32)pid_tgid;
	ev->enter_ns = a->enter_ns;
	ev->exit_ns = bpf_ktime_get_ns();
	ev->coroutine_id = a->goid;
	ev->bytes = ret;
	ev->tcp_seq = a->tcp_seq;
	ev->l4 = a->l4;
	ev->direction = dir;
	ev->syscall = sys;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));

	/* A connected TCP socket's tuple never changes: read it from the sock once, then from the map. */
	if (info && info->tuple_ok) {
		ev->family = info->family;
		ev->local_port = info->local_port;
		ev->remote_port = info->remote_port;
		__builtin_memcpy(ev->local_addr, info->local_addr, 16);
		__builtin_memcpy(ev->remote_addr, info->remote_addr, 16);
	} else {
		__builtin_memset(ev->local_addr, 0, sizeof(ev->local_addr));
		__builtin_memset(ev->remote_addr, 0, sizeof(ev->remote_addr));
		fill_tuple(ev, sk, a->family);
		if (info && a->l4 == IPPROTO_TCP && ev->remote_port != 0 && ev->local_port != 0) {
			info->family = ev->family;
			info->local_port = ev->local_port;
			info->remote_port = ev->remote_port;
			__builtin_memcpy(info->local_addr, ev->local_addr, 16);
			__builtin_memcpy(info->remote_addr, ev->remote_addr, 16);
			info->tuple_ok = 1;
		}
	}
	ev->socket_id = info ? info->socket_id : 0;
	ev->role = info ? info->role : RT_ROLE_UNKNOWN;
	/* The RTT as of this syscall from the socket in hand: no tracepoint per data syscall for it. */
	ev->tcp_srtt_us = a->l4 == IPPROTO_TCP ? RD(struct tcp_sock, sk, srtt_us) >> 3 : 0;
	ev->_pad_srtt = 0;
	/* Before the trace state moves on: does this send answer the request the thread read last? */
	bool answers = dir == RT_DIR_EGRESS && ev->role == RT_ROLE_SERVER && !a->goid && a->trace_id &&
		       a->trace_last_dir == RT_DIR_INGRESS && a->trace_socket == ev->socket_id;
	bool go_ok = false;
	if (a->goid)
		ev->syscall_trace_id = go_trace_id_for(tgid, a->goid, dir, ev->socket_id, &go_ok);
	if (!go_ok)
		ev->syscall_trace_id = trace_id_for(a, dir, ev->socket_id);
	ev->handoff_trace_id = handoff_for(tgid, ev->tid, dir, ev->role, answers);

	__u32 want = ret < limit ? (__u32)ret : limit;
	__u32 got = 0;
	__u64 msg_name = 0;

	switch (sys) {
	case RT_SYS_WRITE:
	case RT_SYS_READ:
	case RT_SYS_SENDTO:
	case RT_SYS_RECVFROM:
		if (want > RT_MAX_PAYLOAD)
			want = RT_MAX_PAYLOAD;
		if (want && !bpf_probe_read_user(ev->payload, want, (void *)a->buf))
			got = want;
		msg_name = a->addr;
		break;
	case RT_SYS_WRITEV:
	case RT_SYS_READV:
		got = copy_iov(ev, a->buf, a->count, want);
		break;
	case RT_SYS_SENDMSG:
	case RT_SYS_RECVMSG: {
		struct user_msghdr mh = {};
		if (!bpf_probe_read_user(&mh, sizeof(mh), (void *)a->buf)) {
			got = copy_iov(ev, (__u64)mh.msg_iov, mh.msg_iovlen, want);
			msg_name = (__u64)mh.msg_name;
		}
		break;
	}
	case RT_SYS_SENDMMSG:
	case RT_SYS_RECVMMSG:
		/* ret is the number of messages. */
		emit_mmsg(s, ev, a, ret, limit);
		goto out;
	}
	if (a->l4 == IPPROTO_UDP && ev->remote_port == 0)
		read_sockaddr(ev, msg_name);
	if (a->recheck_ports && !port_selected(ev->local_port, ev->remote_port))
		goto out;

	verdict_capped(ret, base_limit, limit);
	emit(s, ev, got);
out:
	a->in_flight = 0;
	return 0;
}

/* ---- data syscalls: egress ---- */

SEC("tracepoint/syscalls/sys_enter_write")
int rt_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_WRITE, ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_write")
int rt_exit_write(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_WRITE, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_writev")
int rt_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_WRITEV, ctx->args[0], ctx->args[1], ctx->args[2], 0);
}
SEC("tracepoint/syscalls/sys_exit_writev")
int rt_exit_writev(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_WRITEV, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_sendto")
int rt_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_SENDTO, ctx->args[0], ctx->args[1], 0, ctx->args[4]);
}
SEC("tracepoint/syscalls/sys_exit_sendto")
int rt_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_SENDTO, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int rt_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_SENDMSG, ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int rt_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_SENDMSG, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int rt_enter_sendmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_SENDMMSG, ctx->args[0], ctx->args[1], ctx->args[2], 0);
}
SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int rt_exit_sendmmsg(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_SENDMMSG, ctx->ret); }

/* ---- data syscalls: ingress ---- */

SEC("tracepoint/syscalls/sys_enter_read")
int rt_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_READ, ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_read")
int rt_exit_read(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_READ, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_readv")
int rt_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_READV, ctx->args[0], ctx->args[1], ctx->args[2], 0);
}
SEC("tracepoint/syscalls/sys_exit_readv")
int rt_exit_readv(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_READV, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int rt_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_RECVFROM, ctx->args[0], ctx->args[1], 0, ctx->args[4]);
}
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int rt_exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_RECVFROM, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int rt_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_RECVMSG, ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int rt_exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_RECVMSG, ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int rt_enter_recvmmsg(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter(RT_SYS_RECVMMSG, ctx->args[0], ctx->args[1], ctx->args[2], 0);
}
SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int rt_exit_recvmmsg(struct trace_event_raw_sys_exit *ctx) { return on_exit(RT_SYS_RECVMMSG, ctx->ret); }

/* ---- socket lifecycle ---- */

SEC("tracepoint/syscalls/sys_enter_connect")
int rt_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((pid_tgid >> 32) == self_tgid)
		return 0;
	__u32 fd = ctx->args[0];
	bpf_map_update_elem(&connecting, &pid_tgid, &fd, BPF_ANY);
	return 0;
}

static __always_inline void register_socket(__u32 tgid, __u32 fd, __u8 role)
{
	struct sock *sk = fd_to_sock(fd);
	if (!sk)
		return;
	__u16 family = RD(struct sock, sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return;
	__u64 key = ((__u64)tgid << 32) | fd;
	struct rt_sock_info info = {};
	info.socket_id = next_id(0);
	info.sk = (__u64)sk;
	info.role = role;
	bpf_map_update_elem(&sockets, &key, &info, BPF_ANY);
}

SEC("tracepoint/syscalls/sys_exit_connect")
int rt_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 *fd = bpf_map_lookup_elem(&connecting, &pid_tgid);
	if (!fd)
		return 0;
	if (ctx->ret == 0 || ctx->ret == -EINPROGRESS)
		register_socket(pid_tgid >> 32, *fd, RT_ROLE_CLIENT);
	bpf_map_delete_elem(&connecting, &pid_tgid);
	return 0;
}

static __always_inline int on_accept_exit(long ret)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if ((pid_tgid >> 32) == self_tgid || ret < 0)
		return 0;
	register_socket(pid_tgid >> 32, (__u32)ret, RT_ROLE_SERVER);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int rt_exit_accept(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx->ret); }

SEC("tracepoint/syscalls/sys_exit_accept4")
int rt_exit_accept4(struct trace_event_raw_sys_exit *ctx) { return on_accept_exit(ctx->ret); }

SEC("tracepoint/syscalls/sys_enter_close")
int rt_enter_close(struct trace_event_raw_sys_enter *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u64 key = ((__u64)tgid << 32) | (__u32)ctx->args[0];
	struct rt_sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	if (!info)
		return 0;
	struct rt_close_event ev = {};
	ev.kind = RT_EV_CLOSE;
	ev.pid = tgid;
	ev.ts_ns = bpf_ktime_get_ns();
	ev.socket_id = info->socket_id;
	verdict_forget(info);
	bpf_map_delete_elem(&sockets, &key);
	if (task_selected(tgid) && bpf_ringbuf_output(&events, &ev, sizeof(ev), BPF_RB_NO_WAKEUP))
		count(RT_CNT_RINGBUF_FULL);
	return 0;
}

/* ---- process lifecycle: lets user space drop cached /proc metadata at the right moment ---- */

static __always_inline void proc_event(__u32 kind, __u32 tgid)
{
	struct rt_proc_event ev = {};
	ev.kind = kind;
	ev.pid = tgid;
	ev.ts_ns = bpf_ktime_get_ns();
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), BPF_RB_NO_WAKEUP))
		count(RT_CNT_RINGBUF_FULL);
}

SEC("tracepoint/sched/sched_process_exec")
int rt_proc_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (tgid != self_tgid)
		proc_event(RT_EV_PROC_EXEC, tgid);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int rt_proc_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	/* Only when the whole group goes: the leader exiting. */
	if ((__u32)pid_tgid == tgid && tgid != self_tgid)
		proc_event(RT_EV_PROC_EXIT, tgid);
	return 0;
}

/* ---- hand-offs: the wake-up hook (see "hand-offs between threads" above) ---- */

SEC("tracepoint/sched/sched_waking")
int rt_sched_waking(struct trace_event_raw_sched_wakeup_template *ctx)
{
	if (!handoff_enabled)
		return 0;
	/* Early exit for every thread without a live context: no slot, or nothing received. */
	struct rt_args *a = bpf_task_storage_get(&active, bpf_get_current_task_btf(), 0, 0);
	if (!a)
		return 0;
	/* Inside a socket syscall: loopback delivery wakes the peer from the sender's context (the most
	 * common wake-up of a traced thread). (Wake-ups from an interrupt that hit a thread in user space
	 * are not told apart: this kernel exposes no preempt count to BPF; the assembly rule's checks
	 * stand in.) */
	if (a->in_flight) {
		ho_count(RT_HO_SKIP_SOCKET);
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 self = (__u32)pid_tgid;
	__u32 wakee = ctx->pid;
	/* A worker waking the thread that handed it work (completing the future a reader waits on): the
	 * handed work is done, and what the worker sends next belongs to something else. */
	struct rt_handoff *mine = bpf_map_lookup_elem(&handoffs, &self);
	if (mine && mine->trace_id && mine->waker_tid == wakee) {
		mine->trace_id = 0;
		if (!mine->back_id)
			bpf_map_delete_elem(&handoffs, &self);
		ho_count(RT_HO_ENDED);
	}
	if (!a->trace_id || a->trace_last_dir != RT_DIR_INGRESS)
		return 0;
	/* Only a request is a context to hand on: the last socket the waker used is one it accepted.
	 * Anything else is a wake-back (see "hand-offs between threads" above): a socket it connected,
	 * or one opened before capture began (role unknown: a pool's connections usually are). A wrong
	 * guess there costs nothing: the wakee carries the stamp only when it next answers, and assembly
	 * needs a call whose reply started that id inside the request. */
	__u64 key = (pid_tgid & 0xffffffff00000000ULL) | a->fd;
	struct rt_sock_info *info = bpf_map_lookup_elem(&sockets, &key);
	if (!info || info->socket_id != a->trace_socket) {
		ho_count(RT_HO_SKIP_NOT_REQUEST);
		return 0;
	}
	bool back = info->role != RT_ROLE_SERVER;
	__u64 now = bpf_ktime_get_ns();
	/* The window is for requests only: a wake-back names the waker's last call, which assembly
	 * requires inside the wakee's request (and a database reply may take longer than the window:
	 * enter_ns is when the waker began waiting for it). */
	if (!back && now - a->enter_ns > handoff_window_ns) {
		ho_count(RT_HO_SKIP_STALE);
		return 0;
	}
	if (wakee == self)
		return 0;
	struct rt_handoff *cur = bpf_map_lookup_elem(&handoffs, &wakee);
	if (cur) {
		/* In place: the other direction's state of the wakee stays. */
		if (back) {
			/* Two wake-backs with different ids before the wakee's next socket syscall: which
			 * one was its result is unknown (a JVM-internal lock released by a worker busy with
			 * another task wakes a reader too), so its answer carries neither. */
			if (cur->back_id && cur->back_id != a->trace_id)
				cur->back_conflict = 1;
			cur->back_id = a->trace_id;
			cur->back_tgid = pid_tgid >> 32;
		} else {
			cur->trace_id = a->trace_id;
			cur->ts_ns = now;
			cur->waker_tgid = pid_tgid >> 32;
			cur->waker_tid = (__u32)pid_tgid;
		}
	} else {
		struct rt_handoff h = {};
		if (back) {
			h.back_id = a->trace_id;
			h.back_tgid = pid_tgid >> 32;
		} else {
			h.trace_id = a->trace_id;
			h.ts_ns = now;
			h.waker_tgid = pid_tgid >> 32;
			h.waker_tid = (__u32)pid_tgid;
		}
		bpf_map_update_elem(&handoffs, &wakee, &h, BPF_ANY);
	}
	ho_count(back ? RT_HO_BACK_RECORDED : RT_HO_RECORDED);
	return 0;
}

/*
 * ---- TLS plaintext: uprobes on SSL_write / SSL_read / SSL_write_ex / SSL_read_ex ----
 *
 * OpenSSL-compatible libraries (libssl.so.*, and binaries that link OpenSSL statically such as
 * node) are found and attached per library file by user space (agent/capture/tls.ts); these
 * programs have no attach target of their own and are never auto-attached. Enter stashes the
 * buffer per thread, return copies the plaintext head the call moved into one rt_tls_event.
 * The socket is not known here (OpenSSL may use a memory BIO, as Node does): user space joins
 * the record to the data syscall of the same thread that carried its ciphertext.
 */
struct rt_tls_args {
	__u64 enter_ns;
	__u64 ssl;
	__u64 buf;
	__u64 done_ptr; /* size_t *written / *readbytes of the _ex variants */
	__u8 func;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64); /* pid_tgid */
	__type(value, struct rt_tls_args);
} tls_active SEC(".maps");

struct rt_tls_scratch {
	__u8 bytes[sizeof(struct rt_tls_event) + 2 * RT_MAX_PAYLOAD];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct rt_tls_scratch);
} tls_scratch SEC(".maps");

const struct rt_tls_event *unused_tls_event __attribute__((unused));

static __always_inline int tls_enter(struct pt_regs *ctx, __u8 func)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	/* With a port filter the socket decides, in user space, when the record is joined to it. */
	if (!task_selected(tgid) && !(filter_ports && tgid != self_tgid))
		return 0;
	struct rt_tls_args a = {};
	a.enter_ns = bpf_ktime_get_ns();
	a.ssl = PT_REGS_PARM1(ctx);
	a.buf = PT_REGS_PARM2(ctx);
	a.done_ptr = (func == RT_TLS_SSL_WRITE_EX || func == RT_TLS_SSL_READ_EX) ? PT_REGS_PARM4(ctx) : 0;
	a.func = func;
	bpf_map_update_elem(&tls_active, &pid_tgid, &a, BPF_ANY);
	return 0;
}

static __always_inline int tls_exit(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rt_tls_args *slot = bpf_map_lookup_elem(&tls_active, &pid_tgid);
	if (!slot)
		return 0;
	struct rt_tls_args a = *slot;
	bpf_map_delete_elem(&tls_active, &pid_tgid);

	int ret = (int)PT_REGS_RC(ctx);
	__s64 n = 0;
	if (a.func == RT_TLS_SSL_WRITE_EX || a.func == RT_TLS_SSL_READ_EX) {
		__u64 done = 0;
		if (ret != 1 || !a.done_ptr || bpf_probe_read_user(&done, sizeof(done), (void *)a.done_ptr))
			return 0;
		n = (__s64)done;
	} else {
		n = ret;
	}
	if (n <= 0)
		return 0;

	__u32 zero = 0;
	struct rt_tls_scratch *s = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!s)
		return 0;
	struct rt_tls_event *ev = (struct rt_tls_event *)s->bytes;
	ev->kind = RT_EV_TLS_DATA;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->enter_ns = a.enter_ns;
	ev->exit_ns = bpf_ktime_get_ns();
	ev->ssl = a.ssl;
	ev->bytes = n;
	ev->direction = (a.func == RT_TLS_SSL_WRITE || a.func == RT_TLS_SSL_WRITE_EX) ? RT_DIR_EGRESS : RT_DIR_INGRESS;
	ev->func = a.func;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));

	__u32 limit = capture_limit;
	if (limit > RT_MAX_PAYLOAD)
		limit = RT_MAX_PAYLOAD;
	__u32 want = n < limit ? (__u32)n : limit;
	want &= (2 * RT_MAX_PAYLOAD - 1);
	if (want > RT_MAX_PAYLOAD)
		want = RT_MAX_PAYLOAD;
	__u32 got = 0;
	if (want && !bpf_probe_read_user(ev->payload, want, (void *)a.buf))
		got = want;
	ev->payload_len = got;
	__u64 size = sizeof(struct rt_tls_event) + got;
	if (size > sizeof(struct rt_tls_scratch))
		size = sizeof(struct rt_tls_scratch);
	if (bpf_ringbuf_output(&events, s->bytes, size, BPF_RB_NO_WAKEUP))
		count(RT_CNT_RINGBUF_FULL);
	return 0;
}

SEC("uprobe")
int BPF_KPROBE(rt_ssl_write_enter) { return tls_enter(ctx, RT_TLS_SSL_WRITE); }
SEC("uretprobe")
int BPF_KRETPROBE(rt_ssl_write_exit) { return tls_exit(ctx); }
SEC("uprobe")
int BPF_KPROBE(rt_ssl_read_enter) { return tls_enter(ctx, RT_TLS_SSL_READ); }
SEC("uretprobe")
int BPF_KRETPROBE(rt_ssl_read_exit) { return tls_exit(ctx); }
SEC("uprobe")
int BPF_KPROBE(rt_ssl_write_ex_enter) { return tls_enter(ctx, RT_TLS_SSL_WRITE_EX); }
SEC("uretprobe")
int BPF_KRETPROBE(rt_ssl_write_ex_exit) { return tls_exit(ctx); }
SEC("uprobe")
int BPF_KPROBE(rt_ssl_read_ex_enter) { return tls_enter(ctx, RT_TLS_SSL_READ_EX); }
SEC("uretprobe")
int BPF_KRETPROBE(rt_ssl_read_ex_exit) { return tls_exit(ctx); }

/*
 * ---- Go crypto/tls: uprobes on crypto/tls.(*Conn).Write / .Read (issue 17) ----
 *
 * Go moves goroutine stacks, so no uretprobes (they rewrite the return address on the stack): user
 * space (agent/capture/go-tls.ts) attaches the entry program at the function's first byte and the
 * return program at each of its RET instructions, found by disassembling the function. Arguments
 * and results follow Go's register ABI (ABIInternal, Go >= 1.17, amd64): receiver *Conn in RAX,
 * the buffer's pointer/length in RBX/RCX at entry; n in RAX at return. R14 holds the running g in
 * Go code, so entry and return are paired by (tgid, g) -- a goroutine blocked inside Read
 * (netpoll) may come back on another thread. The record is an rt_tls_event (func RT_TLS_GO_*)
 * carrying the goid (offset from go_procs; 0 without), joined to the socket in user space like
 * OpenSSL's.
 */
struct rt_go_tls_key {
	__u32 tgid;
	__u32 by_g; /* 1: id is the g pointer (R14); 0: id is the thread id (R14 empty) */
	__u64 id;
};

struct rt_go_tls_args {
	__u64 enter_ns;
	__u64 conn;
	__u64 buf;
	__u64 goid;
	__u8 func;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH); /* a call that never returns (panic) is evicted in time */
	__uint(max_entries, 16384);
	__type(key, struct rt_go_tls_key);
	__type(value, struct rt_go_tls_args);
} go_tls_active SEC(".maps");

/*
 * Entry and return are paired by the running g (R14 in Go code under ABIInternal): it stays the
 * goroutine's while the call runs, whichever thread it is on, and needs nothing from the agent.
 */
static __always_inline void go_tls_key(struct pt_regs *ctx, struct rt_go_tls_key *k)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	k->tgid = pid_tgid >> 32;
	k->by_g = ctx->r14 ? 1 : 0;
	k->id = ctx->r14 ? ctx->r14 : (__u32)pid_tgid;
}

/* The goroutine id (what the syscalls of the goroutine carry as coroutine_id), or 0 when the agent
 * has not described the process in go_procs. */
static __always_inline __u64 go_tls_goid(struct pt_regs *ctx, __u32 tgid)
{
	struct rt_go_proc *gp = bpf_map_lookup_elem(&go_procs, &tgid);
	__u64 g = ctx->r14, goid = 0;
	if (!gp || !g || bpf_probe_read_user(&goid, sizeof(goid), (void *)(g + gp->goid_offset)))
		return 0;
	return goid;
}

static __always_inline int go_tls_enter(struct pt_regs *ctx, __u8 func)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (!task_selected(tgid) && !(filter_ports && tgid != self_tgid))
		return 0;
	struct rt_go_tls_key k = {};
	struct rt_go_tls_args a = {};
	go_tls_key(ctx, &k);
	a.goid = go_tls_goid(ctx, tgid);
	a.enter_ns = bpf_ktime_get_ns();
	a.conn = ctx->ax;
	a.buf = ctx->bx;
	a.func = func;
	bpf_map_update_elem(&go_tls_active, &k, &a, BPF_ANY);
	return 0;
}

static __always_inline int go_tls_ret(struct pt_regs *ctx)
{
	struct rt_go_tls_key k = {};
	go_tls_key(ctx, &k);
	struct rt_go_tls_args *slot = bpf_map_lookup_elem(&go_tls_active, &k);
	if (!slot)
		return 0;
	struct rt_go_tls_args a = *slot;
	bpf_map_delete_elem(&go_tls_active, &k);
	/* The agent may have described the process (go_procs) while the call ran. */
	if (!a.goid)
		a.goid = go_tls_goid(ctx, k.tgid);
	__s64 n = (__s64)ctx->ax;
	if (n <= 0)
		return 0;

	__u32 zero = 0;
	struct rt_tls_scratch *s = bpf_map_lookup_elem(&tls_scratch, &zero);
	if (!s)
		return 0;
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct rt_tls_event *ev = (struct rt_tls_event *)s->bytes;
	ev->kind = RT_EV_TLS_DATA;
	ev->pid = pid_tgid >> 32;
	ev->tid = (__u32)pid_tgid;
	ev->enter_ns = a.enter_ns;
	ev->exit_ns = bpf_ktime_get_ns();
	ev->ssl = a.conn;
	ev->bytes = n;
	ev->direction = a.func == RT_TLS_GO_WRITE ? RT_DIR_EGRESS : RT_DIR_INGRESS;
	ev->func = a.func;
	ev->coroutine_id = a.goid;
	bpf_get_current_comm(&ev->comm, sizeof(ev->comm));

	__u32 limit = capture_limit;
	if (limit > RT_MAX_PAYLOAD)
		limit = RT_MAX_PAYLOAD;
	__u32 want = n < limit ? (__u32)n : limit;
	want &= (2 * RT_MAX_PAYLOAD - 1);
	if (want > RT_MAX_PAYLOAD)
		want = RT_MAX_PAYLOAD;
	__u32 got = 0;
	if (want && !bpf_probe_read_user(ev->payload, want, (void *)a.buf))
		got = want;
	ev->payload_len = got;
	__u64 size = sizeof(struct rt_tls_event) + got;
	if (size > sizeof(struct rt_tls_scratch))
		size = sizeof(struct rt_tls_scratch);
	if (bpf_ringbuf_output(&events, s->bytes, size, BPF_RB_NO_WAKEUP))
		count(RT_CNT_RINGBUF_FULL);
	return 0;
}

SEC("uprobe")
int rt_go_tls_write_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, RT_TLS_GO_WRITE); }
SEC("uprobe")
int rt_go_tls_read_enter(struct pt_regs *ctx) { return go_tls_enter(ctx, RT_TLS_GO_READ); }
/* At each RET of the function (plain uprobes: Go forbids uretprobes). */
SEC("uprobe")
int rt_go_tls_ret(struct pt_regs *ctx) { return go_tls_ret(ctx); }
