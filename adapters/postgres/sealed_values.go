package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// SealedValues reads and extends every value the keyring protects — the
// fields of exchange_secrets rows and the seeds of user_totp rows — for key
// rotation (app.SealedValues). It writes the tables directly, never
// through the repositories that own them: rotation changes no aggregate and
// records one event per run.
type SealedValues struct {
	store *eventstore.Store
	pool  *pgxpool.Pool
}

func NewSealedValues(store *eventstore.Store) *SealedValues {
	return &SealedValues{store: store, pool: store.Pool()}
}

// recordsSQL lists both tables in (owner, purpose) order after a keyset
// cursor; each branch is an index range scan on its primary key, so a batch
// costs the same at the start and at the end of a large table. A TOTP seed
// is a record with one field, TOTPField. The tables never share a purpose
// (exchange names are upper case), so (owner, purpose) is unique.
const recordsSQL = `
SELECT owner::text, purpose, value FROM (
	(SELECT user_id AS owner, $3::text AS purpose, jsonb_build_object($4::text, seed) AS value FROM user_totp
		WHERE user_id >= $1 AND (user_id, $3::text) > ($1, $2) ORDER BY user_id LIMIT $5)
	UNION ALL
	(SELECT user_id, exchange, fields FROM exchange_secrets
		WHERE (user_id, exchange) > ($1, $2) ORDER BY user_id, exchange LIMIT $5)
) r ORDER BY owner, purpose LIMIT $5`

const zeroUUID = "00000000-0000-0000-0000-000000000000"

