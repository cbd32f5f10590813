package export

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockClass is the first key of the export's advisory locks (it spells
// "EXPT"); the second is the hash of the stream's name. Two-key locks never
// collide with the single-key ones (migrations).
const lockClass = 1163415636

// lock is the export's session-level advisory lock, held on a connection of
// its own for as long as the relay publishes: one relay per export across
// replicas. The checkpoint is written on the same connection, so a relay
// whose lock went with its connection cannot move the checkpoint either.
type lock struct {
	conn *pgxpool.Conn
	name string
}

// lockWait is how often a relay that found the lock taken tries again.
const lockWait = time.Second

// acquire takes the lock, waiting (and saying so, once) while another relay
// holds it.
func acquire(ctx context.Context, pool *pgxpool.Pool, name string, log *slog.Logger) (*lock, error) {
	waiting := false
	for {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("export lock: %w", err)
		}
		var got bool
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, lockClass, name).Scan(&got)
		if err == nil && got {
			if waiting {
				log.Info("took over the export lock")
			}
			return &lock{conn: conn, name: name}, nil
		}
		conn.Release()
		if err != nil {
			return nil, fmt.Errorf("export lock: %w", err)
		}
		if !waiting {
			log.Info("another relay holds the export lock of this stream; waiting for it")
			waiting = true
		}
		sleep(ctx, lockWait)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// release unlocks, or closes the connection when it cannot (a connection
// that failed, or a context that ended): a closed session holds no lock.
func (l *lock) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := l.conn.Exec(ctx, `SELECT pg_advisory_unlock($1, hashtext($2))`, lockClass, l.name); err != nil {
		_ = l.conn.Hijack().Close(ctx)
		return
	}
	l.conn.Release()
}
