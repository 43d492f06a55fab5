// Uninstrumented Go services for the goroutine acceptance test (test/query/goroutine.test.ts).
// Standard library only, no tracing headers anywhere.
//
//	svc  <port> <redis port> <down port>: net/http, a goroutine per request; each request takes a
//	     connection from a small RESP client pool shared by all goroutines (SET then GET of
//	     req:<n>), then calls down on the default keep-alive transport (GET /down/<n>).
//	down <port>: net/http, answers /down/<n> after a short pause.
package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// redisConn is one pooled connection speaking RESP by hand.
type redisConn struct {
	c net.Conn
	r *bufio.Reader
}

func (rc *redisConn) do(args ...string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		return "", err
	}
	line, err := rc.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, _ := strconv.Atoi(line[1:])
		if n < 0 {
			return "", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rc.r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("redis: unexpected reply %q", line)
}

// pool hands connections to whichever goroutine asks next.
type pool chan *redisConn

func newPool(addr string, size int) pool {
	p := make(pool, size)
	for i := 0; i < size; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		p <- &redisConn{c: c, r: bufio.NewReader(c)}
	}
	return p
}

func (p pool) do(args ...string) (string, error) {
	rc := <-p
	defer func() { p <- rc }()
	return rc.do(args...)
}

func main() {
	mode, port := os.Args[1], os.Args[2]
	mux := http.NewServeMux()
	switch mode {
	case "svc":
		redis := newPool("127.0.0.1:"+os.Args[3], 4)
		down := "http://127.0.0.1:" + os.Args[4]
		mux.HandleFunc("/go/", func(w http.ResponseWriter, r *http.Request) {
			n := strings.TrimPrefix(r.URL.Path, "/go/")
			if _, err := redis.do("SET", "req:"+n, n); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			v, err := redis.do("GET", "req:"+n)
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			res, err := http.Get(down + "/down/" + n)
			if err != nil {
				http.Error(w, err.Error(), 502)
				return
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			fmt.Fprintf(w, "go %s: ok %s %s\n", n, v, body)
		})
	case "down":
		mux.HandleFunc("/down/", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(2 * time.Millisecond)
			fmt.Fprintf(w, "down %s", strings.TrimPrefix(r.URL.Path, "/down/"))
		})
	}
	srv := &http.Server{Addr: "127.0.0.1:" + port, Handler: mux}
	if err := srv.ListenAndServe(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
