/*
 * Exercises each of the ten data syscalls once on a loopback TCP connection:
 * the client sends with write, writev, sendto, sendmsg, sendmmsg; the server receives each with
 * read, readv, recvfrom, recvmsg, recvmmsg. Every payload names the syscall pair that carries it.
 * Usage: syscalls PORT
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static void die(const char *what) { perror(what); exit(1); }

static void expect(ssize_t got, size_t want, const char *what)
{
	if (got != (ssize_t)want) { fprintf(stderr, "%s: got %zd want %zu\n", what, got, want); exit(1); }
}

int main(int argc, char **argv)
{
	if (argc < 2) { fprintf(stderr, "usage: syscalls PORT\n"); return 2; }
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[1])) };
	inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
	int ls = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(ls, (struct sockaddr *)&addr, sizeof(addr)) || listen(ls, 1)) die("listen");
	int c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&addr, sizeof(addr))) die("connect");
	int s = accept(ls, NULL, NULL);
	if (s < 0) die("accept");

	char buf[256];
	const char *m;

	m = "RT-SYSCALL write->read";
	expect(write(c, m, strlen(m)), strlen(m), "write");
	expect(read(s, buf, sizeof(buf)), strlen(m), "read");

	struct iovec iov[2] = { { "RT-SYSCALL writev", 17 }, { "->readv", 7 } };
	expect(writev(c, iov, 2), 24, "writev");
	struct iovec riov[2] = { { buf, 10 }, { buf + 10, sizeof(buf) - 10 } };
	expect(readv(s, riov, 2), 24, "readv");

	m = "RT-SYSCALL sendto->recvfrom";
	expect(sendto(c, m, strlen(m), 0, NULL, 0), strlen(m), "sendto");
	expect(recvfrom(s, buf, sizeof(buf), 0, NULL, NULL), strlen(m), "recvfrom");

	m = "RT-SYSCALL sendmsg->recvmsg";
	struct iovec miov = { (void *)m, strlen(m) };
	struct msghdr mh = { .msg_iov = &miov, .msg_iovlen = 1 };
	expect(sendmsg(c, &mh, 0), strlen(m), "sendmsg");
	struct iovec rmiov = { buf, sizeof(buf) };
	struct msghdr rmh = { .msg_iov = &rmiov, .msg_iovlen = 1 };
	expect(recvmsg(s, &rmh, 0), strlen(m), "recvmsg");

	m = "RT-SYSCALL sendmmsg->recvmmsg";
	struct iovec mmiov = { (void *)m, strlen(m) };
	struct mmsghdr mm = { .msg_hdr = { .msg_iov = &mmiov, .msg_iovlen = 1 } };
	expect(sendmmsg(c, &mm, 1, 0), 1, "sendmmsg");
	struct iovec rmmiov = { buf, sizeof(buf) };
	struct mmsghdr rmm = { .msg_hdr = { .msg_iov = &rmmiov, .msg_iovlen = 1 } };
	expect(recvmmsg(s, &rmm, 1, 0, NULL), 1, "recvmmsg");
	expect(rmm.msg_len, strlen(m), "recvmmsg length");

	close(c);
	close(s);
	close(ls);

	/* UDP, unconnected: two datagrams in one sendmmsg (as glibc's resolver sends A + AAAA), both
	 * received by one recvmmsg. */
	int us = socket(AF_INET, SOCK_DGRAM, 0), uc = socket(AF_INET, SOCK_DGRAM, 0);
	if (bind(us, (struct sockaddr *)&addr, sizeof(addr))) die("udp bind");
	const char *d[2] = { "RT-MMSG one", "RT-MMSG second" };
	struct iovec div[2] = { { (void *)d[0], strlen(d[0]) }, { (void *)d[1], strlen(d[1]) } };
	struct mmsghdr dm[2] = {
		{ .msg_hdr = { .msg_name = &addr, .msg_namelen = sizeof(addr), .msg_iov = &div[0], .msg_iovlen = 1 } },
		{ .msg_hdr = { .msg_name = &addr, .msg_namelen = sizeof(addr), .msg_iov = &div[1], .msg_iovlen = 1 } },
	};
	expect(sendmmsg(uc, dm, 2, 0), 2, "udp sendmmsg");
	char b0[64], b1[64];
	struct sockaddr_in from[2];
	struct iovec rv[2] = { { b0, sizeof(b0) }, { b1, sizeof(b1) } };
	struct mmsghdr rm[2] = {
		{ .msg_hdr = { .msg_name = &from[0], .msg_namelen = sizeof(from[0]), .msg_iov = &rv[0], .msg_iovlen = 1 } },
		{ .msg_hdr = { .msg_name = &from[1], .msg_namelen = sizeof(from[1]), .msg_iov = &rv[1], .msg_iovlen = 1 } },
	};
	expect(recvmmsg(us, rm, 2, MSG_WAITFORONE, NULL), 2, "udp recvmmsg");
	close(us);
	close(uc);
	return 0;
}
