// Package argon2id hashes passwords with argon2id into PHC strings
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash) and bounds how many hashes run
// at once, so that a flood of logins queues instead of exhausting memory.
package argon2id

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/tradeops/tradeops/domain"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB uint32
	Time      uint32
	Threads   uint8
	SaltLen   int
	KeyLen    uint32
}

// OWASP is the OWASP Password Storage Cheat Sheet's first argon2id
// configuration: 19 MiB, 2 iterations, 1 lane.
var OWASP = Params{MemoryKiB: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// maxMemoryKiB refuses to verify a stored hash that would cost more than
// 256 MiB: a tampered row must not become a memory bomb.
const maxMemoryKiB = 256 * 1024

// Hasher hashes and verifies passwords.
type Hasher struct {
	params Params
	slots  chan struct{}
}

// New returns a hasher running at most concurrency hashes at once (0 means
// runtime.NumCPU(): argon2id is CPU-bound, more in parallel only costs
// memory, params.MemoryKiB each).
func New(params Params, concurrency int) *Hasher {
	if concurrency <= 0 {
		concurrency = runtime.NumCPU()
	}
	return &Hasher{params: params, slots: make(chan struct{}, concurrency)}
}

// Hash returns the PHC string of password under a fresh random salt.
func (h *Hasher) Hash(ctx context.Context, password domain.Secret) (domain.Secret, error) {
	salt := make([]byte, h.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return domain.Secret{}, fmt.Errorf("salt: %w", err)
	}
	key, err := h.derive(ctx, password, salt, h.params)
	if err != nil {
		return domain.Secret{}, err
	}
	b64 := base64.RawStdEncoding
	return domain.NewSecret(fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.params.MemoryKiB, h.params.Time, h.params.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))), nil
}

// Verify reports whether password matches hash, comparing in constant time.
// The parameters come from the hash, so older hashes keep verifying after
// the configured parameters change.
func (h *Hasher) Verify(ctx context.Context, password, hash domain.Secret) (bool, error) {
	p, salt, want, err := parse(hash.Reveal())
	if err != nil {
		return false, err
	}
	got, err := h.derive(ctx, password, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func (h *Hasher) derive(ctx context.Context, password domain.Secret, salt []byte, p Params) ([]byte, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to hash a password: %w", ctx.Err())
	}
	defer func() { <-h.slots }()
	return argon2.IDKey([]byte(password.Reveal()), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen), nil
}

var errFormat = errors.New("stored password hash is not an argon2id PHC string")

// parse reads "$argon2id$v=19$m=..,t=..,p=..$salt$hash". Errors never
// include the hash.
func parse(s string) (p Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errFormat
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errFormat
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil ||
		p.MemoryKiB == 0 || p.MemoryKiB > maxMemoryKiB || p.Time == 0 || p.Time > 16 || p.Threads == 0 {
		return p, nil, nil, errFormat
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errFormat
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errFormat
	}
	p.KeyLen = uint32(len(key))
	return p, salt, key, nil
}
