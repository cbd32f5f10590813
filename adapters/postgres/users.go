package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

var (
	errUserNotFound = domain.Errorf(domain.KindNotFound, "user_not_found", "no such user")
	errEmailTaken   = domain.Errorf(domain.KindConflict, "email_taken", "a user with this email already exists")
)

// Users is the user repository: events in user-<id> streams, and in the
// same transaction the users row (read model and login look-up) and the
// user's credentials. It implements app.UserRepository and app.AccessStates.
type Users struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
	cache accessCache
}

// NewUsers returns the repository. Access states (read on every
// authenticated request) are cached for cacheTTL; this process's own
// updates evict them at once, other processes' updates (another replica's
// logout, a CLI role change) show within cacheTTL. Zero disables the cache.
func NewUsers(store *eventstore.Store, cacheTTL time.Duration) *Users {
	return &Users{store: store, pool: store.Pool(), cache: accessCache{ttl: cacheTTL, m: map[string]cachedAccess{}}}
}

// Create implements app.UserRepository.
func (r *Users) Create(ctx context.Context, u *domain.User, c app.Credentials) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO users (id, email, role, risk_profile, password_hash, totp_enabled, tokens_valid_after, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now())`,
			u.ID(), u.Email().String(), u.Role(), u.RiskProfile(), c.PasswordHash.Reveal(), u.TOTPEnabled(), u.TokensValidAfter())
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "users_email_key" {
			return errEmailTaken
		}
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		if err := writeTOTP(ctx, tx, u.ID(), c.TOTP); err != nil {
			return err
		}
		return appendEvents(ctx, r.store, tx, domain.UserStream(u.ID()), eventstore.NoStream, u.Changes()...)
	})
}

// Update implements app.UserRepository. The users row is locked for the
// transaction, so updates of one user run one after the other; the append
// still expects the loaded version. fn must record an event for every
// change, credentials included: an update that records none writes nothing.
func (r *Users) Update(ctx context.Context, id string, fn func(*domain.User, *app.Credentials) error) error {
	err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		var c app.Credentials
		var hash string
		err := tx.QueryRow(ctx, `SELECT password_hash FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&hash)
		if errors.Is(err, pgx.ErrNoRows) {
			return errUserNotFound
		}
		if err != nil {
			return fmt.Errorf("lock user: %w", err)
		}
		c.PasswordHash = domain.NewSecret(hash)
		if c.TOTP, err = readTOTP(ctx, tx, id); err != nil {
			return err
		}
		stored, err := r.store.ReadStream(ctx, tx, domain.UserStream(id), 0)
		if err != nil {
			return err
		}
		u, err := domain.LoadUser(historyOf(stored))
		if err != nil {
			return err
		}
		if err := fn(u, &c); err != nil {
			return err
		}
		if len(u.Changes()) == 0 {
			return nil
		}
		if err := appendEvents(ctx, r.store, tx, domain.UserStream(id), eventstore.Exact(u.Version()), u.Changes()...); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE users SET role = $2, risk_profile = $3, password_hash = $4,
			totp_enabled = $5, tokens_valid_after = $6, updated_at = now() WHERE id = $1`,
			id, u.Role(), u.RiskProfile(), c.PasswordHash.Reveal(), u.TOTPEnabled(), u.TokensValidAfter()); err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		return writeTOTP(ctx, tx, id, c.TOTP)
	})
	if err == nil {
		r.cache.forget(id)
	}
	return err
}

func readTOTP(ctx context.Context, tx pgx.Tx, userID string) (*app.TOTPSeed, error) {
	var seed app.TOTPSeed
	var raw []byte
	err := tx.QueryRow(ctx, `SELECT seed, last_step FROM user_totp WHERE user_id = $1`, userID).Scan(&raw, &seed.LastStep)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read TOTP seed: %w", err)
	}
	if err := json.Unmarshal(raw, &seed.Sealed); err != nil {
		return nil, fmt.Errorf("TOTP seed of user %s: %w", userID, err)
	}
	return &seed, nil
}

func writeTOTP(ctx context.Context, tx pgx.Tx, userID string, seed *app.TOTPSeed) error {
	if seed == nil {
		_, err := tx.Exec(ctx, `DELETE FROM user_totp WHERE user_id = $1`, userID)
		return err
	}
	raw, err := json.Marshal(seed.Sealed)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO user_totp (user_id, seed, last_step) VALUES ($1, $2, $3)
		ON CONFLICT (user_id) DO UPDATE SET seed = EXCLUDED.seed, last_step = EXCLUDED.last_step`, userID, raw, seed.LastStep)
	if err != nil {
		return fmt.Errorf("write TOTP seed: %w", err)
	}
	return nil
}

