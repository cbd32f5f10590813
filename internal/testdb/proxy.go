package testdb

import (
	"io"
	"net"
	"sync"
	"testing"
)

// Proxy is a TCP proxy a test owns in front of the shared PostgreSQL, so a
// fault test can make "the database" vanish without touching the server
// other tests and CI use.
type Proxy struct {
	ln         net.Listener
	target     string
	fromServer func(client, server net.Conn)

	mu    sync.Mutex
	down  bool
	conns []net.Conn
}

// NewProxy listens on a free loopback port and forwards to target
// ("host:port"). It is closed when the test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Listen(target, nil)
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// Listen starts a proxy outside a test (Close stops it). fromServer, when
// set, forwards what the server sends to the client instead of a plain copy:
// a benchmark reads the wire protocol on the way (internal/benchexec).
func Listen(target string, fromServer func(client, server net.Conn)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, fromServer: fromServer}
	go p.accept()
	return p, nil
}

// Close stops listening and drops every open connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
}

// Addr is the proxy's "host:port".
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Cut drops every open connection and refuses new ones until Restore.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Restore lets connections through again.
func (p *Proxy) Restore() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go pipe(up, c)
		if p.fromServer == nil {
			go pipe(c, up)
			continue
		}
		go func() {
			p.fromServer(c, up)
			c.Close()
			up.Close()
		}()
	}
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
}