// Records implements app.SealedValues.
func (s *SealedValues) Records(ctx context.Context, after *app.SealedCursor, limit int) ([]app.SealedRecord, error) {
	c := app.SealedCursor{Owner: zeroUUID}
	if after != nil {
		c = *after
	}
	rows, err := s.pool.Query(ctx, recordsSQL, c.Owner, c.Purpose, app.TOTPPurpose, app.TOTPField, limit)
	if err != nil {
		return nil, fmt.Errorf("read sealed values: %w", err)
	}
	recs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (app.SealedRecord, error) {
		var r app.SealedRecord
		var raw []byte
		if err := row.Scan(&r.Owner, &r.Purpose, &raw); err != nil {
			return r, err
		}
		if err := json.Unmarshal(raw, &r.Values); err != nil {
			return r, fmt.Errorf("sealed values of %s/%s: %w", r.Owner, r.Purpose, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read sealed values: %w", err)
	}
	return recs, nil
}

// AddCiphertexts implements app.SealedValues with one set-based UPDATE per
// table in one transaction. Each row is written only if it still holds
// exactly what was read (jsonb equality): a user's PUT, a new TOTP seed or a
// delete since then is never overwritten, and a rerun sees the new value.
// What is written is what was read plus the new key's ciphertexts, so a
// rerun finds them and adds nothing (idempotent).
func (s *SealedValues) AddCiphertexts(ctx context.Context, adds []app.SealedAddition) ([]int, error) {
	type update struct {
		owners, purposes, olds, news []string
		index                        map[app.SealedCursor]int
	}
	totp := update{index: map[app.SealedCursor]int{}}
	secrets := update{index: map[app.SealedCursor]int{}}
	for i, a := range adds {
		old, next := a.Record.Values, map[string]app.Sealed{}
		for field, sealed := range old {
			next[field] = maps.Clone(sealed)
			if ct, ok := a.Add[field]; ok {
				next[field][a.KeyID] = ct
			}
		}
		// As stored: a TOTP seed column holds the one sealed value itself.
		u, oldV, nextV := &secrets, any(old), any(next)
		if a.Record.Purpose == app.TOTPPurpose {
			u, oldV, nextV = &totp, old[app.TOTPField], next[app.TOTPField]
		}
		oldJSON, err := json.Marshal(oldV)
		if err != nil {
			return nil, err
		}
		nextJSON, err := json.Marshal(nextV)
		if err != nil {
			return nil, err
		}
		u.owners, u.purposes = append(u.owners, a.Record.Owner), append(u.purposes, a.Record.Purpose)
		u.olds, u.news = append(u.olds, string(oldJSON)), append(u.news, string(nextJSON))
		u.index[app.SealedCursor{Owner: a.Record.Owner, Purpose: a.Record.Purpose}] = i
	}
	written := map[app.SealedCursor]bool{}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, q := range []struct {
			u   *update
			sql string
		}{
			{&totp, `UPDATE user_totp t SET seed = u.new::jsonb
				FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(owner, purpose, old, new)
				WHERE t.user_id = u.owner AND t.seed = u.old::jsonb
				RETURNING t.user_id::text, u.purpose`},
			{&secrets, `UPDATE exchange_secrets e SET fields = u.new::jsonb
				FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) AS u(owner, purpose, old, new)
				WHERE e.user_id = u.owner AND e.exchange = u.purpose AND e.fields = u.old::jsonb
				RETURNING e.user_id::text, e.exchange`},
		} {
			if len(q.u.owners) == 0 {
				continue
			}
			rows, err := tx.Query(ctx, q.sql, q.u.owners, q.u.purposes, q.u.olds, q.u.news)
			if err != nil {
				return err
			}
			var c app.SealedCursor
			_, err = pgx.ForEachRow(rows, []any{&c.Owner, &c.Purpose}, func() error {
				written[c] = true
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("add ciphertexts: %w", err)
	}
	var changed []int
	for _, u := range []update{totp, secrets} {
		for c, i := range u.index {
			if !written[c] {
				changed = append(changed, i)
			}
		}
	}
	return changed, nil
}

// censusSQL counts the sealed values, and per key id those holding a
// ciphertext under it (a value holds at most one per key id).
const censusSQL = `
WITH v AS (
	SELECT seed AS value FROM user_totp
	UNION ALL
	SELECT f.value FROM exchange_secrets, jsonb_each(fields) f
)
SELECT NULL::text, count(*) FROM v
UNION ALL
SELECT k, count(*) FROM v, jsonb_object_keys(v.value) k GROUP BY k`

// Census implements app.SealedValues.
func (s *SealedValues) Census(ctx context.Context) (app.SealedCensus, error) {
	return census(ctx, s.pool)
}

func census(ctx context.Context, q eventstore.Querier) (app.SealedCensus, error) {
	c := app.SealedCensus{ByKeyID: map[string]int{}}
	rows, err := q.Query(ctx, censusSQL)
	if err != nil {
		return c, fmt.Errorf("count sealed values: %w", err)
	}
	var id *string
	var n int
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		if id == nil {
			c.Values = n
		} else {
			c.ByKeyID[*id] = n
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("count sealed values: %w", err)
	}
	return c, nil
}

// Prune implements app.SealedValues. A value is only rewritten when it
// holds a ciphertext under keep (and, for credentials, when every field of
// its row does), so one stored meanwhile by a server under another key is
// left whole; the counts decide sees are those of the census before.
func (s *SealedValues) Prune(ctx context.Context, keep string, decide func(*domain.KeyRotation, app.SealedCensus) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		k, err := loadKeyRotation(ctx, s.store, tx)
		if err != nil {
			return err
		}
		c, err := census(ctx, tx)
		if err != nil {
			return err
		}
		if err := decide(k, c); err != nil {
			return err
		}
		if len(k.Changes()) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE user_totp SET seed = jsonb_build_object($1::text, seed -> $1)
			WHERE seed ? $1 AND seed - $1 <> '{}'::jsonb`, keep); err != nil {
			return fmt.Errorf("prune TOTP seeds: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE exchange_secrets e
			SET fields = (SELECT jsonb_object_agg(f.key, jsonb_build_object($1::text, f.value -> $1)) FROM jsonb_each(e.fields) f)
			WHERE NOT EXISTS (SELECT 1 FROM jsonb_each(e.fields) f WHERE NOT f.value ? $1)
			AND EXISTS (SELECT 1 FROM jsonb_each(e.fields) f WHERE f.value - $1 <> '{}'::jsonb)`, keep); err != nil {
			return fmt.Errorf("prune exchange secrets: %w", err)
		}
		return appendKeyRotation(ctx, s.store, tx, k)
	})
}
