package eventstore

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgxpool"
)

// bulkReadBuffer is how much a bulk connection reads from its socket at
// once.
const bulkReadBuffer = 256 << 10

// BulkConn opens a connection for reading many rows (a verification, a
// re-seal): configured like pool's, but reading its socket through a
// bulkReadBuffer-byte buffer. pgx reads 8 KiB at a time — a dozen events —
// and a reader that streams a million events spent as much CPU in those
// read syscalls, and in waking up for each, as the plain scan does in all.
// The caller closes it.
func BulkConn(ctx context.Context, pool *pgxpool.Pool) (*pgx.Conn, error) {
	cfg := pool.Config().ConnConfig.Copy()
	cfg.BuildFrontend = func(r io.Reader, w io.Writer) *pgproto3.Frontend {
		return pgproto3.NewFrontend(bufio.NewReaderSize(r, bulkReadBuffer), w)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("bulk read connection: %w", err)
	}
	return conn, nil
}
