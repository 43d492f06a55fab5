/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Riptide capture: the records that cross the ring buffer from kernel to user space.
 *
 * This header is the one source of truth for the event layout. The TypeScript decoder
 * (agent/capture/layout.generated.ts) is generated from the BTF of the compiled object
 * (bpf/gen-layout.ts), so offsets never drift. Natural alignment, no packed structs.
 */
#ifndef RIPTIDE_H
#define RIPTIDE_H

/* Upper bound on captured payload bytes; the load-time constant `capture_limit` is clamped to it. */
#define RT_MAX_PAYLOAD 8192
#define RT_COMM_LEN 16
/* How many iovec entries are copied from for readv/writev/sendmsg/recvmsg. */
#define RT_MAX_IOV 4
/* How many messages of one sendmmsg/recvmmsg become records. */
#define RT_MAX_MMSG 4

enum rt_event_kind {
	RT_EV_DATA = 1,      /* one data syscall on a socket (struct rt_data_event) */
	RT_EV_CLOSE = 2,     /* a tracked socket was closed (struct rt_close_event) */
	RT_EV_PROC_EXEC = 3, /* a process called exec (struct rt_proc_event) */
	RT_EV_PROC_EXIT = 4, /* a process (thread group) exited (struct rt_proc_event) */
};

enum rt_direction {
	RT_DIR_EGRESS = 0,
	RT_DIR_INGRESS = 1,
};

enum rt_role {
	RT_ROLE_UNKNOWN = 0,
	RT_ROLE_CLIENT = 1, /* we saw connect() */
	RT_ROLE_SERVER = 2, /* we saw accept() */
};

enum rt_syscall {
	RT_SYS_WRITE = 0,
	RT_SYS_WRITEV = 1,
	RT_SYS_SENDTO = 2,
	RT_SYS_SENDMSG = 3,
	RT_SYS_SENDMMSG = 4,
	RT_SYS_READ = 5,
	RT_SYS_READV = 6,
	RT_SYS_RECVFROM = 7,
	RT_SYS_RECVMSG = 8,
	RT_SYS_RECVMMSG = 9,
};

enum rt_counter {
	RT_CNT_RINGBUF_FULL = 0, /* events lost because the ring buffer was full */
	RT_CNT_EMITTED = 1,      /* data events written to the ring buffer */
	RT_CNT_ARGS_FULL = 2,    /* syscalls missed because the in-flight map was full */
	RT_CNT_MAX = 4,
};

/* Every record starts with `__u32 kind; __u32 pid;`: user space switches on `kind`. */

struct rt_data_event {
	__u32 kind;        /* RT_EV_DATA */
	__u32 pid;         /* tgid */
	__u32 tid;
	__u32 payload_len; /* captured bytes that follow the fixed part */
	__u64 enter_ns;    /* bpf_ktime_get_ns() at syscall enter */
	__u64 exit_ns;     /* ... and at exit */
	__u64 socket_id;
	__u64 syscall_trace_id;
	__u64 coroutine_id; /* goroutine id of a Go process (see rt_go_proc), else 0 */
	__s64 bytes;        /* syscall return value (first message's length for *mmsg) */
	__u32 tcp_seq;      /* write_seq (egress) / copied_seq (ingress) at enter; 0 for UDP */
	__u16 family;       /* AF_INET / AF_INET6 */
	__u16 local_port;
	__u16 remote_port;
	__u8 l4;            /* IPPROTO_TCP / IPPROTO_UDP */
	__u8 direction;     /* enum rt_direction */
	__u8 role;          /* enum rt_role */
	__u8 syscall;       /* enum rt_syscall */
	__u8 _pad[2];
	__u8 local_addr[16]; /* IPv4 in the first 4 bytes */
	__u8 remote_addr[16];
	char comm[RT_COMM_LEN];
	/*
	 * Hand-offs (issue 15): the syscall-trace id of the thread that last woke this one, when that
	 * thread had just received something (a thread pool's reader handing work to a worker); 0 when
	 * hand-off tracking is off or none applies. Never replaces syscall_trace_id.
	 */
	__u64 handoff_trace_id;
	/*
	 * TCP health (issue 19): the connection's smoothed RTT in µs at this syscall's exit, read from the
	 * socket the exit already holds (tcp_sock.srtt_us >> 3); 0 for UDP or before the first sample.
	 */
	__u32 tcp_srtt_us;
	__u32 _pad_srtt;
	__u8 payload[];
};

struct rt_close_event {
	__u32 kind; /* RT_EV_CLOSE */
	__u32 pid;
	__u64 ts_ns;
	__u64 socket_id;
};

struct rt_proc_event {
	__u32 kind; /* RT_EV_PROC_EXEC / RT_EV_PROC_EXIT */
	__u32 pid;
	__u64 ts_ns;
	char comm[RT_COMM_LEN];
};

