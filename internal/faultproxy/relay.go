package faultproxy

import (
	"net"
	"sync"
	"sync/atomic"
)

// Relay forwards TCP connections from 127.0.0.1 to a target address, below
// HTTP, so TLS and HTTP/2 pass through it untouched. Blackhole makes the
// connections it holds go dead the way a vanished peer behind a stateful
// firewall does: they stay open, but nothing they carry arrives, in either
// direction, and nothing comes back. Only a client's own liveness checks
// (HTTP/2 pings; TCP keepalive cannot see it, since the relay's kernel
// still answers) can tell. Connections made after Blackhole relay normally.
type Relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[*relayed]bool
}

// relayed is one relayed connection: the client's side and the target's.
type relayed struct {
	client, server net.Conn
	dead           atomic.Bool
}

// StartRelay listens on 127.0.0.1:0 and relays each connection to target
// (host:port). Close stops it.
func StartRelay(target string) (*Relay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Relay{ln: ln, target: target, conns: map[*relayed]bool{}}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// Addr is the relay's host:port.
func (r *Relay) Addr() string { return r.ln.Addr().String() }

// Blackhole turns every connection the relay holds now into a dead one.
func (r *Relay) Blackhole() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		c.dead.Store(true)
	}
}

// Close stops accepting, closes every connection and waits for the relay's
// goroutines.
func (r *Relay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		_ = c.client.Close()
		_ = c.server.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Relay) accept() {
	defer r.wg.Done()
	for {
		client, err := r.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = client.Close()
			continue
		}
		c := &relayed{client: client, server: server}
		r.mu.Lock()
		r.conns[c] = true
		r.mu.Unlock()
		r.wg.Add(2)
		go r.pipe(c, client, server)
		go r.pipe(c, server, client)
	}
}

// pipe copies from src to dst until either ends, dropping what it reads
// once c is dead; then it closes both and forgets c.
func (r *Relay) pipe(c *relayed, src, dst net.Conn) {
	defer r.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.dead.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break // EOF, a reset, or Close
		}
	}
	_ = src.Close()
	_ = dst.Close()
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}
