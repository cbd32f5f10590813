package app

import (
	"context"
	"fmt"
	"strings"

	"github.com/tradeops/tradeops/domain"
)

// OpenExchangeCredentialsHandler decrypts a user's stored credentials with
// the server's key: the vault the execution feature signs exchange requests
// with. It opens whichever ciphertext carries the server's key id, so it
// works before, during and after a rotation and after a rollback.
type OpenExchangeCredentialsHandler struct {
	secrets ExchangeSecretRepository
	keyring Keyring
}

func NewOpenExchangeCredentialsHandler(secrets ExchangeSecretRepository, keyring Keyring) *OpenExchangeCredentialsHandler {
	return &OpenExchangeCredentialsHandler{secrets: secrets, keyring: keyring}
}

func (h *OpenExchangeCredentialsHandler) Handle(ctx context.Context, userID string, ex domain.Exchange) (domain.ExchangeCredentials, error) {
	s, err := h.secrets.Get(ctx, userID, ex)
	if err != nil {
		return domain.ExchangeCredentials{}, err
	}
	return h.Open(s)
}

// Open decrypts credentials already read (the test orders read them in
// their deciding transaction).
func (h *OpenExchangeCredentialsHandler) Open(s StoredExchangeSecret) (domain.ExchangeCredentials, error) {
	fields := map[string]domain.Secret{}
	for name, sealed := range s.Fields {
		plain, err := h.keyring.Open(sealed, exchangeBinding(s.UserID, s.Exchange, name))
		if err != nil {
			return domain.ExchangeCredentials{}, undecryptable(s.Exchange, name, sealed, h.keyring.KeyID(), err)
		}
		fields[name] = domain.NewSecret(string(plain))
	}
	return domain.NewExchangeCredentials(s.Exchange, fields)
}

// undecryptable classifies a stored value the server's key cannot open,
// naming the key ids involved (never a key or a ciphertext).
func undecryptable(ex domain.Exchange, field string, s Sealed, serverKeyID string, cause error) error {
	msg := fmt.Sprintf("the stored %s %s cannot be decrypted with this server's key (key id %s); it holds ciphertexts under key id(s) [%s]",
		ex, field, serverKeyID, strings.Join(s.KeyIDs(), ", "))
	if _, ok := s[serverKeyID]; ok {
		msg = fmt.Sprintf("the stored %s %s fails authentication under this server's key (key id %s): it was altered or moved from another row",
			ex, field, serverKeyID)
	}
	return domain.Wrap(fmt.Errorf("open %s %s: %w", ex, field, cause), domain.KindInternal, "secret_undecryptable", msg)
}
