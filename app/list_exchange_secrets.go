package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// ListExchangeSecretsHandler answers GET /users/exchange-secrets from the
// exchange_secrets_status read model: one entry per exchange, configured or
// missing. It reads its own writes: it first waits, briefly, until the read
// model has applied every event of the caller's secrets stream, so a GET
// right after a PUT or DELETE shows it; rather than answer stale after the
// bound, it reports the read model unavailable.
type ListExchangeSecretsHandler struct {
	status ExchangeSecretsStatus
	// wait bounds the wait; poll is how often the read model is checked.
	wait, poll time.Duration
}

func NewListExchangeSecretsHandler(status ExchangeSecretsStatus) *ListExchangeSecretsHandler {
	return &ListExchangeSecretsHandler{status: status, wait: 2 * time.Second, poll: 10 * time.Millisecond}
}

var errStatusBehind = &domain.Error{Kind: domain.KindUnavailable, Code: "unavailable", RetryAfterSeconds: 1,
	Message: "the secrets status is still catching up with your latest change; retry shortly"}

func (h *ListExchangeSecretsHandler) Handle(ctx context.Context) ([]ExchangeSecretStatus, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return nil, errUnauthenticated
	}
	if err := h.waitCaughtUp(ctx, c.UserID); err != nil {
		return nil, err
	}
	entries, err := h.status.List(ctx, c.UserID)
	if err != nil {
		return nil, err
	}
	out := make([]ExchangeSecretStatus, len(domain.Exchanges))
	for i, ex := range domain.Exchanges {
		out[i] = ExchangeSecretStatus{Exchange: ex}
		for _, e := range entries {
			if e.Exchange == ex {
				out[i] = e
			}
		}
	}
	return out, nil
}

func (h *ListExchangeSecretsHandler) waitCaughtUp(ctx context.Context, userID string) error {
	deadline := time.Now().Add(h.wait)
	for {
		ok, err := h.status.CaughtUp(ctx, userID)
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return errStatusBehind
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(h.poll):
		}
	}
}