const viewColumns = `u.id::text, u.email, u.role, u.risk_profile, u.totp_enabled`

func scanView(row pgx.Row, extra ...any) (app.UserView, error) {
	var v app.UserView
	err := row.Scan(append([]any{&v.ID, &v.Email, &v.Role, &v.RiskProfile, &v.TOTPEnabled}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return v, errUserNotFound
	}
	if err != nil {
		return v, fmt.Errorf("read user: %w", err)
	}
	return v, nil
}

// FindByEmail implements app.UserRepository.
func (r *Users) FindByEmail(ctx context.Context, email string) (app.Account, error) {
	var (
		a       app.Account
		hash    string
		seed    []byte
		lastStp *int64
	)
	v, err := scanView(r.pool.QueryRow(ctx, `SELECT `+viewColumns+`, u.password_hash, t.seed, t.last_step
		FROM users u LEFT JOIN user_totp t ON t.user_id = u.id WHERE lower(u.email) = lower($1)`, email), &hash, &seed, &lastStp)
	if err != nil {
		return a, err
	}
	a.UserView, a.PasswordHash = v, domain.NewSecret(hash)
	if seed != nil {
		a.TOTP = &app.TOTPSeed{LastStep: *lastStp}
		if err := json.Unmarshal(seed, &a.TOTP.Sealed); err != nil {
			return a, fmt.Errorf("TOTP seed of user %s: %w", v.ID, err)
		}
	}
	return a, nil
}

// Get implements app.UserRepository.
func (r *Users) Get(ctx context.Context, id string) (app.UserView, error) {
	return scanView(r.pool.QueryRow(ctx, `SELECT `+viewColumns+` FROM users u WHERE u.id = $1`, id))
}

// List implements app.UserRepository.
func (r *Users) List(ctx context.Context) ([]app.UserView, error) {
	rows, err := r.pool.Query(ctx, `SELECT `+viewColumns+` FROM users u ORDER BY u.email`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []app.UserView
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ClaimTOTPStep implements app.UserRepository: one conditional update, so
// of two requests racing with the same code exactly one wins.
func (r *Users) ClaimTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	tag, err := r.pool.Exec(ctx, `UPDATE user_totp SET last_step = $2 WHERE user_id = $1 AND last_step < $2`, userID, step)
	if err != nil {
		return false, fmt.Errorf("claim TOTP step: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// AccessState implements app.AccessStates.
func (r *Users) AccessState(ctx context.Context, userID string) (app.AccessState, error) {
	if st, ok := r.cache.get(userID); ok {
		return st, nil
	}
	epoch := r.cache.epoch.Load()
	var st app.AccessState
	err := r.pool.QueryRow(ctx, `SELECT email, role, tokens_valid_after FROM users WHERE id = $1`, userID).
		Scan(&st.Email, &st.Role, &st.TokensValidAfter)
	if errors.Is(err, pgx.ErrNoRows) {
		return st, errUserNotFound
	}
	if err != nil {
		return st, fmt.Errorf("read access state: %w", err)
	}
	r.cache.put(userID, st, epoch)
	return st, nil
}

// accessCache keeps access states briefly. Entries are bounded by the
// number of users: only ids from validly signed tokens are looked up.
type accessCache struct {
	ttl time.Duration
	mu  sync.RWMutex
	m   map[string]cachedAccess
	// epoch moves on every eviction; a read that started before one does
	// not cache what it read, which may predate the evicting update.
	epoch atomic.Uint64
}

type cachedAccess struct {
	st      app.AccessState
	expires time.Time
}

func (c *accessCache) get(id string) (app.AccessState, bool) {
	if c.ttl <= 0 {
		return app.AccessState{}, false
	}
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || time.Now().After(e.expires) {
		return app.AccessState{}, false
	}
	return e.st, true
}

func (c *accessCache) put(id string, st app.AccessState, epoch uint64) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() == epoch {
		c.m[id] = cachedAccess{st: st, expires: time.Now().Add(c.ttl)}
	}
}

func (c *accessCache) forget(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	delete(c.m, id)
}
