package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// KeyRotations keeps the rotation state in the keyring stream
// (app.KeyRotations).
type KeyRotations struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
}

func NewKeyRotations(store *eventstore.Store) *KeyRotations {
	return &KeyRotations{store: store, pool: store.Pool()}
}

// Load implements app.KeyRotations.
func (r *KeyRotations) Load(ctx context.Context) (*domain.KeyRotation, error) {
	return loadKeyRotation(ctx, r.store, r.pool)
}

// Update implements app.KeyRotations: the append expects the loaded
// version, so of two processes recording at once (replicas starting
// together) one reloads and decides again on what the other recorded.
func (r *KeyRotations) Update(ctx context.Context, fn func(*domain.KeyRotation) error) error {
	for attempt := 0; ; attempt++ {
		err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			k, err := loadKeyRotation(ctx, r.store, tx)
			if err != nil {
				return err
			}
			if err := fn(k); err != nil {
				return err
			}
			return appendKeyRotation(ctx, r.store, tx, k)
		})
		if errors.Is(err, domain.ErrConcurrency) && attempt < 5 {
			continue
		}
		return err
	}
}

func loadKeyRotation(ctx context.Context, store *eventstore.Store, q eventstore.Querier) (*domain.KeyRotation, error) {
	stored, err := store.ReadStream(ctx, q, domain.KeyringStream, 0)
	if err != nil {
		return nil, err
	}
	return domain.LoadKeyRotation(historyOf(stored))
}

func appendKeyRotation(ctx context.Context, store *eventstore.Store, tx pgx.Tx, k *domain.KeyRotation) error {
	if len(k.Changes()) == 0 {
		return nil
	}
	return appendEvents(ctx, store, tx, domain.KeyringStream, eventstore.Exact(k.Version()), k.Changes()...)
}

// rotationLockClass is the first key of the rotation's advisory lock
// ("keys").
const rotationLockClass = 0x6b657973

// RotationLock is a session advisory lock: one reencrypt or prune at a time
// across replicas and the CLI, released when the holder's session ends,
// so a killed rotation never blocks the next one (app.RotationLock).
type RotationLock struct{ pool *pgxpool.Pool }

func NewRotationLock(pool *pgxpool.Pool) *RotationLock { return &RotationLock{pool: pool} }

// TryLock implements app.RotationLock. The lock's connection is held until
// release.
func (l *RotationLock) TryLock(ctx context.Context) (func(), error) {
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, 0)`, rotationLockClass).Scan(&ok); err != nil || !ok {
		conn.Release()
		if err == nil {
			err = app.ErrRotationInProgress
		}
		return nil, err
	}
	return func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, 0)`, rotationLockClass); err != nil {
			// Never hand a connection that may still hold the lock back to the pool.
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}, nil
}
