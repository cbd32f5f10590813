package http_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/eventgen"
	"github.com/tradeops/tradeops/internal/testdb"
	"github.com/tradeops/tradeops/projections"
)

// usersByEmail stands in for the users repository: <id>@example.com is the
// account <id>.
type usersByEmail struct{}

func (usersByEmail) FindByEmail(_ context.Context, email string) (app.Account, error) {
	id, ok := strings.CutSuffix(email, "@example.com")
	if !ok {
		return app.Account{}, domain.Errorf(domain.KindNotFound, "user_not_found", "no such user")
	}
	return app.Account{UserView: app.UserView{ID: id, Email: email}}, nil
}

// What happened to alice's account, by others, next to what alice and the
// others did — projected by the live runner, as in production.
func newSubjectAuditServer(t *testing.T) auditServer {
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	ctx := context.Background()
	add := func(stream, actor, typ, data string) { appendAs(t, store, stream, actor, typ, data) }
	add(domain.UserStream("alice"), "alice", domain.EventTwoFactorEnabled, `{"user_id":"alice"}`)
	add("execution-1", "carol", domain.EventExecutionPrepare, `{"symbol":"BTCUSDT"}`)
	// Someone tries alice's account with a wrong password, then bob's.
	add(domain.LoginStream("alice@example.com"), "", domain.EventLoginFailure, `{"email":"alice@example.com","user_id":"alice","reason":"invalid_credentials"}`)
	add(domain.LoginStream("bob@example.com"), "", domain.EventLoginFailure, `{"email":"bob@example.com","user_id":"bob","reason":"invalid_credentials"}`)
	add(domain.LoginStream("nobody@example.com"), "", domain.EventLoginFailure, `{"email":"nobody@example.com","reason":"invalid_credentials"}`)
	// bob, an admin, changes alice's role and disables carol's 2FA.
	add(domain.UserStream("alice"), "bob", domain.EventUserRoleChanged, `{"user_id":"alice","from":"operator","to":"admin"}`)
	add(domain.UserStream("carol"), "bob", domain.EventTwoFactorDisabled, `{"user_id":"carol","recovery":true}`)
	add(domain.UserStream("alice"), "alice", domain.EventLogout, `{"user_id":"alice"}`)

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		projections.NewRunner(pool, store, projections.All(), projections.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil)))).Run(runCtx)
	}()
	t.Cleanup(func() { stop(); <-done })
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := eventgen.WaitVisible(waitCtx, pool); err != nil {
		t.Fatal(err)
	}
	for {
		st, err := projections.ReadStatus(waitCtx, pool, []projections.Projection{projections.AuditLog{}})
		if err != nil {
			t.Fatal(err)
		}
		if st[0].State == "live" && st[0].LagEvents == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return serveAudit(t, pool)
}

// summary renders a page as "type by actor about subject" lines.
func summary(page auditResponse, subjects map[string]string) []string {
	var out []string
	for _, e := range page.Events {
		actor := "-"
		if e.Actor != nil {
			actor = e.Actor.ID
		}
		out = append(out, e.Type+" by "+actor+" about "+subjects[e.ID])
	}
	return out
}

func TestMyAuditShowsWhatHappenedToMyAccount(t *testing.T) {
	s := newSubjectAuditServer(t)
	subjectsOf := func(path, user string, role domain.Role) (auditResponse, map[string]string) {
		t.Helper()
		status, page, body := s.get(path, user, role)
		if status != http.StatusOK {
			t.Fatalf("%s as %s: %d %s", path, user, status, body)
		}
		var raw struct {
			Events []struct{ ID, Subject string } `json:"events"`
		}
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatal(err)
		}
		subjects := map[string]string{}
		for _, e := range raw.Events {
			subjects[e.ID] = e.Subject
		}
		return page, subjects
	}
	aliceWants := []string{
		"auth.logout by alice about alice",
		"user.role.changed by bob about alice",
		"auth.login.failure by - about alice",
		"auth.2fa.enabled by alice about alice",
	}
	page, subjects := subjectsOf("/ops/audit/me", "alice", domain.RoleOperator)
	if got := summary(page, subjects); strings.Join(got, "\n") != strings.Join(aliceWants, "\n") {
		t.Fatalf("alice's trail:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(aliceWants, "\n"))
	}
	// bob sees what he did to alice and carol, and the failed login against
	// his own account, never the one against alice's.
	page, subjects = subjectsOf("/ops/audit/me", "bob", domain.RoleAdmin)
	bobWants := []string{
		"auth.2fa.disabled by bob about carol",
		"user.role.changed by bob about alice",
		"auth.login.failure by - about bob",
	}
	if got := summary(page, subjects); strings.Join(got, "\n") != strings.Join(bobWants, "\n") {
		t.Fatalf("bob's trail:\n%s", strings.Join(got, "\n"))
	}

	// One event a page: the two index scans merge into the same sequence.
	var paged []string
	for path := "/ops/audit/me?limit=1"; ; {
		page, subjects := subjectsOf(path, "alice", domain.RoleOperator)
		paged = append(paged, summary(page, subjects)...)
		if page.NextCursor == nil {
			break
		}
		path = "/ops/audit/me?limit=1&before=" + url.QueryEscape(*page.NextCursor)
	}
	if strings.Join(paged, "\n") != strings.Join(aliceWants, "\n") {
		t.Fatalf("paged one by one:\n%s", strings.Join(paged, "\n"))
	}
	page, subjects = subjectsOf("/ops/audit/me?type=auth.login.failure", "alice", domain.RoleOperator)
	if got := summary(page, subjects); len(got) != 1 || got[0] != "auth.login.failure by - about alice" {
		t.Fatalf("type filter: %v", got)
	}

	// The admin's ?user= matches actor or subject, by id or by email.
	for _, user := range []string{"alice", "alice@example.com", "ALICE@example.com"} {
		page, subjects := subjectsOf("/ops/audit?user="+url.QueryEscape(user), "root", domain.RoleAdmin)
		if got := summary(page, subjects); strings.Join(got, "\n") != strings.Join(aliceWants, "\n") {
			t.Fatalf("?user=%s:\n%s", user, strings.Join(got, "\n"))
		}
	}
	if page, _ := subjectsOf("/ops/audit?user=nobody@elsewhere.org", "root", domain.RoleAdmin); len(page.Events) != 0 {
		t.Fatalf("an email of no account: %d events", len(page.Events))
	}
}
