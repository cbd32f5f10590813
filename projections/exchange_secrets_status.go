package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// ExchangeSecretsStatus is the exchange_secrets_status projection: one row
// per configured exchange secret — hint, key id, time — from
// secrets.exchange.configured, removed by secrets.exchange.deleted. A
// security.key_rotation.prune moves the key id of the rows under a dropped
// key to the kept one (prune refuses unless every value holds the kept
// key), so key_id is the key the secret is encrypted under once a rotation
// is complete, and the key it was stored under before. It backs GET
// /users/exchange-secrets; secrets themselves never reach it.
type ExchangeSecretsStatus struct{}

func (ExchangeSecretsStatus) Name() string     { return "exchange_secrets_status" }
func (ExchangeSecretsStatus) Version() int     { return 1 }
func (ExchangeSecretsStatus) Tables() []string { return []string{secretsStatusTable} }

const secretsStatusTable = "exchange_secrets_status"

type statusKey struct{ userID, exchange string }

type statusRow struct {
	hint, keyID string
	at          time.Time
}

// Apply folds each run of secrets events to the last state of each (user,
// exchange) it touches and writes it with one DELETE and one upsert,
// set-based; a prune between runs is one UPDATE, in its place in the order.
func (ExchangeSecretsStatus) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	table := t.Of(secretsStatusTable).Sanitize()
	final := map[statusKey]*statusRow{}
	for _, e := range events {
		switch e.Type {
		case domain.EventSecretConfigured:
			var d domain.ExchangeSecretConfigured
			if err := decodePayload(e, &d); err != nil {
				return err
			}
			final[statusKey{d.UserID, string(d.Exchange)}] = &statusRow{hint: d.APIKeyHint, keyID: d.KeyID, at: e.RecordedAt}
		case domain.EventSecretDeleted:
			var d domain.ExchangeSecretDeleted
			if err := decodePayload(e, &d); err != nil {
				return err
			}
			final[statusKey{d.UserID, string(d.Exchange)}] = nil
		case domain.EventKeyRotationPrune:
			var d domain.KeysPruned
			if err := decodePayload(e, &d); err != nil {
				return err
			}
			if err := writeStatus(ctx, tx, table, final); err != nil {
				return err
			}
			final = map[statusKey]*statusRow{}
			if _, err := tx.Exec(ctx, `UPDATE `+table+` SET key_id = $1 WHERE key_id = ANY($2::text[])`,
				d.KeptKeyID, slices.Collect(maps.Keys(d.Dropped))); err != nil {
				return err
			}
		}
	}
	return writeStatus(ctx, tx, table, final)
}

func writeStatus(ctx context.Context, tx Tx, table string, final map[statusKey]*statusRow) error {
	var delUsers, delExchanges, users, exchanges, hints, keyIDs []string
	var ats []time.Time
	for k, r := range final {
		if r == nil {
			delUsers, delExchanges = append(delUsers, k.userID), append(delExchanges, k.exchange)
			continue
		}
		users, exchanges = append(users, k.userID), append(exchanges, k.exchange)
		hints, keyIDs, ats = append(hints, r.hint), append(keyIDs, r.keyID), append(ats, r.at)
	}
	if len(delUsers) > 0 {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` s USING unnest($1::uuid[], $2::text[]) AS d(user_id, exchange)
			WHERE s.user_id = d.user_id AND s.exchange = d.exchange`, delUsers, delExchanges); err != nil {
			return err
		}
	}
	if len(users) > 0 {
		if _, err := tx.Exec(ctx, `INSERT INTO `+table+` (user_id, exchange, api_key_hint, key_id, updated_at)
			SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
			ON CONFLICT (user_id, exchange) DO UPDATE SET api_key_hint = excluded.api_key_hint,
				key_id = excluded.key_id, updated_at = excluded.updated_at`, users, exchanges, hints, keyIDs, ats); err != nil {
			return err
		}
	}
	return nil
}

// secretsEventsVersion is the payload version this projection reads (of
// the secrets events and of prune).
const secretsEventsVersion = 1

func decodePayload(e eventstore.Event, v any) error {
	if e.SchemaVersion != secretsEventsVersion {
		return &DataError{EventID: e.ID, Err: fmt.Errorf("%s schema version %d not understood", e.Type, e.SchemaVersion)}
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return &DataError{EventID: e.ID, Err: fmt.Errorf("%s payload: %w", e.Type, err)}
	}
	return nil
}
