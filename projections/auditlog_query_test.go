package projections

import (
	"context"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/internal/eventgen"
)

// A user's page is two index range scans merged, whatever the filters: the
// actor index and the partial subject index (whose predicate the query must
// repeat for the planner to use it), never a scan of the table.
func TestAuditQueryMergesTwoIndexScans(t *testing.T) {
	env := newEnv(t)
	env.seed(t, 5000)
	for i := range 50 { // others acting on user 8's account
		env.appendOne(t, "user-"+eventgen.ActorID(8), eventgen.ActorID(i%3), "user.role.changed", map[string]any{"n": i})
	}
	env.drain(t, AuditLog{})
	env.exec(t, `ANALYZE audit_log`)
	for _, q := range []app.AuditQuery{
		{UserID: eventgen.ActorID(8), Limit: 101},
		{UserID: eventgen.ActorID(8), Type: "auth.login.success", Before: &app.AuditCursor{TransactionID: 1 << 40, Offset: 1}, Limit: 11},
	} {
		sql, args := auditQuerySQL(q)
		rows, err := env.pool.Query(context.Background(), `EXPLAIN `+sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		text := strings.Join(plan, "\\n")
		if rows.Err() != nil || !strings.Contains(text, "Merge Append") || !strings.Contains(text, "audit_log_actor_idx") ||
			!strings.Contains(text, "audit_log_subject_idx") || strings.Contains(text, "Seq Scan") {
			t.Fatalf("%+v: plan\n%s", q, strings.Join(plan, "\n"))
		}
	}
	entries, err := NewAuditLogReader(env.pool).ListAudit(context.Background(), app.AuditQuery{UserID: eventgen.ActorID(8), Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, e := range entries {
		if ids[e.ID] || (e.ActorID != eventgen.ActorID(8) && e.SubjectID != eventgen.ActorID(8)) {
			t.Fatalf("entry %+v repeated or not about the user", e)
		}
		ids[e.ID] = true
	}
	if want := env.count(t, `SELECT count(*) FROM audit_log WHERE actor_id = $1 OR subject_id = $1`, eventgen.ActorID(8)); int64(len(entries)) != want {
		t.Fatalf("%d entries, want %d", len(entries), want)
	}
}
