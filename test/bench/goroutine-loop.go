// Benchmark load for test/bench/goroutine-read.ts: a Go client and an echo goroutine over loopback
// TCP. Each line "N" on stdin runs N round trips (client write, server read, server write, client
// read: four captured socket syscalls, plus the netpoller's EAGAIN reads) and prints the process's
// CPU ns (user + system) per round trip.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

func cpuNs() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	go func() {
		for {
			s, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(s, buf); err != nil {
						return
					}
					if _, err := s.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	msg := make([]byte, 64)
	in := bufio.NewScanner(os.Stdin)
	fmt.Println("ready")
	for in.Scan() {
		n, _ := strconv.Atoi(strings.TrimSpace(in.Text()))
		t0 := cpuNs()
		for i := 0; i < n; i++ {
			if _, err := c.Write(msg); err != nil {
				panic(err)
			}
			if _, err := io.ReadFull(c, msg); err != nil {
				panic(err)
			}
		}
		fmt.Println(float64(cpuNs()-t0) / float64(n))
	}
}
