// Package token issues and verifies the API's access tokens: JWTs signed
// with HS256 under SECRET_KEY (DESIGN §4).
package token

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

const (
	Issuer   = "tradeops"
	Audience = "tradeops-api"
	// DefaultTTL is an access token's lifetime.
	DefaultTTL = 15 * time.Minute
	// maxClockSkew is how far in the future an iat may lie: replicas'
	// clocks differ a little, so a token issued by one may look a few
	// seconds early to another. Beyond it the token was not issued by a
	// sane server (or the key leaked) and is refused.
	maxClockSkew = 30 * time.Second
)

// Tokens signs and verifies tokens with one key.
type Tokens struct {
	key []byte
	ttl time.Duration

	// verified holds the claims of tokens whose signature and form were
	// checked, by SHA-256 of the token (the bearer token itself is not
	// kept). A token is a fixed string, so a second request with it needs
	// only the checks that depend on the time: decoding and verifying it
	// again was ~5 % of the server's CPU per request. Revocation is not a
	// property of the token and is checked on every request by the caller
	// (app.AuthenticateHandler).
	mu       sync.Mutex
	verified map[[sha256.Size]byte]claims
}

// maxVerified bounds the verified tokens kept (~300 bytes each); when full,
// the expired ones go, and if that is not enough, all of them.
const maxVerified = 4096

// New returns tokens signed with key (at least 32 bytes) that live ttl.
func New(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < 32 {
		return nil, errors.New("token: the signing key must be at least 32 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("token: the lifetime must be positive")
	}
	return &Tokens{key: key, ttl: ttl, verified: map[[sha256.Size]byte]claims{}}, nil
}

// claims are the registered claims, except that iat keeps microseconds (a
// JSON number with a fraction, which RFC 7519 allows): tokens_valid_after
// is compared with it, and whole seconds cannot tell a token issued just
// before a logout from one issued just after it in the same second.
type claims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt *jwt.NumericDate `json:"exp"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	IssuedAt  *microTime       `json:"iat"`
	ID        string           `json:"jti"`
}

func (c claims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt, nil }
func (c claims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore, nil }
func (c claims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c claims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c claims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }
func (c claims) GetIssuedAt() (*jwt.NumericDate, error) {
	if c.IssuedAt == nil {
		return nil, nil
	}
	return &jwt.NumericDate{Time: c.IssuedAt.Time}, nil
}

// Issue signs a token for userID, issued at now.
func (t *Tokens) Issue(userID string, now time.Time) (app.AccessToken, error) {
	now = now.UTC().Truncate(time.Microsecond)
	c := claims{
		Issuer: Issuer, Subject: userID, Audience: jwt.ClaimStrings{Audience},
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)), IssuedAt: &microTime{now}, ID: uuid.NewString(),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(t.key)
	if err != nil {
		return app.AccessToken{}, fmt.Errorf("sign token: %w", err)
	}
	return app.AccessToken{Token: domain.NewSecret(s), ExpiresIn: t.ttl}, nil
}

// Verify accepts only HS256 tokens signed with the key, from our issuer, for
// our audience, with an expiry in the future, no nbf in the future (we
// issue none; the parser honours one), a subject that is a user id (a
// canonical UUID: anything else would reach the database as an invalid
// uuid, a 500) and an issue time at most maxClockSkew ahead of now.
func (t *Tokens) Verify(token domain.Secret, now time.Time) (app.TokenClaims, error) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(Issuer), jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(func() time.Time { return now }),
	}
	sum := sha256.Sum256([]byte(token.Reveal()))
	t.mu.Lock()
	c, seen := t.verified[sum]
	t.mu.Unlock()
	if seen {
		// What ParseWithClaims checks after the signature, again at now.
		if err := jwt.NewValidator(opts...).Validate(c); err != nil {
			return app.TokenClaims{}, fmt.Errorf("token rejected: %w", err)
		}
	} else {
		if _, err := jwt.NewParser(opts...).ParseWithClaims(token.Reveal(), &c, func(*jwt.Token) (any, error) { return t.key, nil }); err != nil {
			return app.TokenClaims{}, fmt.Errorf("token rejected: %w", err)
		}
		// The form does not change with the time: a remembered token passed.
		if c.Subject == "" || c.IssuedAt == nil {
			return app.TokenClaims{}, errors.New("token rejected: no subject or issue time")
		}
		if id, err := uuid.Parse(c.Subject); err != nil || id.String() != c.Subject {
			return app.TokenClaims{}, errors.New("token rejected: the subject is not a user id")
		}
	}
	if c.IssuedAt.After(now.Add(maxClockSkew)) {
		return app.TokenClaims{}, fmt.Errorf("token rejected: issued %s in the future", c.IssuedAt.Sub(now).Round(time.Second))
	}
	if !seen {
		t.remember(sum, c, now)
	}
	return app.TokenClaims{UserID: c.Subject, IssuedAt: c.IssuedAt.Time}, nil
}

// remember keeps a verified token's claims.
func (t *Tokens) remember(sum [sha256.Size]byte, c claims, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.verified) >= maxVerified {
		for k, v := range t.verified {
			if !now.Before(v.ExpiresAt.Time) {
				delete(t.verified, k)
			}
		}
		if len(t.verified) >= maxVerified {
			clear(t.verified)
		}
	}
	t.verified[sum] = c
}

// microTime is a NumericDate with microseconds, written as "1700000000.123456".
type microTime struct{ time.Time }

func (m microTime) MarshalJSON() ([]byte, error) {
	return fmt.Appendf(nil, "%d.%06d", m.Unix(), m.Nanosecond()/1000), nil
}

// UnmarshalJSON parses the decimal exactly (a float64 would round).
func (m *microTime) UnmarshalJSON(b []byte) error {
	whole, frac, _ := bytes.Cut(b, []byte("."))
	sec, err := strconv.ParseInt(string(whole), 10, 64)
	if err != nil {
		return fmt.Errorf("iat: %w", err)
	}
	var usec int64
	if len(frac) > 0 {
		if strings.Trim(string(frac), "0123456789") != "" {
			return errors.New("iat: bad fraction")
		}
		usec, _ = strconv.ParseInt((string(frac) + "000000")[:6], 10, 64)
	}
	m.Time = time.Unix(sec, usec*1000).UTC()
	return nil
}
