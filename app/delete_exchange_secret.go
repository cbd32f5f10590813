package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// DeleteExchangeSecretHandler removes the caller's credentials for an
// exchange (secrets.exchange.deleted); none stored is KindNotFound.
type DeleteExchangeSecretHandler struct{ secrets ExchangeSecretRepository }

func NewDeleteExchangeSecretHandler(secrets ExchangeSecretRepository) *DeleteExchangeSecretHandler {
	return &DeleteExchangeSecretHandler{secrets: secrets}
}

func (h *DeleteExchangeSecretHandler) Handle(ctx context.Context, exchange string) error {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return errUnauthenticated
	}
	ex, err := domain.ParseExchange(exchange)
	if err != nil {
		return err
	}
	return h.secrets.Delete(ctx, c.UserID, ex, domain.ExchangeSecretDeletedEvent(c.UserID, ex))
}