/* ---- hand-offs between threads (sched_waking): counters in their own map, `handoff_counters` ---- */
enum rt_handoff_counter {
	RT_HO_RECORDED = 0,      /* wake-ups that handed a context to the wakee */
	RT_HO_CARRIED = 1,       /* sends that carried a handed-off context */
	RT_HO_BACK_RECORDED = 2, /* wake-backs: a thread that had just read a reply woke another (see rt_sched_waking) */
	RT_HO_SKIP_SOCKET = 3,   /* wake-ups from inside a socket syscall (loopback delivery) */
	RT_HO_SKIP_STALE = 4,    /* the waker's context was older than the window */
	RT_HO_OTHER_PROCESS = 5, /* the wakee belongs to another process: dropped at its next socket syscall */
	RT_HO_ENDED = 6,         /* hand-offs ended: the wakee answered, read a request of its own or woke its waker */
	RT_HO_SKIP_NOT_REQUEST = 7, /* the waker's last receive was on a socket it no longer holds */
	RT_HO_BACK_CARRIED = 8,  /* responses that carried a wake-back: the wakee answered the request it had read */
	RT_HO_BACK_DROPPED = 9,  /* wake-backs dropped: the wakee's next socket syscall was not that answer */
	RT_HO_MAX = 10,
};

/* ---- TLS plaintext (uprobes on OpenSSL-compatible SSL_read/SSL_write; see agent/capture/tls.ts) ---- */

/* A record of plaintext one SSL_* call moved (struct rt_tls_event); user space joins it to the socket. */
#define RT_EV_TLS_DATA 5

enum rt_tls_func {
	RT_TLS_SSL_WRITE = 0,
	RT_TLS_SSL_READ = 1,
	RT_TLS_SSL_WRITE_EX = 2,
	RT_TLS_SSL_READ_EX = 3,
	RT_TLS_GO_WRITE = 4, /* crypto/tls.(*Conn).Write (ssl: the *Conn) */
	RT_TLS_GO_READ = 5,  /* crypto/tls.(*Conn).Read */
};

struct rt_tls_event {
	__u32 kind;        /* RT_EV_TLS_DATA */
	__u32 pid;         /* tgid */
	__u32 tid;
	__u32 payload_len; /* captured plaintext bytes that follow the fixed part */
	__u64 enter_ns;    /* bpf_ktime_get_ns() at the SSL_* call */
	__u64 exit_ns;     /* ... and at its return */
	__u64 ssl;         /* the SSL * (one per connection) */
	__s64 bytes;       /* plaintext bytes the call moved */
	__u8 direction;    /* enum rt_direction: SSL_write* egress, SSL_read* ingress */
	__u8 func;         /* enum rt_tls_func */
	__u8 _pad[6];
	char comm[RT_COMM_LEN];
	__u64 coroutine_id; /* Go: the goroutine id when the process is in go_procs, else 0 */
	__u8 payload[];
};

/*
 * Goroutines (issue 15): for a Go process the agent puts where its goroutine id lives into the
 * go_procs map (pid → struct rt_go_proc, learned from the binary's DWARF and TLS segment); at a
 * socket syscall the program reads g from the thread's TLS (fs_base + g_tls_offset) and its goid,
 * emits it as coroutine_id and keeps the syscall-trace state per (pid, goid) instead of per thread.
 */
struct rt_go_proc {
	__u32 goid_offset;  /* offset of goid (int64) in runtime.g */
	__s32 g_tls_offset; /* offset of the g pointer from fs_base (-8 for Go's own linker) */
};

enum rt_go_counter {
	RT_GO_CNT_READ_OK = 0,     /* goid read at a syscall of a Go process */
	RT_GO_CNT_READ_FAILED = 1, /* fs_base, g or goid unreadable (or 0): thread state used instead */
	RT_GO_CNT_STATE_FULL = 2,  /* the per-goroutine state map refused an entry: thread state used */
	RT_GO_CNT_MAX = 4,
};

/*
 * ---- per-socket capture verdicts (issue 18) ----
 * Once user space has recognised a socket's protocol, or given up on it (nothing parses it), it puts
 * a verdict into the `verdicts` map keyed by socket_id (the id the kernel gave the socket; a reused
 * fd gets a new id, and close deletes the entry). Sockets without a verdict are captured as before.
 */
enum rt_verdict_mode {
	RT_VERDICT_FULL = 0,  /* capture as usual (capture_limit bytes) */
	RT_VERDICT_COUNT = 1, /* nothing parses this socket: count the message, copy nothing, no ring record */
	RT_VERDICT_CAP = 2,   /* a known protocol: copy at most cap_egress / cap_ingress bytes (0: capture_limit) */
};

struct rt_verdict {
	__u8 mode;          /* enum rt_verdict_mode */
	__u8 _pad;
	__u16 cap_egress;
	__u16 cap_ingress;
	__u16 _pad2;
};

/* Counters of what verdicts saved, in their own map `verdict_counters` (per CPU). */
enum rt_verdict_counter {
	RT_VD_SKIPPED = 0,       /* messages counted and not sent: the socket's verdict is count-only */
	RT_VD_SKIPPED_BYTES = 1, /* bytes those messages moved */
	RT_VD_CAPPED = 2,        /* messages sent with a payload cut shorter by the socket's cap */
	RT_VD_CAPPED_BYTES = 3,  /* payload bytes the caps left uncopied */
	RT_VD_MAX = 4,
};

#endif
