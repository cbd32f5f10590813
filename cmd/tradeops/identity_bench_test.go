package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/adapters/token"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// BenchmarkAuthMiddleware measures RequireUser on a valid token: JWT parse
// and checks plus the access-state look-up, cached (as served) and uncached
// (one PostgreSQL round trip per request).
func BenchmarkAuthMiddleware(b *testing.B) {
	h := newHarness(b, domain.DefaultThrottlePolicy, envOf(nil), false)
	h.createUser("bench@example.com", "operator", "correct horse battery")
	tok := h.mustLogin("bench@example.com", "correct horse battery", "")
	tokens, err := token.New(testSecretKey, 15*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	uncached := porthttp.NewAuthenticator(app.NewAuthenticateHandler(tokens, postgres.NewUsers(eventstore.New(h.pool), 0), h.clock))
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if app.CallerFrom(r.Context()).UserID == "" {
			b.Fatal("no user in the context")
		}
	})
	for name, mw := range map[string]func(http.Handler) http.Handler{"cached": h.id.auth.RequireUser, "uncached": uncached.RequireUser} {
		b.Run(name, func(b *testing.B) {
			handler := mw(ok)
			req := httptest.NewRequest(http.MethodGet, "/users/me", nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req = req.WithContext(app.WithCaller(context.Background(), app.Caller{RequestID: "r", ClientIP: "127.0.0.1"}))
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}

// BenchmarkLoginConcurrent20 runs b.N full logins (HTTP, throttle
// bookkeeping, argon2id, events) from 20 concurrent clients and reports the
// latency percentiles next to the cost of one argon2id hash.
// Run: go test ./cmd/tradeops -run '^$' -bench LoginConcurrent20 -benchtime 400x
func BenchmarkLoginConcurrent20(b *testing.B) {
	h := newHarness(b, policyWith(func(p *domain.ThrottlePolicy) { p.FreeFailures, p.PerIP = 1<<30, 1<<30 }), envOf(nil), false)
	h.createUser("bench@example.com", "operator", "correct horse battery")
	hasher := argon2id.New(argon2id.OWASP, 1)
	hash, _ := hasher.Hash(context.Background(), domain.NewSecret("correct horse battery"))
	const hashes = 10
	t0 := time.Now()
	for range hashes {
		_, _ = hasher.Verify(context.Background(), domain.NewSecret("correct horse battery"), hash)
	}
	perHash := time.Since(t0) / hashes

	const clients = 20
	lat := make([]time.Duration, 0, b.N)
	var mu sync.Mutex
	work := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for i := range work {
				t := time.Now()
				r := h.login("bench@example.com", "correct horse battery", "", fmt.Sprintf("203.0.113.%d", i%200))
				d := time.Since(t)
				if r.status != http.StatusOK {
					b.Errorf("login: %d %s", r.status, r.raw)
				}
				mu.Lock()
				lat = append(lat, d)
				mu.Unlock()
			}
		})
	}
	for i := 0; i < b.N; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(perHash), "ms/argon2id-hash")
	b.ReportMetric(ms(lat[len(lat)/2]), "ms-p50")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "ms-p99")
}
