package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/adapters/keyring"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

// newKeyring builds the process's one keyring from ENCRYPTION_KEY.
func newKeyring(key []byte) (*keyring.Keyring, error) {
	k, err := keyring.New(key)
	if err != nil {
		return nil, usageError("ENCRYPTION_KEY: %v", err)
	}
	return k, nil
}

// keyringFactory builds keyrings for the keys of a rotation.
func keyringFactory(key []byte) (app.Keyring, error) { return keyring.New(key) }

// vault is the wired exchange secrets feature (issue #8): its routes and
// the start-up work.
type vault struct {
	routes porthttp.Registrar
	// start records what this server's key means for the latest rotation
	// (activation, or a rollback that freezes rotation). It returns once
	// done or when ctx ends.
	start func(ctx context.Context) error
}

func newVault(pool *pgxpool.Pool, store *eventstore.Store, keys app.Keyring, auth *porthttp.Authenticator, log *slog.Logger) *vault {
	secrets := postgres.NewExchangeSecrets(store)
	rotations := postgres.NewKeyRotations(store)
	routes := porthttp.ExchangeSecretsRoutes(porthttp.ExchangeSecrets{
		Configure: app.NewConfigureExchangeSecretHandler(secrets, keys),
		Delete:    app.NewDeleteExchangeSecretHandler(secrets),
		List:      app.NewListExchangeSecretsHandler(projections.NewExchangeSecretsStatusReader(pool)),
		Reencrypt: app.NewReencryptSecretsHandler(postgres.NewSealedValues(store), rotations, postgres.NewRotationLock(pool),
			keyringFactory, keys.KeyID(), 0),
	}, auth.RequireUser, auth.RequireAdmin)
	record := app.NewRecordKeyRollbackHandler(rotations, keys)
	host, _ := os.Hostname()
	start := func(ctx context.Context) error {
		ctx = app.WithCaller(ctx, app.Caller{Email: "system", RequestID: uuid.NewString()})
		return postgres.Retry(ctx, log, "key rotation start-up", func(ctx context.Context) error {
			rb, err := record.Handle(ctx, host)
			if rb != nil {
				log.Warn("KEY ROTATION ROLLED BACK: this server runs under the key the latest rotation moved away from; "+
					"reencrypt applies and prunes are frozen until `tradeops keys unfreeze --incident ID --reason TEXT`",
					"server_key_id", rb.ToKeyID, "rotation_key_id", rb.FromKeyID)
			}
			return err
		})
	}
	return &vault{routes: routes, start: start}
}
