package domain

// Event type names. They are the audit names of DESIGN §6: stable strings
// stored with every event and shown in the audit log. Never rename one; add a
// new name (and an upcaster for changed payloads) instead.
const (
	EventLoginSuccess         = "auth.login.success"
	EventLoginFailure         = "auth.login.failure"
	EventLogout               = "auth.logout"
	EventTwoFactorEnabled     = "auth.2fa.enabled"
	EventTwoFactorDisabled    = "auth.2fa.disabled"
	EventUserCreated          = "user.created"
	EventUserRoleChanged      = "user.role.changed"
	EventRiskProfileAssigned  = "user.risk_profile.assigned"
	EventSecretConfigured     = "secrets.exchange.configured"
	EventSecretDeleted        = "secrets.exchange.deleted"
	EventExecutionPrepare     = "execution.prepare"
	EventBinanceTestOrderOK   = "execution.binance.test_order.success"
	EventBinanceTestOrderErr  = "execution.binance.test_order.error"
	EventIBKRTestOrderOK      = "execution.ibkr.test_order.success"
	EventIBKRTestOrderErr     = "execution.ibkr.test_order.error"
	EventKeyRotationReencrypt = "security.key_rotation.reencrypt"
	EventKeyRotationPrune     = "security.key_rotation.prune"
)

// Identity events added with users (issue #3).
const (
	EventPasswordChanged  = "user.password.changed"
	EventTwoFactorSetup   = "auth.2fa.setup"
	EventTwoFactorFailure = "auth.2fa.failure"
)

// EventAuditReseal records that the audit hash chain was re-sealed (issue #4).
const EventAuditReseal = "audit.reseal"

// Key rotation events on the keyring stream (issue #8): a server starting
// under the key an applied rotation moved to (activated) or back under the
// key it moved away from (rollback, which freezes rotation), and the
// administrator's explanation that lifts the freeze.
const (
	EventKeyRotationActivated = "security.key_rotation.activated"
	EventKeyRotationRollback  = "security.key_rotation.rollback"
	EventKeyRotationUnfrozen  = "security.key_rotation.unfrozen"
)

// Risk kill switch events (DESIGN §8): an administrator engaged or released
// it (KillSwitch).
const (
	EventKillSwitchEngaged  = "risk.kill_switch.engaged"
	EventKillSwitchReleased = "risk.kill_switch.released"
)
