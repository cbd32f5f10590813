package domain

// Role is what a user may do. Admins may do everything operators may, plus the
// admin-only endpoints (all-users audit, risk comparison, key rotation).
type Role string

const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
)

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAdmin, RoleOperator:
		return r, nil
	}
	return "", Errorf(KindInvalid, "invalid_role", "role must be %q or %q", RoleAdmin, RoleOperator)
}
