package domain

import (
	"encoding/json"
	"fmt"
	"time"
)

// userEventsVersion is the schema version of every user and auth payload
// below; bump it (and add an upcaster) when one changes shape.
const userEventsVersion = 1

// UserStream is the event stream of the user with id.
func UserStream(id string) string { return "user-" + id }

// User payloads. Timestamps are UTC with microsecond precision, the
// precision PostgreSQL stores.
type (
	UserCreated struct {
		UserID      string      `json:"user_id"`
		Email       string      `json:"email"`
		Role        Role        `json:"role"`
		RiskProfile RiskProfile `json:"risk_profile"`
	}
	UserRoleChanged struct {
		UserID string `json:"user_id"`
		From   Role   `json:"from"`
		To     Role   `json:"to"`
	}
	RiskProfileAssigned struct {
		UserID string      `json:"user_id"`
		From   RiskProfile `json:"from"`
		To     RiskProfile `json:"to"`
	}
	// PasswordChanged, TwoFactorEnabled, TwoFactorDisabled and LoggedOut
	// revoke every token issued up to TokensValidAfter.
	PasswordChanged struct {
		UserID           string    `json:"user_id"`
		TokensValidAfter time.Time `json:"tokens_valid_after"`
	}
	TwoFactorSetupStarted struct {
		UserID string `json:"user_id"`
	}
	TwoFactorEnabled struct {
		UserID           string    `json:"user_id"`
		TokensValidAfter time.Time `json:"tokens_valid_after"`
	}
	TwoFactorDisabled struct {
		UserID string `json:"user_id"`
		// Recovery is true when an administrator removed 2FA without a code.
		Recovery         bool      `json:"recovery"`
		TokensValidAfter time.Time `json:"tokens_valid_after"`
	}
	LoggedOut struct {
		UserID           string    `json:"user_id"`
		TokensValidAfter time.Time `json:"tokens_valid_after"`
	}
)

// User is the user aggregate, rebuilt from its stream. Credentials (password
// hash, TOTP seed) are not part of it: events never carry them, so they live
// beside the aggregate and are written in the same transaction.
type User struct {
	id               string
	email            Email
	role             Role
	riskProfile      RiskProfile
	totpPending      bool
	totpEnabled      bool
	tokensValidAfter time.Time
	version          int64
	changes          []Event
}

// NewUser creates a user with the default risk profile and records
// user.created.
func NewUser(id string, email Email, role Role) (*User, error) {
	if id == "" || email.IsZero() {
		return nil, Errorf(KindInvalid, "invalid_user", "a user needs an id and an email")
	}
	if _, err := ParseRole(string(role)); err != nil {
		return nil, err
	}
	u := &User{}
	u.record(EventUserCreated, UserCreated{UserID: id, Email: email.String(), Role: role, RiskProfile: DefaultRiskProfile})
	return u, nil
}

// LoadUser rebuilds a user from its stream, oldest event first.
func LoadUser(history []StoredEvent) (*User, error) {
	if len(history) == 0 {
		return nil, Errorf(KindNotFound, "user_not_found", "no such user")
	}
	u := &User{}
	for i, e := range history {
		if err := u.applyStored(e); err != nil {
			return nil, fmt.Errorf("user stream event %d (%s): %w", i+1, e.Type, err)
		}
		u.version++
	}
	return u, nil
}

func (u *User) ID() string                  { return u.id }
func (u *User) Email() Email                { return u.email }
func (u *User) Role() Role                  { return u.role }
func (u *User) RiskProfile() RiskProfile    { return u.riskProfile }
func (u *User) TOTPEnabled() bool           { return u.totpEnabled }
func (u *User) TokensValidAfter() time.Time { return u.tokensValidAfter }

// Version is the stream version the user was loaded at (0 for a new user):
// the expected version of the append that stores Changes.
func (u *User) Version() int64 { return u.version }

// Changes are the events recorded since the user was loaded or created.
func (u *User) Changes() []Event { return u.changes }

// ChangeRole sets the role; setting the current one records nothing.
func (u *User) ChangeRole(r Role) error {
	if _, err := ParseRole(string(r)); err != nil {
		return err
	}
	if r != u.role {
		u.record(EventUserRoleChanged, UserRoleChanged{UserID: u.id, From: u.role, To: r})
	}
	return nil
}

// AssignRiskProfile sets the profile; assigning the current one records
// nothing, so configuration re-applied at every start adds no noise.
func (u *User) AssignRiskProfile(p RiskProfile) error {
	if _, err := ParseRiskProfile(string(p)); err != nil {
		return err
	}
	if p != u.riskProfile {
		u.record(EventRiskProfileAssigned, RiskProfileAssigned{UserID: u.id, From: u.riskProfile, To: p})
	}
	return nil
}

// ChangePassword records that the password changed at now; the caller
// stores the new hash beside the aggregate.
func (u *User) ChangePassword(now time.Time) {
	u.record(EventPasswordChanged, PasswordChanged{UserID: u.id, TokensValidAfter: precise(now)})
}

