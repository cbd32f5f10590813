package app

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// Login is a password (and, with 2FA, one-time code) login.
type Login struct {
	Username string // the email, as typed
	Password domain.Secret
	OTP      domain.Secret // empty when not given
}

// LoginHandler authenticates a user and issues an access token. Every
// attempt, throttled ones included, becomes an auth.login.* event.
type LoginHandler struct {
	users    UserRepository
	attempts LoginAttempts
	hasher   PasswordHasher
	keyring  Keyring
	totp     TOTP
	tokens   Tokens
	policy   domain.ThrottlePolicy
	now      func() time.Time
	// dummyHash is verified for unknown emails, so that they cost the same
	// time as a wrong password.
	dummyHash domain.Secret
}

// NewLoginHandler hashes a random password once to get the dummy hash.
func NewLoginHandler(ctx context.Context, users UserRepository, attempts LoginAttempts, hasher PasswordHasher,
	keyring Keyring, totp TOTP, tokens Tokens, policy domain.ThrottlePolicy, now func() time.Time,
) (*LoginHandler, error) {
	dummy, err := hasher.Hash(ctx, domain.NewSecret(rand.Text()))
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	return &LoginHandler{users: users, attempts: attempts, hasher: hasher, keyring: keyring, totp: totp,
		tokens: tokens, policy: policy, now: now, dummyHash: dummy}, nil
}

// Handle runs one login. ctx carries the anonymous caller (request id,
// client IP).
func (h *LoginHandler) Handle(ctx context.Context, cmd Login) (AccessToken, error) {
	email := domain.NormalizeEmail(cmd.Username)
	stream := domain.LoginStream(email)
	caller := CallerFrom(ctx)
	attempt, err := h.attempts.Begin(ctx, email, caller.ClientIP, h.now(), h.policy)
	if err != nil {
		return AccessToken{}, err
	}
	if attempt.RetryAfter > 0 {
		ev := domain.NewLoginFailed(email, "", domain.LoginFailureThrottled)
		if err := h.attempts.Finish(ctx, attempt, AttemptResult{Outcome: AttemptThrottled, Stream: stream, Event: &ev}); err != nil {
			return AccessToken{}, err
		}
		return AccessToken{}, tooManyAttempts(attempt.RetryAfter)
	}
	fail := func(outcome AttemptOutcome, userID, reason string, cause error) (AccessToken, error) {
		ev := domain.NewLoginFailed(email, userID, reason)
		if err := h.attempts.Finish(ctx, attempt, AttemptResult{Outcome: outcome, Stream: stream, Event: &ev}); err != nil {
			return AccessToken{}, err
		}
		return AccessToken{}, cause
	}

	acct, err := h.users.FindByEmail(ctx, email)
	found := err == nil
	if err != nil && domain.ErrorKind(err) != domain.KindNotFound {
		return AccessToken{}, err
	}
	hash := h.dummyHash
	if found {
		hash = acct.PasswordHash
	}
	ok, err := h.hasher.Verify(ctx, cmd.Password, hash)
	if err != nil {
		return AccessToken{}, err
	}
	if !found || !ok {
		return fail(AttemptFailed, acct.ID, domain.LoginFailureInvalidCredentials, errInvalidCredentials)
	}

	if acct.TOTPEnabled {
		if cmd.OTP.IsZero() {
			// The password was right: not a guess, so it does not count.
			return fail(AttemptUncounted, acct.ID, domain.LoginFailureOTPRequired, errOTPRequired)
		}
		step, valid, err := checkOTP(h.keyring, h.totp, acct.ID, acct.TOTP, cmd.OTP, h.now())
		if err != nil {
			return AccessToken{}, err
		}
		if valid {
			// Two requests racing with one code: only one claims its step.
			if valid, err = h.users.ClaimTOTPStep(ctx, acct.ID, step); err != nil {
				return AccessToken{}, err
			}
		}
		if !valid {
			return fail(AttemptFailed, acct.ID, domain.LoginFailureOTPInvalid, errOTPInvalid)
		}
	}

	tok, err := h.tokens.Issue(acct.ID, h.now())
	if err != nil {
		return AccessToken{}, err
	}
	ctx = WithCaller(ctx, Caller{UserID: acct.ID, Email: acct.Email, Role: acct.Role, RequestID: caller.RequestID, ClientIP: caller.ClientIP})
	ev := domain.NewLoginSucceeded(email, acct.ID, acct.TOTPEnabled)
	if err := h.attempts.Finish(ctx, attempt, AttemptResult{Outcome: AttemptSucceeded, Stream: stream, Event: &ev}); err != nil {
		return AccessToken{}, err
	}
	return tok, nil
}
