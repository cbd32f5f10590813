package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/internal/apispec"
	"github.com/tradeops/tradeops/internal/testdb"
)

// The runbook's question "what happened to my account?", end to end through
// serve and the CLI: someone else's wrong password against my account and
// the CLI changing my role are in my /ops/audit/me; another user's events
// are not.
func TestMyAuditShowsOthersActingOnMyAccount(t *testing.T) {
	_, dbURL := testdb.New(t)
	create := func(email string) string {
		out, err := runCLI(t, dbURL, "correct horse battery\n", "users", "create", "--email", email, "--role", "operator", "--password-stdin")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	me, other := create("me@example.com"), create("other@example.com")

	ctx, stop := context.WithCancel(context.Background())
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"tradeops", "serve"}, envOf(map[string]string{
			"DATABASE_URL": dbURL, "LISTEN_ADDR": addr, "SECRET_KEY": string(testSecretKey),
			"ENCRYPTION_KEY": testEncryptionKey, "LOG_LEVEL": "error",
		}), nil, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	base := "http://" + addr
	waitStatus(t, base+"/users/me", http.StatusUnauthorized, "") // started: the API answers
	client := apispec.Client(t)
	login := func(email, password string) (int, string) {
		resp, err := client.PostForm(base+"/auth/login", url.Values{"username": {email}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&tok)
		return resp.StatusCode, tok.AccessToken
	}

	if status, _ := login("me@example.com", "not my password"); status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", status)
	}
	if status, _ := login("other@example.com", "not their password"); status != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", status)
	}
	if status, _ := login("other@example.com", "correct horse battery"); status != http.StatusOK {
		t.Fatalf("other's login: %d", status)
	}
	if _, err := runCLI(t, dbURL, "", "users", "set-role", "--email", "me@example.com", "--role", "admin"); err != nil {
		t.Fatal(err)
	}
	status, token := login("me@example.com", "correct horse battery")
	if status != http.StatusOK {
		t.Fatalf("my login: %d", status)
	}

	type event struct {
		Type    string
		Subject string
		Actor   *struct{ ID, Email string }
		Data    map[string]any
	}
	var events []event
	want := []string{"auth.login.success", "user.role.changed", "auth.login.failure", "user.created"}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, base+"/ops/audit/me?limit=100", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var page struct{ Events []event }
		_ = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/ops/audit/me: %d", resp.StatusCode)
		}
		events = page.Events
		var types []string
		for _, e := range events {
			types = append(types, e.Type)
		}
		if slices.Equal(types, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ops/audit/me: %v, want %v", types, want)
		}
	}
	for _, e := range events {
		if e.Subject != me || (e.Actor != nil && e.Actor.ID == other) || e.Data["email"] == "other@example.com" {
			t.Fatalf("an event not about me: %+v", e)
		}
	}
	// Who did it is shown as recorded: nobody signed in for the failed
	// login, the CLI for the role change.
	if failure := events[2]; failure.Actor != nil || failure.Data["reason"] != "invalid_credentials" {
		t.Fatalf("failed login: %+v", failure)
	}
	if change := events[1]; change.Actor == nil || change.Actor.Email != "cli" || change.Data["to"] != "admin" {
		t.Fatalf("role change: %+v", change)
	}
}
