package domain

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"time"
)

// usernameKeyLabel names (and versions) the key derived from SECRET_KEY for
// hashing attempted usernames; changing it changes every login stream and
// throttle key.
const usernameKeyLabel = "tradeops/login-username/v1"

// UsernameKey hashes attempted usernames. What a login form's username field
// holds may be a password typed in the wrong field, so it is never stored:
// login streams, throttle keys and the events of unknown accounts carry its
// keyed hash instead. The hash is keyed so that a leaked event store or
// database dump cannot be searched with a password dictionary (an unkeyed
// SHA-256 of a short text is cracked offline in seconds). The zero value is
// unusable: build one with NewUsernameKey.
type UsernameKey struct {
	key []byte
}

// NewUsernameKey derives the key from the server's secret key:
// HMAC-SHA256(secretKey, "tradeops/login-username/v1"). Rotating SECRET_KEY
// therefore starts new login streams; earlier events keep their old hashes.
func NewUsernameKey(secretKey []byte) UsernameKey {
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte(usernameKeyLabel))
	return UsernameKey{key: m.Sum(nil)}
}

// Hash is the hex HMAC-SHA256 of the normalised username, as stored in
// username_hmac fields, login stream ids and the throttle's keys.
func (k UsernameKey) Hash(username string) string {
	m := hmac.New(sha256.New, k.key)
	m.Write([]byte(NormalizeEmail(username)))
	return hex.EncodeToString(m.Sum(nil))
}

// The key never prints.
func (UsernameKey) String() string       { return redacted }
func (UsernameKey) GoString() string     { return redacted }
func (UsernameKey) LogValue() slog.Value { return slog.StringValue(redacted) }

// LoginStream is the stream of every login attempt for one attempted
// username, account or not, named by its keyed hash (UsernameKey.Hash): known
// and unknown usernames get the same kind of stream name, stream ids reveal
// neither an address nor a mistyped password, and bursts of attempts stay
// out of the user aggregate's stream (whose appends then never race a login).
func LoginStream(usernameHash string) string {
	return "login-" + usernameHash
}

// Why a login attempt failed, as recorded in auth.login.failure. Whether the
// account exists is deliberately not among them.
const (
	LoginFailureInvalidCredentials = "invalid_credentials"
	LoginFailureOTPRequired        = "otp_required"
	LoginFailureOTPInvalid         = "otp_invalid"
	LoginFailureThrottled          = "throttled"
	// LoginFailureInternalError: the attempt failed on our side (database,
	// hashing, timeout); it says nothing about the password.
	LoginFailureInternalError = "internal_error"
	// LoginFailureInterrupted: the process running the attempt died (kill -9,
	// crash) before it ended; another process settled it later.
	LoginFailureInterrupted = "interrupted"
)

