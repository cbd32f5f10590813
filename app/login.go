package app

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/tradeops/tradeops/domain"
)

// Login is a password (and, with 2FA, one-time code) login.
type Login struct {
	Username string // the email, as typed
	Password domain.Secret
	OTP      domain.Secret // empty when not given
}

// LoginHandler authenticates a user and issues an access token. Every
// attempt, throttled, abandoned and failed-on-our-side ones included,
// becomes exactly one auth.login.* event.
type LoginHandler struct {
	users     UserRepository
	attempts  LoginAttempts
	hasher    PasswordHasher
	keyring   Keyring
	totp      TOTP
	tokens    Tokens
	usernames domain.UsernameKey
	policy    domain.ThrottlePolicy
	clock     Clock
	// dummyHash is verified for unknown emails, so that they cost the same
	// time as a wrong password.
	dummyHash domain.Secret
}

// NewLoginHandler hashes a random password once to get the dummy hash.
func NewLoginHandler(ctx context.Context, users UserRepository, attempts LoginAttempts, hasher PasswordHasher,
	keyring Keyring, totp TOTP, tokens Tokens, usernames domain.UsernameKey, policy domain.ThrottlePolicy, clock Clock,
) (*LoginHandler, error) {
	dummy, err := hasher.Hash(ctx, domain.NewSecret(rand.Text()))
	if err != nil {
		return nil, fmt.Errorf("dummy password hash: %w", err)
	}
	return &LoginHandler{users: users, attempts: attempts, hasher: hasher, keyring: keyring, totp: totp,
		tokens: tokens, usernames: usernames, policy: policy, clock: clock, dummyHash: dummy}, nil
}

// verdict is how an attempt ended: how it counts, the failure reason ("" for
// a success) and the error the caller gets.
type verdict struct {
	outcome AttemptOutcome
	reason  string
	err     error
}

// internalError ends an attempt that failed on our side (database, hashing,
// timeout). It is recorded but not counted: it tested no password, and
// counting it would let an outage, or whoever can provoke one, lock users out.
func internalError(err error) verdict {
	if errors.Is(err, context.DeadlineExceeded) {
		// Out of time, most likely queued for a hashing slot: overloaded.
		err = &domain.Error{Kind: domain.KindUnavailable, Code: "unavailable", Message: "the service is busy; try again shortly",
			RetryAfterSeconds: 1, Err: err}
	}
	return verdict{outcome: AttemptUncounted, reason: domain.LoginFailureInternalError, err: err}
}

// Handle runs one login. ctx carries the anonymous caller (request id,
// client IP). The attempt runs to its end even if ctx is cancelled (the
// client went away): see detach.
func (h *LoginHandler) Handle(ctx context.Context, cmd Login) (AccessToken, error) {
	ctx, cancel := detach(ctx, h.policy)
	defer cancel()
	email := domain.NormalizeEmail(cmd.Username)
	account := h.usernames.Hash(email)
	attempt, err := h.attempts.Begin(ctx, account, domain.ThrottleSource(CallerFrom(ctx).ClientIP), h.clock.Now(), h.policy)
	if err != nil {
		return AccessToken{}, err
	}

	var tok AccessToken
	var v verdict
	acct, err := h.users.FindByEmail(ctx, email)
	found := err == nil
	switch {
	case err != nil && domain.ErrorKind(err) != domain.KindNotFound:
		v = internalError(err)
	case attempt.RetryAfter > 0:
		v = verdict{outcome: AttemptThrottled, reason: domain.LoginFailureThrottled, err: tooManyAttempts(attempt.RetryAfter)}
	default:
		tok, v = h.authenticate(ctx, cmd, acct, found)
	}

	// The event names the account when there is one, else only the keyed
	// hash of what was typed (it may be a password typed in the wrong field).
	var ev domain.Event
	switch {
	case v.outcome == AttemptSucceeded:
		ev = domain.NewLoginSucceeded(acct.Email, acct.ID, acct.TOTPEnabled)
		caller := CallerFrom(ctx)
		ctx = WithCaller(ctx, Caller{UserID: acct.ID, Email: acct.Email, Role: acct.Role, RequestID: caller.RequestID, ClientIP: caller.ClientIP})
	case found:
		ev = domain.NewLoginFailed(acct.Email, acct.ID, v.reason)
	default:
		ev = domain.NewLoginFailedByHash(account, v.reason)
	}
	if err := finishAttempt(ctx, h.attempts, h.policy, attempt, AttemptResult{Outcome: v.outcome, Stream: domain.LoginStream(account), Event: &ev}); err != nil {
		// Unrecorded, the attempt stays pending until SettleInterruptedLogins.
		return AccessToken{}, err
	}
	return tok, v.err
}

// authenticate checks the password (against the dummy hash for an unknown
// account, so that both cost the same) and, with 2FA on, the code.
func (h *LoginHandler) authenticate(ctx context.Context, cmd Login, acct Account, found bool) (AccessToken, verdict) {
	hash := h.dummyHash
	if found {
		hash = acct.PasswordHash
	}
	ok, err := h.hasher.Verify(ctx, cmd.Password, hash)
	if err != nil {
		return AccessToken{}, internalError(err)
	}
	if !found || !ok {
		return AccessToken{}, verdict{outcome: AttemptFailed, reason: domain.LoginFailureInvalidCredentials, err: errInvalidCredentials}
	}

	if acct.TOTPEnabled {
		if cmd.OTP.IsZero() {
			// The password was right: not a guess, so it does not count.
			return AccessToken{}, verdict{outcome: AttemptUncounted, reason: domain.LoginFailureOTPRequired, err: errOTPRequired}
		}
		step, valid, err := checkOTP(h.keyring, h.totp, acct.ID, acct.TOTP, cmd.OTP, h.clock.Now())
		if err != nil {
			return AccessToken{}, internalError(err)
		}
		if valid {
			// Two requests racing with one code: only one claims its step.
			if valid, err = h.users.ClaimTOTPStep(ctx, acct.ID, step); err != nil {
				return AccessToken{}, internalError(err)
			}
		}
		if !valid {
			return AccessToken{}, verdict{outcome: AttemptFailed, reason: domain.LoginFailureOTPInvalid, err: errOTPInvalid}
		}
	}

	tok, err := h.tokens.Issue(acct.ID, h.clock.Now())
	if err != nil {
		return AccessToken{}, internalError(err)
	}
	return tok, verdict{outcome: AttemptSucceeded}
}
