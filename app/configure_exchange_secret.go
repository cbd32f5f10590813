package app

import (
	"context"

	"github.com/tradeops/tradeops/domain"
)

// ConfigureExchangeSecret stores the caller's credentials for an exchange.
type ConfigureExchangeSecret struct {
	Exchange string                   // as given, any case
	Fields   map[string]domain.Secret // the fields present in the request
}

// ConfigureExchangeSecretHandler validates the credentials, seals every
// field under the server's key and stores them with
// secrets.exchange.configured (hint, key id and field names only).
type ConfigureExchangeSecretHandler struct {
	secrets ExchangeSecretRepository
	keyring Keyring
}

func NewConfigureExchangeSecretHandler(secrets ExchangeSecretRepository, keyring Keyring) *ConfigureExchangeSecretHandler {
	return &ConfigureExchangeSecretHandler{secrets: secrets, keyring: keyring}
}

func (h *ConfigureExchangeSecretHandler) Handle(ctx context.Context, cmd ConfigureExchangeSecret) (ExchangeSecretStatus, error) {
	c := CallerFrom(ctx)
	if c.UserID == "" {
		return ExchangeSecretStatus{}, errUnauthenticated
	}
	ex, err := domain.ParseExchange(cmd.Exchange)
	if err != nil {
		return ExchangeSecretStatus{}, err
	}
	creds, err := domain.NewExchangeCredentials(ex, cmd.Fields)
	if err != nil {
		return ExchangeSecretStatus{}, err
	}
	stored := StoredExchangeSecret{UserID: c.UserID, Exchange: ex, Fields: map[string]Sealed{}}
	for _, name := range creds.FieldNames() {
		sealed, err := h.keyring.Seal([]byte(creds.Field(name).Reveal()), exchangeBinding(c.UserID, ex, name))
		if err != nil {
			return ExchangeSecretStatus{}, err
		}
		stored.Fields[name] = sealed
	}
	at, err := h.secrets.Put(ctx, stored, creds.Configured(c.UserID, h.keyring.KeyID()))
	if err != nil {
		return ExchangeSecretStatus{}, err
	}
	return ExchangeSecretStatus{Exchange: ex, Configured: true, APIKeyHint: creds.Hint(), KeyID: h.keyring.KeyID(), UpdatedAt: at}, nil
}
