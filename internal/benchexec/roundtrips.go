package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync/atomic"
)

// pgCounter reads the server's side of the PostgreSQL wire protocol as a
// proxy in front of the server forwards it (testdb.Listen) and counts, over
// every connection:
//   - round trips: ReadyForQuery messages, one per Sync or simple Query,
//     i.e. one per wait for the database (a pgx batch is one);
//   - transactions: ReadyForQuery back to idle — a COMMIT or ROLLBACK, or a
//     statement (or implicit batch transaction) run outside BEGIN;
//   - writing transactions: those with an INSERT, UPDATE or DELETE that
//     touched a row, i.e. the commits that wait for a WAL flush.
//
// It needs an unencrypted connection (sslmode=disable).
type pgCounter struct {
	roundTrips, txs, writeTxs atomic.Int64
}

// counts returns the counters so far.
func (p *pgCounter) counts() [3]int64 {
	return [3]int64{p.roundTrips.Load(), p.txs.Load(), p.writeTxs.Load()}
}

// read forwards the server's messages to the client, counting them.
func (p *pgCounter) read(client, server net.Conn) {
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