// Login and 2FA-check payloads. Never a password, code or token, and never
// the typed username: an attempt names its account (Email, normalised, and
// UserID) when it is known to exist, otherwise only the keyed hash of what
// was typed (UsernameHMAC).
type (
	LoginSucceeded struct {
		Email  string `json:"email"`
		UserID string `json:"user_id"`
		// Method is "password" or "password+totp".
		Method string `json:"method"`
	}
	LoginFailed struct {
		Email        string `json:"email,omitempty"`
		UserID       string `json:"user_id,omitempty"`
		UsernameHMAC string `json:"username_hmac,omitempty"`
		Reason       string `json:"reason"`
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

// NewLoginFailed is the auth.login.failure event of an attempt on an
// existing account.
func NewLoginFailed(email, userID, reason string) Event {
	return Event{Type: EventLoginFailure, SchemaVersion: userEventsVersion, Data: LoginFailed{Email: email, UserID: userID, Reason: reason}}
}

// NewLoginFailedByHash is the auth.login.failure event of an attempt whose
// username names no account (or was never looked up): it holds only the
// username's keyed hash.
func NewLoginFailedByHash(usernameHMAC, reason string) Event {
	return Event{Type: EventLoginFailure, SchemaVersion: userEventsVersion, Data: LoginFailed{UsernameHMAC: usernameHMAC, Reason: reason}}
}

// NewTwoFactorCheckFailed is the auth.2fa.failure event.
func NewTwoFactorCheckFailed(userID, action, reason string) Event {
	return Event{Type: EventTwoFactorFailure, SchemaVersion: userEventsVersion, Data: TwoFactorCheckFailed{UserID: userID, Action: action, Reason: reason}}
}

// ThrottlePolicy says when a login attempt (or a 2FA code check) must wait.
//
// Per client IP the limit is strict: PerIP failures in a sliding Window, for
// all accounts together, and the IP waits until the oldest leaves the window.
//
// Per account it is a progressive delay with a short cap, so that guessing
// stays slow but nobody can lock the real user out for long: the first
// FreeFailures failures in the window cost nothing; after each further one
// the next attempt waits FirstDelay, doubled per failure, at most MaxDelay,
// counted from the latest failure.
//
// Attempts still in flight count as the failures they may become, so firing
// guesses in parallel buys nothing; but an attempt pending for longer than
// InFlight was left by a process that died and no longer counts.
type ThrottlePolicy struct {
	PerIP        int
	Window       time.Duration
	FreeFailures int
	FirstDelay   time.Duration
	MaxDelay     time.Duration
	InFlight     time.Duration
}

// DefaultThrottlePolicy: 20 failures per IP in 15 minutes; per account 3
// free failures, then 1 s, 2 s, 4 s ... up to 60 s; in-flight attempts count
// for at most 30 s (an attempt runs for at most 20 s, and 5 s more to be
// recorded).
var DefaultThrottlePolicy = ThrottlePolicy{
	PerIP: 20, Window: 15 * time.Minute,
	FreeFailures: 3, FirstDelay: time.Second, MaxDelay: time.Minute,
	InFlight: 30 * time.Second,
}

// AttemptTimeout bounds how long an attempt runs, detached from its request
// (it ends even when the client goes away): two thirds of InFlight, room to
// queue for a password-hashing slot during a burst.
func (p ThrottlePolicy) AttemptTimeout() time.Duration { return p.InFlight * 2 / 3 }

// FinishTimeout bounds recording an attempt's outcome, after AttemptTimeout:
// a sixth of InFlight. The last sixth is a margin (clock skew between
// replicas), so an attempt pending for longer than InFlight is surely dead.
func (p ThrottlePolicy) FinishTimeout() time.Duration { return p.InFlight / 6 }

// inFlightWait is how long an attempt waits when attempts still in flight
// may take the key over its limit: they settle within a second or so.
const inFlightWait = time.Second

// RecentAttempts are one key's attempts begun inside the window, oldest
// first: the failures, and the attempts still pending.
type RecentAttempts struct {
	Failures []time.Time
	Pending  []time.Time
}

// RetryAfter says how long the next attempt must wait; zero allows it.
func (p ThrottlePolicy) RetryAfter(now time.Time, account, ip RecentAttempts) time.Duration {
	return max(p.accountWait(now, account), p.ipWait(now, ip))
}

// AccountDelay is how long an account's next attempt waits after its
// failures-th failure in the window.
func (p ThrottlePolicy) AccountDelay(failures int) time.Duration {
	if failures <= p.FreeFailures {
		return 0
	}
	d := p.FirstDelay
	for i := p.FreeFailures + 1; i < failures && d < p.MaxDelay; i++ {
		d *= 2
	}
	return min(d, p.MaxDelay)
}

func (p ThrottlePolicy) accountWait(now time.Time, r RecentAttempts) time.Duration {
	var wait time.Duration
	n := len(r.Failures)
	if n > 0 {
		wait = max(r.Failures[n-1].Add(p.AccountDelay(n)).Sub(now), 0)
	}
	if pending := p.inFlight(now, r.Pending); pending > 0 && p.AccountDelay(n+pending) > 0 {
		wait = max(wait, inFlightWait)
	}
	return wait
}

func (p ThrottlePolicy) ipWait(now time.Time, r RecentAttempts) time.Duration {
	n := len(r.Failures)
	switch {
	case n >= p.PerIP:
		// Allowed again once all but PerIP-1 failures have left the window.
		return max(r.Failures[n-p.PerIP].Add(p.Window).Sub(now), time.Second)
	case n+p.inFlight(now, r.Pending) >= p.PerIP:
		return inFlightWait
	}
	return 0
}

// inFlight counts the pending attempts that may still be running.
func (p ThrottlePolicy) inFlight(now time.Time, pending []time.Time) int {
	n := 0
	for _, at := range pending {
		if now.Sub(at) < p.InFlight {
			n++
		}
	}
	return n
}

// ThrottleSource is the source a client address is throttled as: an IPv4
// address itself, an IPv6 address its /64. One IPv6 host usually holds a
// whole /64 (SLAAC, privacy addresses) and can hop across it at will, so a
// per-address limit would not hold it back. Anything else is kept as is.
func ThrottleSource(clientIP string) string {
	a, err := netip.ParseAddr(clientIP)
	if err != nil || a.Unmap().Is4() {
		return clientIP
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return clientIP
	}
	return p.String()
}
