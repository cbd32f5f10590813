package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// This file holds what the exchange secrets handlers share: the ports
// (implemented in adapters/postgres and projections/) and the read model.

// StoredExchangeSecret is one user's sealed credentials for one exchange:
// field name -> sealed value, each bound to (user id, exchange, field).
type StoredExchangeSecret struct {
	UserID   string
	Exchange domain.Exchange
	Fields   map[string]Sealed
}

// ExchangeSecretRepository stores sealed credentials, each write together
// with its event in one transaction (stream domain.ExchangeSecretsStream).
type ExchangeSecretRepository interface {
	// Put stores s, replacing every field of earlier credentials for the
	// exchange, and appends e; it returns the event's recorded time.
	Put(ctx context.Context, s StoredExchangeSecret, e domain.Event) (time.Time, error)
	// Delete removes the credentials and appends e; KindNotFound when none.
	Delete(ctx context.Context, userID string, ex domain.Exchange, e domain.Event) error
	// Get returns the credentials; KindNotFound when none.
	Get(ctx context.Context, userID string, ex domain.Exchange) (StoredExchangeSecret, error)
}

// ExchangeSecretStatus is one entry of GET /users/exchange-secrets.
type ExchangeSecretStatus struct {
	Exchange   domain.Exchange
	Configured bool
	APIKeyHint string
	// KeyID is the key the credentials were sealed under when stored.
	KeyID     string
	UpdatedAt time.Time
}

// ExchangeSecretsStatus reads the exchange_secrets_status read model.
type ExchangeSecretsStatus interface {
	// CaughtUp reports whether the read model reflects every event of
	// userID's secrets stream.
	CaughtUp(ctx context.Context, userID string) (bool, error)
	// List returns userID's configured entries.
	List(ctx context.Context, userID string) ([]ExchangeSecretStatus, error)
}

// exchangeBinding is what one credential field's ciphertext is bound to.
func exchangeBinding(userID string, ex domain.Exchange, field string) SecretBinding {
	return SecretBinding{Owner: userID, Purpose: string(ex), Field: field}
}
