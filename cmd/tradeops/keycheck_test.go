package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tradeops/tradeops/adapters/keyring"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/adapters/totp"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// TestServeChecksTheKeyAgainstStoredSecrets: exchange secrets stored under
// key A (two fields: two values) stop serve started with key B, naming both
// key ids and neither key; once a TOTP seed under B exists too, serve starts
// and warns about the others.
func TestServeChecksTheKeyAgainstStoredSecrets(t *testing.T) {
	pool, dbURL := testdb.New(t)
	rawA, rawB := randomBytes(32), randomBytes(32)
	keyA, keyB := base64.StdEncoding.EncodeToString(rawA), base64.StdEncoding.EncodeToString(rawB)
	ringA, _ := keyring.New(rawA)
	ringB, _ := keyring.New(rawB)
	userCtx := func(email string) context.Context {
		t.Helper()
		out, err := runCLI(t, dbURL, "correct horse battery\n", "users", "create", "--email", email, "--role", "operator", "--password-stdin")
		if err != nil {
			t.Fatal(err)
		}
		return app.WithCaller(context.Background(), app.Caller{UserID: strings.TrimSpace(out), Email: email})
	}
	setup2FA := func(email string, ring *keyring.Keyring) {
		t.Helper()
		if _, err := app.NewSetupTwoFactorHandler(postgres.NewUsers(eventstore.New(pool), 0), ring, totp.New()).Handle(userCtx(email)); err != nil {
			t.Fatal(err)
		}
	}
	configureBinance := func(email string, ring *keyring.Keyring) {
		t.Helper()
		if _, err := app.NewConfigureExchangeSecretHandler(postgres.NewExchangeSecrets(eventstore.New(pool)), ring).Handle(userCtx(email),
			app.ConfigureExchangeSecret{Exchange: "BINANCE", Fields: map[string]domain.Secret{
				"api_key": domain.NewSecret("BINANCEKEY000001abcd"), "api_secret": domain.NewSecret("binance-secret"),
			}}); err != nil {
			t.Fatal(err)
		}
	}
	serve := func(ctx context.Context, key, addr string, logs *syncBuffer) chan error {
		done := make(chan error, 1)
		go func() {
			done <- run(ctx, []string{"tradeops", "serve"}, envOf(map[string]string{
				"DATABASE_URL": dbURL, "LISTEN_ADDR": addr, "SECRET_KEY": string(testSecretKey), "ENCRYPTION_KEY": key,
			}), nil, logs, logs)
		}()
		return done
	}
	noKeys := func(output string) {
		t.Helper()
		for _, k := range []string{keyA, keyB, hex.EncodeToString(rawA), hex.EncodeToString(rawB)} {
			if strings.Contains(output, k) {
				t.Fatalf("output holds a key: %s", output)
			}
		}
	}

	configureBinance("a@example.com", ringA)
	logs := &syncBuffer{}
	select {
	case err := <-serve(context.Background(), keyB, freeAddr(t), logs):
		all := err.Error() + logs.String()
		if exitCode(err) != 2 || !strings.Contains(err.Error(), "ENCRYPTION_KEY") ||
			!strings.Contains(err.Error(), ringA.KeyID()+" (2 values)") || !strings.Contains(err.Error(), ringB.KeyID()) ||
			!strings.Contains(logs.String(), "start-up refused") {
			t.Fatalf("want exit 2 naming key ids %s (stored) and %s (running), got %v\n%s", ringA.KeyID(), ringB.KeyID(), err, logs)
		}
		noKeys(all)
	case <-time.After(30 * time.Second):
		t.Fatal("serve with the wrong key kept running")
	}

	setup2FA("b@example.com", ringB)
	logs = &syncBuffer{}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	addr := freeAddr(t)
	done := serve(ctx, keyB, addr, logs)
	waitStatus(t, "http://"+addr+"/users/me", http.StatusUnauthorized, `"unauthorized"`) // the API is open
	stop()
	if err := <-done; err != nil {
		t.Fatalf("serve with a partly matching key: %v", err)
	}
	var warning string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "DOES NOT OPEN EVERY STORED ENCRYPTED VALUE") {
			warning = line
		}
	}
	for _, want := range []string{`"level":"WARN"`, `"key_id":"` + ringB.KeyID(), `"values":3`, `"unopenable":2`,
		ringA.KeyID() + " (2 values)", ringB.KeyID() + " (1 value)"} {
		if !strings.Contains(warning, want) {
			t.Fatalf("partial match warning lacks %s: %q", want, warning)
		}
	}
	noKeys(logs.String())
}
