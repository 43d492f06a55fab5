/**
 * What the capture path hands to the rest of the agent: one record per data syscall on a socket.
 * This is the contract between capture (bpf/ + agent/capture), the parsers (agent/protocols), the
 * batcher (agent/shipping) and the span builder (functions/). Change it only additively.
 */

export type Direction = 'egress' | 'ingress';
export type SocketRole = 'client' | 'server' | 'unknown';
export type AddressFamily = 'ipv4' | 'ipv6';
export type L4Protocol = 'tcp' | 'udp';
export type SyscallName =
  | 'write'
  | 'writev'
  | 'sendto'
  | 'sendmsg'
  | 'sendmmsg'
  | 'read'
  | 'readv'
  | 'recvfrom'
  | 'recvmsg'
  | 'recvmmsg';

export interface CapturedMessage {
  /** Wall-clock ns when the bytes crossed the socket: syscall enter for egress, syscall exit for ingress. */
  tsNs: bigint;
  /** Syscall enter and exit, wall-clock ns. */
  enterNs: bigint;
  exitNs: bigint;
  /** Process (tgid) and thread id. */
  pid: number;
  tid: number;
  /** 0 until goroutines/coroutines are tracked. */
  coroutineId: number;
  /** The thread's name as the kernel saw it (comm, at most 15 bytes). */
  processName: string;
  syscall: SyscallName;
  direction: Direction;
  /** Unique per agent run and across runs of the same agent (seeded from the start time; < 2^53). */
  socketId: number;
  family: AddressFamily;
  l4: L4Protocol;
  localIp: string;
  localPort: number;
  remoteIp: string;
  remotePort: number;
  role: SocketRole;
  /**
   * TCP sequence number of the first payload byte (`write_seq` at enter for egress, `copied_seq` for
   * ingress): equal on both ends of a connection for the same bytes. 0 for UDP. The protocol
   * registry moves it back to the first byte of a message this read completes from a head kept
   * from earlier reads (a header read in pieces), so both ends name the message by the same number.
   */
  tcpSeq: number;
  /** New when a thread receives, reused for what that thread sends next (links request → downstream call). */
  syscallTraceId: number;
  /**
   * The syscall-trace id a wake-up handed to this thread (the waker had just received a request:
   * a thread pool's reader waking a worker); 0 or absent when none, or hand-off tracking is off.
   */
  handoffTraceId?: number;
  /** Total bytes the syscall moved (its return value; for *mmsg the first message's length). */
  bytes: number;
  /** The first N bytes of the payload (N = capture limit, default 1024). */
  payload: Uint8Array;
  /**
   * True when payload and bytes are the plaintext of a TLS connection (from the TLS uprobes,
   * agent/capture/tls-join.ts), joined to the syscall that carried its ciphertext: socket, tuple,
   * times and trace id are that syscall's, tcpSeq the start of the TLS record.
   */
  tls?: boolean;
  /**
   * Set on network messages (issue 19, agent/capture/net-capture.ts): the interface whose TC hook
   * saw the packet. Such a message is the first TCP segment of a request or response on the wire:
   * pid 0, times the packet's, tcpSeq the segment's sequence, socketId one per (interface, flow),
   * role 'client' with the flow's client as the local end (egress = towards the server).
   */
  observationPoint?: string;
  /**
   * TCP health of the message's connection when it was seen (net capture's tracepoints): segments
   * retransmitted on it so far, the smoothed RTT last read from its socket (µs, 0 = not yet), and,
   * on a connect-failure message (no payload), that the connect failed.
   */
  tcpRetransmits?: number;
  tcpSrttUs?: number;
  connectFailed?: boolean;
}

/** Process metadata from /proc, keyed by pid and start time (so pid reuse is not confused). */
export interface ProcessInfo {
  pid: number;
  /** Start time in clock ticks since boot (field 22 of /proc/pid/stat): pid + startTime is unique. */
  startTime: number;
  name: string;
  cmdline: string;
  /** Container id from the cgroup path (64 hex chars), or '' on the host. */
  containerId: string;
  cgroup: string;
}

/** Socket lifecycle event: the agent saw the socket closed. Lets the span builder flush pending requests. */
export interface SocketClosed {
  tsNs: bigint;
  pid: number;
  socketId: number;
}