// StartTwoFactorSetup records a pending enrolment; the caller stores the
// (encrypted) seed. Re-running it replaces a pending seed, but an active one
// must be disabled first, with a valid code.
func (u *User) StartTwoFactorSetup() error {
	if u.totpEnabled {
		return Errorf(KindConflict, "2fa_already_enabled", "two-factor authentication is already enabled; disable it first")
	}
	u.record(EventTwoFactorSetup, TwoFactorSetupStarted{UserID: u.id})
	return nil
}

// EnableTwoFactor activates the pending enrolment once its first code was
// verified by the caller.
func (u *User) EnableTwoFactor(now time.Time) error {
	switch {
	case u.totpEnabled:
		return Errorf(KindConflict, "2fa_already_enabled", "two-factor authentication is already enabled")
	case !u.totpPending:
		return Errorf(KindConflict, "2fa_not_set_up", "start two-factor setup first (POST /auth/2fa/setup)")
	}
	u.record(EventTwoFactorEnabled, TwoFactorEnabled{UserID: u.id, TokensValidAfter: precise(now)})
	return nil
}

// DisableTwoFactor turns 2FA off. recovery marks an administrator's removal
// without a code (the caller verified a code otherwise).
func (u *User) DisableTwoFactor(now time.Time, recovery bool) error {
	// An administrator may also clear a pending setup; a user just runs
	// setup again.
	if !u.totpEnabled && !(recovery && u.totpPending) {
		return Errorf(KindConflict, "2fa_not_enabled", "two-factor authentication is not enabled")
	}
	u.record(EventTwoFactorDisabled, TwoFactorDisabled{UserID: u.id, Recovery: recovery, TokensValidAfter: precise(now)})
	return nil
}

// Logout revokes every token issued up to now.
func (u *User) Logout(now time.Time) {
	u.record(EventLogout, LoggedOut{UserID: u.id, TokensValidAfter: precise(now)})
}

// TokenRevoked reports whether a token issued at issuedAt predates the
// user's last logout, password or 2FA change. Both sides carry microseconds,
// so a token issued in the same second as a logout, but before it, is
// revoked, and one issued right after it is not.
func TokenRevoked(issuedAt, tokensValidAfter time.Time) bool {
	return !precise(issuedAt).After(tokensValidAfter)
}

func precise(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

func (u *User) record(typ string, data any) {
	u.apply(data)
	u.changes = append(u.changes, Event{Type: typ, SchemaVersion: userEventsVersion, Data: data})
}

func (u *User) applyStored(e StoredEvent) error {
	var (
		data any
		err  error
	)
	switch e.Type {
	case EventUserCreated:
		data, err = decode[UserCreated](e)
	case EventUserRoleChanged:
		data, err = decode[UserRoleChanged](e)
	case EventRiskProfileAssigned:
		data, err = decode[RiskProfileAssigned](e)
	case EventPasswordChanged:
		data, err = decode[PasswordChanged](e)
	case EventTwoFactorSetup:
		data, err = decode[TwoFactorSetupStarted](e)
	case EventTwoFactorEnabled:
		data, err = decode[TwoFactorEnabled](e)
	case EventTwoFactorDisabled:
		data, err = decode[TwoFactorDisabled](e)
	case EventLogout:
		data, err = decode[LoggedOut](e)
	default:
		return nil // other features' events on the stream do not change the user
	}
	if err != nil {
		return err
	}
	u.apply(data)
	return nil
}

func decode[T any](e StoredEvent) (T, error) { return decodeAt[T](e, userEventsVersion) }

// decodeAt reads e's payload, which must be at schema version want.
func decodeAt[T any](e StoredEvent, want int) (T, error) {
	var v T
	if e.SchemaVersion != want {
		return v, fmt.Errorf("schema version %d not understood (want %d)", e.SchemaVersion, want)
	}
	if err := json.Unmarshal(e.Data, &v); err != nil {
		return v, fmt.Errorf("payload: %w", err)
	}
	return v, nil
}

func (u *User) apply(data any) {
	switch d := data.(type) {
	case UserCreated:
		u.id, u.email, u.role, u.riskProfile = d.UserID, Email{addr: d.Email}, d.Role, d.RiskProfile
	case UserRoleChanged:
		u.role = d.To
	case RiskProfileAssigned:
		u.riskProfile = d.To
	case PasswordChanged:
		u.tokensValidAfter = d.TokensValidAfter
	case TwoFactorSetupStarted:
		u.totpPending = true
	case TwoFactorEnabled:
		u.totpPending, u.totpEnabled, u.tokensValidAfter = false, true, d.TokensValidAfter
	case TwoFactorDisabled:
		u.totpPending, u.totpEnabled, u.tokensValidAfter = false, false, d.TokensValidAfter
	case LoggedOut:
		u.tokensValidAfter = d.TokensValidAfter
	}
}
