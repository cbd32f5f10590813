package domain

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// LoginStream is the stream of every login attempt for one attempted
// address, account or not: hashing the normalised address gives unknown and
// known emails the same kind of stream name, keeps raw addresses out of
// stream ids, and keeps bursts of attempts out of the user aggregate's
// stream (whose appends then never race a login).
func LoginStream(normalizedEmail string) string {
	sum := sha256.Sum256([]byte(normalizedEmail))
	return "login-" + hex.EncodeToString(sum[:])
}

// Why a login attempt failed, as recorded in auth.login.failure. Whether the
// account exists is deliberately not among them.
const (
	LoginFailureInvalidCredentials = "invalid_credentials"
	LoginFailureOTPRequired        = "otp_required"
	LoginFailureOTPInvalid         = "otp_invalid"
	LoginFailureThrottled          = "throttled"
)

// Login and 2FA-check payloads. Email is the attempted address, normalised;
// UserID is set when it names an account. Never a password, code or token.
type (
	LoginSucceeded struct {
		Email  string `json:"email"`
		UserID string `json:"user_id"`
		// Method is "password" or "password+totp".
		Method string `json:"method"`
	}
	LoginFailed struct {
		Email  string `json:"email"`
		UserID string `json:"user_id,omitempty"`
		Reason string `json:"reason"`
	}
	// TwoFactorCheckFailed records a wrong or throttled code on the 2FA
	// enable/disable endpoints, which count toward the same throttle.
	TwoFactorCheckFailed struct {
		UserID string `json:"user_id"`
		Action string `json:"action"` // "enable" or "disable"
		Reason string `json:"reason"`
	}
)

// NewLoginSucceeded is the auth.login.success event.
func NewLoginSucceeded(email, userID string, withTOTP bool) Event {
	method := "password"
	if withTOTP {
		method = "password+totp"
	}
	return Event{Type: EventLoginSuccess, SchemaVersion: userEventsVersion, Data: LoginSucceeded{Email: email, UserID: userID, Method: method}}
}

// NewLoginFailed is the auth.login.failure event.
func NewLoginFailed(email, userID, reason string) Event {
	return Event{Type: EventLoginFailure, SchemaVersion: userEventsVersion, Data: LoginFailed{Email: email, UserID: userID, Reason: reason}}
}

// NewTwoFactorCheckFailed is the auth.2fa.failure event.
func NewTwoFactorCheckFailed(userID, action, reason string) Event {
	return Event{Type: EventTwoFactorFailure, SchemaVersion: userEventsVersion, Data: TwoFactorCheckFailed{UserID: userID, Action: action, Reason: reason}}
}

// ThrottlePolicy limits failed attempts per account and per client IP in a
// sliding window. Attempts still in flight count too, so firing guesses in
// parallel buys no more than the limit.
type ThrottlePolicy struct {
	PerAccount int
	PerIP      int
	Window     time.Duration
}

// DefaultThrottlePolicy allows 5 failures per account and 20 per IP in 15
// minutes.
var DefaultThrottlePolicy = ThrottlePolicy{PerAccount: 5, PerIP: 20, Window: 15 * time.Minute}

// RecentAttempts are one key's attempts inside the window: the failures'
// times, oldest first, and how many attempts are still in flight.
type RecentAttempts struct {
	Failures []time.Time
	Pending  int
}

// RetryAfter says how long the next attempt must wait; zero allows it.
func (p ThrottlePolicy) RetryAfter(now time.Time, account, ip RecentAttempts) time.Duration {
	return max(p.wait(now, account, p.PerAccount), p.wait(now, ip, p.PerIP))
}

func (p ThrottlePolicy) wait(now time.Time, r RecentAttempts, limit int) time.Duration {
	n := len(r.Failures)
	switch {
	case n >= limit:
		// Allowed again once all but limit-1 failures have left the window.
		return max(r.Failures[n-limit].Add(p.Window).Sub(now), time.Second)
	case n+r.Pending >= limit:
		// In-flight attempts settle within a second or so.
		return time.Second
	}
	return 0
}
