package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// fakeAuditLog returns n entries, newest first, and remembers the query.
type fakeAuditLog struct {
	n    int
	last AuditQuery
}

func (f *fakeAuditLog) ListAudit(_ context.Context, q AuditQuery) ([]AuditEntry, error) {
	f.last = q
	var out []AuditEntry
	for i := f.n; i > 0 && len(out) < q.Limit; i-- {
		c := AuditCursor{TransactionID: 1000, Offset: int64(i)}
		if q.Before != nil && c.Offset >= q.Before.Offset {
			continue
		}
		out = append(out, AuditEntry{ID: "e", Cursor: c})
	}
	return out, nil
}

func as(id string, role domain.Role) context.Context {
	return WithCaller(context.Background(), Caller{UserID: id, Role: role})
}

func codeOf(err error) string {
	var e *domain.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestListMyAuditFiltersByTheCallerOnly(t *testing.T) {
	log := &fakeAuditLog{n: 5}
	h := NewListMyAuditHandler(log)
	if _, err := h.Handle(context.Background(), ListMyAudit{Limit: 10}); domain.ErrorKind(err) != domain.KindUnauthorized {
		t.Fatalf("anonymous: %v", err)
	}
	page, err := h.Handle(as("u-1", domain.RoleOperator), ListMyAudit{Limit: 10, Type: "auth.logout"})
	if err != nil || len(page.Entries) != 5 || page.Next != nil {
		t.Fatalf("%+v %v", page, err)
	}
	if log.last.UserID != "u-1" || log.last.Type != "auth.logout" {
		t.Fatalf("query %+v", log.last)
	}
}

func TestAuditPagingFollowsTheCursor(t *testing.T) {
	h := NewListMyAuditHandler(&fakeAuditLog{n: 5})
	ctx := as("u-1", domain.RoleOperator)
	var seen []int64
	before := ""
	for range 5 {
		page, err := h.Handle(ctx, ListMyAudit{Limit: 2, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			seen = append(seen, e.Cursor.Offset)
		}
		if page.Next == nil {
			break
		}
		before = page.Next.String()
	}
	if len(seen) != 5 || seen[0] != 5 || seen[4] != 1 {
		t.Fatalf("pages gave %v", seen)
	}
}

func TestAuditQueriesValidateLimitAndCursor(t *testing.T) {
	h := NewListMyAuditHandler(&fakeAuditLog{})
	ctx := as("u-1", domain.RoleOperator)
	for _, limit := range []int{0, -1, MaxAuditLimit + 1} {
		if _, err := h.Handle(ctx, ListMyAudit{Limit: limit}); codeOf(err) != "invalid_limit" {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	for _, limit := range []int{1, MaxAuditLimit} {
		if _, err := h.Handle(ctx, ListMyAudit{Limit: limit}); err != nil {
			t.Errorf("limit %d: %v", limit, err)
		}
	}
	for _, c := range []string{"x", "!!!", "YTE6MTI", "YTI6MToy", "YTE6MTotMg", AuditCursor{1, 2}.String() + "A", "MTIzOjQ1"} {
		if _, err := h.Handle(ctx, ListMyAudit{Limit: 1, Before: c}); codeOf(err) != "invalid_cursor" {
			t.Errorf("cursor %q: %v", c, err)
		}
	}
	c := AuditCursor{TransactionID: 1<<63 + 5, Offset: 42}
	got, err := parseAuditCursor(c.String())
	if err != nil || *got != c {
		t.Fatalf("cursor round trip: %v %v", got, err)
	}
}

// fakeUsers knows one account.
type fakeUsers struct{ email, id string }

func (f fakeUsers) FindByEmail(_ context.Context, email string) (Account, error) {
	if email != f.email {
		return Account{}, domain.Errorf(domain.KindNotFound, "user_not_found", "no such user")
	}
	return Account{UserView: UserView{ID: f.id, Email: email}}, nil
}

func TestListAuditIsForAdminsAndTakesAnIDOrAnEmail(t *testing.T) {
	log := &fakeAuditLog{n: 3}
	h := NewListAuditHandler(log, fakeUsers{email: "ops@example.com", id: "u-9"})
	if _, err := h.Handle(as("u-1", domain.RoleOperator), ListAudit{Limit: 10}); domain.ErrorKind(err) != domain.KindForbidden {
		t.Fatalf("operator: %v", err)
	}
	since := time.Now()
	// An email is resolved to the account's id: the query then finds the
	// events the user caused and those about the user alike.
	if _, err := h.Handle(as("a-1", domain.RoleAdmin), ListAudit{User: " Ops@Example.com", Since: since, Limit: 10}); err != nil {
		t.Fatal(err)
	}
	if log.last.UserID != "u-9" || !log.last.Since.Equal(since) {
		t.Fatalf("by email: %+v", log.last)
	}
	if _, err := h.Handle(as("a-1", domain.RoleAdmin), ListAudit{User: "u-7", Limit: 10}); err != nil || log.last.UserID != "u-7" {
		t.Fatalf("by id: %+v %v", log.last, err)
	}
	log.last = AuditQuery{}
	page, err := h.Handle(as("a-1", domain.RoleAdmin), ListAudit{User: "nobody@example.com", Limit: 10})
	if err != nil || len(page.Entries) != 0 || page.Next != nil || log.last.Limit != 0 {
		t.Fatalf("an email of no account: %+v %v (queried %+v)", page, err, log.last)
	}
}
