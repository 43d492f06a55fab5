// A Go net/http TLS server and client for test/capture/tls-go.test.ts (built there with Debian's
// golang-go): HTTP/1.1 over crypto/tls on loopback, with the test's self-signed certificate.
//
//	gotls server PORT CERT KEY     serves GET /... with 200 and "go:<path>"
//	gotls client PORT CA PATH...   one keep-alive connection, one request per PATH, prints "status body"
//	gotls bench SIZE CERT KEY      TLS echo round trips over loopback, N per line read from stdin
//	                               (test/bench/go-tls-overhead.ts)
package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

func main() {
	switch os.Args[1] {
	case "server":
		srv := &http.Server{
			Addr: "127.0.0.1:" + os.Args[2],
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("content-type", "text/plain")
				w.WriteHeader(200)
				io.WriteString(w, "go:"+r.URL.Path)
			}),
			// HTTP/1.1 only: no ALPN h2.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		}
		fmt.Println("up")
		if err := srv.ListenAndServeTLS(os.Args[3], os.Args[4]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	case "client":
		pem, err := os.ReadFile(os.Args[3])
		if err != nil {
			panic(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}, Timeout: 10 * time.Second}
		for _, p := range os.Args[4:] {
			r, err := c.Get("https://127.0.0.1:" + os.Args[2] + p)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			fmt.Println(r.StatusCode, string(b))
		}
	case "bench":
		bench()
	}
}

// bench: a TLS echo over loopback inside this process. After "ready", each line N on stdin runs N
// round trips (client Write, server Read+Write, client Read) of SIZE bytes and prints the elapsed
// ns and the number of Conn.Read/Conn.Write calls both ends made.
func bench() {
	size, _ := strconv.Atoi(os.Args[2])
	cert, err := tls.LoadX509KeyPair(os.Args[3], os.Args[4])
	if err != nil {
		panic(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		panic(err)
	}
	var serverCalls atomic.Int64
	go func() {
		s, err := ln.Accept()
		if err != nil {
			panic(err)
		}
		buf := make([]byte, size)
		for {
			for got := 0; got < size; {
				k, err := s.Read(buf[got:])
				serverCalls.Add(1)
				if err != nil {
					return
				}
				got += k
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
			serverCalls.Add(1)
		}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		panic(err)
	}
	buf := make([]byte, size)
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, _ := strconv.Atoi(in.Text())
		before := serverCalls.Load()
		calls := int64(0)
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, err := c.Write(buf); err != nil {
				panic(err)
			}
			calls++
			for got := 0; got < size; {
				k, err := c.Read(buf[got:])
				if err != nil {
					panic(err)
				}
				got += k
				calls++
			}
		}
		elapsed := time.Since(start).Nanoseconds()
		fmt.Printf("%d %d\n", elapsed, calls+serverCalls.Load()-before)
	}
}
