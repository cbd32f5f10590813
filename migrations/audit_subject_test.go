package migrations_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
	"github.com/tradeops/tradeops/migrations"
	"github.com/tradeops/tradeops/projections"
)

// Migration 005 brings an audit_log projected by version 1 (no subject) to
// version 2 in place: the rows it leaves equal, row for row, those a rebuild
// by the current projection writes, and the projection is not stale.
func TestAuditSubjectMigrationEqualsARebuild(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url, drop := testdb.Create(ctx, t)
	t.Cleanup(drop)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	m, err := migrate.NewMigrator(ctx, conn, migrations.VersionTable)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.LoadMigrations(migrations.Files); err != nil {
		t.Fatal(err)
	}
	if err := m.MigrateTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := eventstore.New(pool)

	const user, admin = "0b7e8a52-3c1f-4e55-9d0a-6f4f1a2b3c4d", "7a1d2c3b-0000-4000-8000-000000000001"
	long := strings.Repeat("x", domain.MaxSubjectLen+1)
	for _, e := range []struct{ stream, actor, typ, data string }{
		{domain.UserStream(user), admin, domain.EventUserRoleChanged, `{"user_id":"` + user + `","from":"operator","to":"admin"}`},
		{domain.LoginStream("ops@example.com"), "", domain.EventLoginFailure, `{"email":"ops@example.com","user_id":"` + user + `","reason":"invalid_credentials"}`},
		{domain.LoginStream("nobody@example.com"), "", domain.EventLoginFailure, `{"email":"nobody@example.com","reason":"invalid_credentials"}`},
		{"execution-1", user, domain.EventExecutionPrepare, `{"symbol":"BTCUSDT"}`},
		{"x-1", "", "test.escaped", `{"user\u005fid":"` + user + `"}`},
		{"x-2", "", "test.upper", `{"USER_ID":"` + user + `"}`},
		{"x-3", "", "test.number", `{"user_id":42}`},
		{"x-4", "", "test.empty", `{"user_id":""}`},
		{"x-5", "", "test.long", `{"user_id":"` + long + `"}`},
		{"x-6", "", "test.nested", `{"a":{"user_id":"` + user + `"}}`},
		{"x-7", "", "test.duplicate", `{"user_id":"first","user_id":"` + user + `"}`},
		{"x-8", "", "test.array", `["user_id"]`},
		{"user-", "", "test.empty_suffix", `{"user_id":"` + user + `"}`},
		{"user-" + long, "", "test.long_suffix", `{}`},
	} {
		md := eventstore.Metadata{ActorID: e.actor}
		if _, err := store.Append(ctx, e.stream, eventstore.Any, md, eventstore.NewEvent{Type: e.typ, SchemaVersion: 1, Data: json.RawMessage(e.data)}); err != nil {
			t.Fatalf("%s: %v", e.typ, err)
		}
	}
	if err := eventgen.WaitVisible(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// audit_log as version 1 wrote it (these payloads hold nothing to redact).
	for _, sql := range []string{
		`INSERT INTO audit_log SELECT transaction_id, "offset", uuid, nullif(metadata->>'actor_id', ''), nullif(metadata->>'actor_email', ''),
			event_type, recorded_at, stream_id, payload::jsonb FROM watermill_events`,
		`INSERT INTO projection_checkpoints (name, version, transaction_id, "offset")
			SELECT 'audit_log', 1, transaction_id, "offset" FROM watermill_events ORDER BY transaction_id DESC, "offset" DESC LIMIT 1`,
	} {
		if _, err := pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := migrations.Apply(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE audit_log_migrated AS SELECT * FROM audit_log`); err != nil {
		t.Fatal(err)
	}
	st, err := projections.ReadStatus(ctx, pool, []projections.Projection{projections.AuditLog{}})
	if err != nil || st[0].State != "live" || st[0].Version != (projections.AuditLog{}).Version() {
		t.Fatalf("after the migration: %+v %v", st, err)
	}
	if _, err := projections.Rebuild(ctx, pool, store, projections.AuditLog{}, projections.RebuildOptions{}); err != nil {
		t.Fatal(err)
	}
	var diff, subjects int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM ((SELECT * FROM audit_log EXCEPT ALL SELECT * FROM audit_log_migrated)
		UNION ALL (SELECT * FROM audit_log_migrated EXCEPT ALL SELECT * FROM audit_log)) d),
		(SELECT count(*) FROM audit_log_migrated WHERE subject_id = $1)`, user).Scan(&diff, &subjects); err != nil {
		t.Fatal(err)
	}
	// role change, login failure, escaped key, duplicate key, empty suffix
	if diff != 0 || subjects != 5 {
		rows, _ := pool.Query(ctx, `SELECT event_type, coalesce(subject_id, '-') FROM audit_log_migrated ORDER BY 1`)
		got, _ := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
			var typ, subject string
			err := r.Scan(&typ, &subject)
			return typ + "=" + subject, err
		})
		t.Fatalf("the migration and a rebuild differ in %d rows; %d rows about the user: %v", diff, subjects, got)
	}
}
