package app

import (
	"context"
	"fmt"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// This file holds what the identity handlers share: the ports they need
// (implemented in adapters/) and the read models they return.

// UserView is the users read model, as the API and the CLI show it.
type UserView struct {
	ID          string
	Email       string
	Role        domain.Role
	RiskProfile domain.RiskProfile
	TOTPEnabled bool
}

// Credentials are the secrets kept beside a user aggregate, never in its
// events: the password hash and the encrypted TOTP seed.
type Credentials struct {
	PasswordHash domain.Secret
	// TOTP is the stored seed, pending or active (see UserView.TOTPEnabled);
	// nil when there is none.
	TOTP *TOTPSeed
}

// TOTPSeed is an encrypted TOTP seed and the last time step a code was
// accepted for, which makes every code single-use.
type TOTPSeed struct {
	Sealed   Sealed
	LastStep int64
}

// Account is what a login needs to know about an address.
type Account struct {
	UserView
	Credentials
}

// UserRepository stores user aggregates: events in the user's stream, and
// in the same transaction the users read model and the credentials.
type UserRepository interface {
	// Create stores a new user; an email already taken (in any case) is a
	// KindConflict error, so concurrent creations yield exactly one user.
	Create(ctx context.Context, u *domain.User, c Credentials) error
	// Update loads user id, lets fn change it and its credentials, and
	// stores the events fn recorded and the credentials, atomically. An
	// error from fn aborts the update and is returned as is.
	Update(ctx context.Context, id string, fn func(u *domain.User, c *Credentials) error) error
	// FindByEmail looks a normalised address up (KindNotFound when none).
	FindByEmail(ctx context.Context, email string) (Account, error)
	Get(ctx context.Context, id string) (UserView, error)
	List(ctx context.Context) ([]UserView, error)
	// ClaimTOTPStep records step as the user's last accepted time step
	// unless a code for it or a later step was already accepted: false
	// means the code is being replayed.
	ClaimTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
}

// PasswordHasher hashes and verifies passwords. Implementations bound how
// many hashes run at once, so Hash and Verify may wait (until ctx ends).
type PasswordHasher interface {
	Hash(ctx context.Context, password domain.Secret) (domain.Secret, error)
	Verify(ctx context.Context, password, hash domain.Secret) (bool, error)
}

// TOTP generates seeds and checks codes (RFC 6238).
type TOTP interface {
	// NewSeed returns a fresh seed (base32) and its otpauth:// URL.
	NewSeed(account string) (seed, url domain.Secret, err error)
	// Verify reports the time step code is valid for near now, considering
	// only steps after lastStep, so an accepted code cannot be replayed.
	Verify(seed, code domain.Secret, now time.Time, lastStep int64) (step int64, ok bool)
}

// AccessToken is a signed bearer token and its lifetime.
type AccessToken struct {
	Token     domain.Secret
	ExpiresIn time.Duration
}

// TokenClaims are what a verified token asserts.
type TokenClaims struct {
	UserID   string
	IssuedAt time.Time // microsecond precision
}

// Tokens issues and verifies access tokens.
type Tokens interface {
	Issue(userID string, now time.Time) (AccessToken, error)
	// Verify checks signature, algorithm, issuer, audience and expiry.
	Verify(token domain.Secret, now time.Time) (TokenClaims, error)
}

// LoginAttempts keeps the attempts the throttle counts, shared by every
// replica, and appends each attempt's event in the same transaction. An
// attempt is keyed by the keyed hash of its username (domain.UsernameKey),
// never by the typed text.
type LoginAttempts interface {
	// Begin registers an in-flight attempt for (account, clientIP) unless
	// policy throttles it; then Attempt.RetryAfter is positive and nothing
	// is registered.
	Begin(ctx context.Context, account, clientIP string, now time.Time, policy domain.ThrottlePolicy) (Attempt, error)
	// Finish settles the attempt as r says.
	Finish(ctx context.Context, a Attempt, r AttemptResult) error
	// SettleStale removes the attempts still pending that began before
	// cutoff, and appends for each, in the same transaction, the event
	// settle returns (with the attempt's client IP in its metadata). Each
	// is settled once, however many processes settle at the same time.
	SettleStale(ctx context.Context, cutoff time.Time, settle func(Attempt) (stream string, ev domain.Event)) (int, error)
}

// Attempt is an attempt registered by Begin.
type Attempt struct {
	ID         int64
	Account    string // the keyed hash of the attempted username
	ClientIP   string
	RetryAfter time.Duration
}

// AttemptOutcome says how an attempt counts from now on.
type AttemptOutcome int

const (
	// AttemptThrottled was refused by Begin; only its event is stored.
	AttemptThrottled AttemptOutcome = iota
	// AttemptFailed counts as a failure for the rest of the window.
	AttemptFailed
	// AttemptUncounted is forgotten (e.g. a right password without the
	// code it needs, or a failure on our side: not a guess).
	AttemptUncounted
	// AttemptSucceeded is forgotten together with the earlier failures of
	// the same account from the same IP; failures from other IPs, and this
	// IP's failures against other accounts, stay.
	AttemptSucceeded
)

// AttemptResult settles an attempt; Event, when set, is appended to Stream
// in the same transaction.
type AttemptResult struct {
	Outcome AttemptOutcome
	Stream  string
	Event   *domain.Event
}

// detach returns the context an attempt runs on: it outlives the request
// ctx belongs to (its values, such as the caller, stay), so the attempt runs
// to its end even when the client goes away (DESIGN §4: every attempt is an
// event), bounded by policy.AttemptTimeout.
func detach(ctx context.Context, policy domain.ThrottlePolicy) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), policy.AttemptTimeout())
}

