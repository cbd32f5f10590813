package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/app"
)

// sealedColumns lists every JSONB column holding app.Sealed values
// ({"<key id hex>": ciphertext, ...}). Whatever the keyring protects must be
// listed here, so the key check at start sees it: exchange secrets add a
// row when their table exists. Identifiers are constants, never input.
var sealedColumns = []struct{ kind, table, column string }{
	{"totp_seed", "user_totp", "seed"},
}

// SealedInventory implements app.SealedInventory over sealedColumns.
type SealedInventory struct{ pool *pgxpool.Pool }

func NewSealedInventory(pool *pgxpool.Pool) *SealedInventory { return &SealedInventory{pool: pool} }

// CountSealed implements app.SealedInventory: per kind, the number of
// values and, per key id, the values holding a ciphertext under it. Only
// the JSON keys are read, never a ciphertext.
func (s *SealedInventory) CountSealed(ctx context.Context) ([]app.SealedCount, error) {
	out := make([]app.SealedCount, 0, len(sealedColumns))
	for _, c := range sealedColumns {
		// The first row (NULL key id) is the number of values.
		rows, err := s.pool.Query(ctx, fmt.Sprintf(`SELECT NULL::text, count(*) FROM %[1]s
			UNION ALL SELECT k, count(*) FROM %[1]s, jsonb_object_keys(%[2]s) AS k GROUP BY k`, c.table, c.column))
		if err != nil {
			return nil, fmt.Errorf("count %s key ids: %w", c.kind, err)
		}
		sc := app.SealedCount{Kind: c.kind, ByKeyID: map[string]int{}}
		for rows.Next() {
			var id *string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				rows.Close()
				return nil, fmt.Errorf("count %s key ids: %w", c.kind, err)
			}
			if id == nil {
				sc.Values = n
			} else {
				sc.ByKeyID[*id] = n
			}
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("count %s key ids: %w", c.kind, err)
		}
		out = append(out, sc)
	}
	return out, nil
}
