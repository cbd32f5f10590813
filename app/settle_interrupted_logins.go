package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// SettleInterruptedLoginsHandler ends the attempts a dead process left in
// flight (kill -9 or a crash mid-login, or an outcome that could not be
// recorded): each becomes an auth.login.failure with reason "interrupted" on
// its login stream, holding only the username's keyed hash (the attempt's
// account was never recorded), and stops counting; a 2FA code check, which
// shares the throttle, is settled the same way. Only attempts older than
// the policy's InFlight are settled: a younger one may still be running on
// another replica, and an older one cannot be (see
// domain.ThrottlePolicy.AttemptTimeout).
type SettleInterruptedLoginsHandler struct {
	attempts LoginAttempts
	policy   domain.ThrottlePolicy
	clock    Clock
}

func NewSettleInterruptedLoginsHandler(attempts LoginAttempts, policy domain.ThrottlePolicy, clock Clock) *SettleInterruptedLoginsHandler {
	return &SettleInterruptedLoginsHandler{attempts: attempts, policy: policy, clock: clock}
}

// Handle settles the interrupted attempts and says how many there were.
func (h *SettleInterruptedLoginsHandler) Handle(ctx context.Context) (int, error) {
	return h.attempts.SettleStale(ctx, h.clock.Now().Add(-h.policy.InFlight), func(a Attempt) (string, domain.Event) {
		return domain.LoginStream(a.Account), domain.NewLoginFailedByHash(a.Account, domain.LoginFailureInterrupted)
	})
}
