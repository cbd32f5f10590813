package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// pgCounter is a TCP proxy in front of PostgreSQL that reads the server's
// side of the wire protocol and counts, over every connection:
//   - round trips: ReadyForQuery messages, one per Sync or simple Query,
//     i.e. one per wait for the database (a pgx batch is one);
//   - transactions: ReadyForQuery back to idle — a COMMIT or ROLLBACK, or a
//     statement (or implicit batch transaction) run outside BEGIN;
//   - writing transactions: those with an INSERT, UPDATE or DELETE that
//     touched a row, i.e. the commits that wait for a WAL flush.
//
// It needs an unencrypted connection (sslmode=disable).
type pgCounter struct {
	ln                        net.Listener
	target                    string
	roundTrips, txs, writeTxs atomic.Int64
	mu                        sync.Mutex
	conns                     []net.Conn
}

func newPGCounter(target string) (*pgCounter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &pgCounter{ln: ln, target: target}
	go p.accept()
	return p, nil
}

func (p *pgCounter) addr() string { return p.ln.Addr().String() }

func (p *pgCounter) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// counts returns the counters so far.
func (p *pgCounter) counts() [3]int64 {
	return [3]int64{p.roundTrips.Load(), p.txs.Load(), p.writeTxs.Load()}
}

func (p *pgCounter) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { p.read(up, c); c.Close() }()
	}
}

// read forwards the server's messages to the client, counting them.
func (p *pgCounter) read(server, client net.Conn) {
	in := bufio.NewReaderSize(server, 64<<10)
	out := bufio.NewWriterSize(client, 64<<10)
	var head [5]byte
	wrote := false
	for {
		if _, err := io.ReadFull(in, head[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(head[1:])) - 4
		body := make([]byte, n)
		if _, err := io.ReadFull(in, body); err != nil {
			return
		}
		switch head[0] {
		case 'C': // CommandComplete: "INSERT 0 1", "UPDATE 1", "DELETE 0", ...
			tag := bytes.Fields(bytes.TrimRight(body, "\x00"))
			if len(tag) >= 2 {
				switch string(tag[0]) {
				case "INSERT", "UPDATE", "DELETE":
					if rows, err := strconv.Atoi(string(tag[len(tag)-1])); err == nil && rows > 0 {
						wrote = true
					}
				}
			}
		case 'Z': // ReadyForQuery: I idle, T in a transaction, E failed one
			p.roundTrips.Add(1)
			if n == 1 && body[0] == 'I' {
				p.txs.Add(1)
				if wrote {
					p.writeTxs.Add(1)
				}
				wrote = false
			}
		}
		_, _ = out.Write(head[:])
		_, _ = out.Write(body)
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return
			}
		}
	}
}