// finishAttempt settles a on a context of its own, bounded by
// policy.FinishTimeout, so that an attempt that ran out of time is still
// recorded.
func finishAttempt(ctx context.Context, attempts LoginAttempts, policy domain.ThrottlePolicy, a Attempt, r AttemptResult) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), policy.FinishTimeout())
	defer cancel()
	return attempts.Finish(ctx, a, r)
}

// totpBinding is what a TOTP seed ciphertext is bound to.
func totpBinding(userID string) SecretBinding {
	return SecretBinding{Owner: userID, Purpose: TOTPPurpose, Field: TOTPField}
}

// checkOTP decrypts seed and verifies code against it; ok is false for a
// wrong, stale or replayed code.
func checkOTP(keyring Keyring, totp TOTP, userID string, seed *TOTPSeed, code domain.Secret, now time.Time) (step int64, ok bool, err error) {
	if seed == nil {
		return 0, false, fmt.Errorf("user %s has 2FA on but no stored seed", userID)
	}
	plain, err := keyring.Open(seed.Sealed, totpBinding(userID))
	if err != nil {
		return 0, false, fmt.Errorf("open the TOTP seed of user %s: %w", userID, err)
	}
	step, ok = totp.Verify(domain.NewSecret(string(plain)), code, now, seed.LastStep)
	return step, ok, nil
}

// Classified errors of the identity handlers. Messages are the same for an
// unknown email and a wrong password, so neither reveals which emails exist.
var (
	errInvalidCredentials = domain.Errorf(domain.KindUnauthorized, "invalid_credentials", "invalid email or password")
	errOTPRequired        = domain.Errorf(domain.KindUnauthorized, "otp_required", "a one-time code is required for this account")
	errOTPInvalid         = domain.Errorf(domain.KindUnauthorized, "otp_invalid", "the one-time code is invalid or was already used")
	errUnauthenticated    = domain.Errorf(domain.KindUnauthorized, "unauthorized", "missing, invalid or expired access token")
)

func tooManyAttempts(wait time.Duration) error {
	secs := int((wait + time.Second - 1) / time.Second)
	return &domain.Error{Kind: domain.KindTooMany, Code: "too_many_attempts",
		Message: "too many failed attempts; try again later", RetryAfterSeconds: max(secs, 1)}
}
