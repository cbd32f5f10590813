package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tradeops/tradeops/adapters/keyring"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	"github.com/tradeops/tradeops/internal/testdb"
)

// rotation is a database with users holding TOTP seeds and exchange
// secrets sealed under an old key, and the real adapters and handlers of a
// rotation to a new key.
type rotation struct {
	t              testing.TB
	pool           *pgxpool.Pool
	store          *eventstore.Store
	oldKey, newKey domain.Secret
	oldK, newK     *keyring.Keyring
	users          *postgres.Users
	secrets        *postgres.ExchangeSecrets
	values         *postgres.SealedValues
	rotations      *postgres.KeyRotations
	lock           *postgres.RotationLock
	// plain is every stored plaintext, by binding.
	plain map[app.SecretBinding]string
	ids   []string
}

func newKey(t testing.TB) (domain.Secret, *keyring.Keyring) {
	t.Helper()
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	k, err := keyring.New(raw)
	if err != nil {
		t.Fatal(err)
	}
	return domain.NewSecret(base64.StdEncoding.EncodeToString(raw)), k
}

func newRotation(t testing.TB) *rotation {
	t.Helper()
	pool, _ := testdb.New(t)
	store := eventstore.New(pool)
	r := &rotation{t: t, pool: pool, store: store, users: postgres.NewUsers(store, 0), secrets: postgres.NewExchangeSecrets(store),
		values: postgres.NewSealedValues(store), rotations: postgres.NewKeyRotations(store), lock: postgres.NewRotationLock(pool),
		plain: map[app.SecretBinding]string{}}
	r.oldKey, r.oldK = newKey(t)
	r.newKey, r.newK = newKey(t)
	return r
}

func userCtx(id string) context.Context {
	return app.WithCaller(context.Background(), app.Caller{UserID: id, Email: id + "@example.com", RequestID: uuid.NewString()})
}

// addUser creates a user with a TOTP seed (when totp) sealed under the old key.
func (r *rotation) addUser(totp bool) string {
	r.t.Helper()
	id := uuid.NewString()
	email, _ := domain.ParseEmail(id + "@example.com")
	u, _ := domain.NewUser(id, email, domain.RoleOperator)
	c := app.Credentials{PasswordHash: domain.NewSecret("h")}
	if totp {
		b := app.SecretBinding{Owner: id, Purpose: app.TOTPPurpose, Field: app.TOTPField}
		seed := "SEED" + strings.ToUpper(strings.ReplaceAll(id, "-", ""))[:16]
		sealed, err := r.oldK.Seal([]byte(seed), b)
		if err != nil {
			r.t.Fatal(err)
		}
		c.TOTP = &app.TOTPSeed{Sealed: sealed}
		r.plain[b] = seed
	}
	if err := r.users.Create(app.WithCaller(context.Background(), app.Caller{Email: "cli"}), u, c); err != nil {
		r.t.Fatal(err)
	}
	r.ids = append(r.ids, id)
	return id
}

// configure stores credentials as a server running under k does.
func (r *rotation) configure(k app.Keyring, userID string, ex domain.Exchange, kv ...string) {
	r.t.Helper()
	for b := range r.plain {
		if b.Owner == userID && b.Purpose == string(ex) {
			delete(r.plain, b) // replaced whole
		}
	}
	fields := map[string]domain.Secret{}
	for i := 0; i < len(kv); i += 2 {
		fields[kv[i]] = domain.NewSecret(kv[i+1])
		r.plain[app.SecretBinding{Owner: userID, Purpose: string(ex), Field: kv[i]}] = kv[i+1]
	}
	if _, err := app.NewConfigureExchangeSecretHandler(r.secrets, k).Handle(userCtx(userID),
		app.ConfigureExchangeSecret{Exchange: string(ex), Fields: fields}); err != nil {
		r.t.Fatal(err)
	}
}

// populate adds n users, each with a TOTP seed (but the last), Binance
// credentials and IBKR credentials (every other one with an API key).
func (r *rotation) populate(n int) {
	r.t.Helper()
	for i := range n {
		id := r.addUser(i != n-1)
		r.configure(r.oldK, id, domain.ExchangeBinance, "api_key", fmt.Sprintf("BINANCEKEY%06dabcd", i), "api_secret", fmt.Sprintf("binance-secret-%d", i))
		if i%2 == 0 {
			r.configure(r.oldK, id, domain.ExchangeIBKR, "account_id", fmt.Sprintf("DU%07d", i))
		} else {
			r.configure(r.oldK, id, domain.ExchangeIBKR, "account_id", fmt.Sprintf("DU%07d", i), "api_key", fmt.Sprintf("IBKRKEY%06dwxyz", i))
		}
	}
}

func (r *rotation) handler(values app.SealedValues, batch int) *app.ReencryptSecretsHandler {
	return app.NewReencryptSecretsHandler(values, r.rotations, r.lock, func(key []byte) (app.Keyring, error) { return keyring.New(key) },
		r.oldK.KeyID(), batch)
}

func adminCtx() context.Context {
	return app.WithCaller(context.Background(), app.Caller{UserID: uuid.NewString(), Email: "admin@example.com", Role: domain.RoleAdmin, RequestID: uuid.NewString()})
}

func (r *rotation) reencrypt(dryRun bool) app.ReencryptResult {
	r.t.Helper()
	res, err := r.handler(r.values, 0).Handle(adminCtx(), app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey, DryRun: dryRun})
	if err != nil {
		r.t.Fatal(err)
	}
	return res
}

// stored reads every sealed value straight from the tables.
func (r *rotation) stored() map[app.SecretBinding]app.Sealed {
	r.t.Helper()
	out := map[app.SecretBinding]app.Sealed{}
	rows, err := r.pool.Query(context.Background(), `SELECT user_id::text, 'totp', jsonb_build_object('seed', seed) FROM user_totp
		UNION ALL SELECT user_id::text, exchange, fields FROM exchange_secrets`)
	if err != nil {
		r.t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var owner, purpose string
		var raw []byte
		if err := rows.Scan(&owner, &purpose, &raw); err != nil {
			r.t.Fatal(err)
		}
		var fields map[string]app.Sealed
		if err := json.Unmarshal(raw, &fields); err != nil {
			r.t.Fatal(err)
		}
		for f, s := range fields {
			out[app.SecretBinding{Owner: owner, Purpose: purpose, Field: f}] = s
		}
	}
	return out
}

// checkOpens fails unless every stored value opens under each keyring to
// its plaintext.
func (r *rotation) checkOpens(keys ...*keyring.Keyring) {
	r.t.Helper()
	stored := r.stored()
	if len(stored) != len(r.plain) {
		r.t.Fatalf("%d stored values, %d expected", len(stored), len(r.plain))
	}
	for b, s := range stored {
		for _, k := range keys {
			got, err := k.Open(s, b)
			if err != nil || string(got) != r.plain[b] {
				r.t.Fatalf("%v under key %s: %q, %v", b, k.KeyID(), got, err)
			}
		}
	}
}

// checksum is an md5 over both tables of sealed values, every column.
func (r *rotation) checksum() string {
	r.t.Helper()
	var sum string
	err := r.pool.QueryRow(context.Background(), `SELECT md5(
		coalesce((SELECT string_agg(user_id::text || exchange || fields::text || updated_at::text, '|' ORDER BY user_id, exchange) FROM exchange_secrets), '') || '#' ||
		coalesce((SELECT string_agg(user_id::text || seed::text || last_step::text, '|' ORDER BY user_id) FROM user_totp), ''))`).Scan(&sum)
	if err != nil {
		r.t.Fatal(err)
	}
	return sum
}

func (r *rotation) reencryptEvents() []domain.KeysReencrypted {
	r.t.Helper()
	evs, err := r.store.ReadStream(context.Background(), nil, domain.KeyringStream, 0)
	if err != nil {
		r.t.Fatal(err)
	}
	var out []domain.KeysReencrypted
	for _, e := range evs {
		if e.Type == domain.EventKeyRotationReencrypt {
			var d domain.KeysReencrypted
			if err := json.Unmarshal(e.Data, &d); err != nil {
				r.t.Fatal(err)
			}
			out = append(out, d)
		}
	}
	return out
}

func wantCounts(t testing.TB, res app.ReencryptResult, scanned, updated, current, failed int) {
	t.Helper()
	if res.Scanned != scanned || res.Updated != updated || res.AlreadyCurrent != current || res.FailedCount != failed || len(res.Failed) != min(failed, app.MaxReportedFailures) {
		t.Fatalf("got scanned %d updated %d already_current %d failed %d %+v; want %d %d %d %d",
			res.Scanned, res.Updated, res.AlreadyCurrent, res.FailedCount, res.Failed, scanned, updated, current, failed)
	}
}

// The runbook's rotation on the adapters: dry run writes nothing (table
// checksum), apply keeps every plaintext under both keys (exchange secrets
// and TOTP seeds), a second apply updates nothing, and each run is recorded.
func TestReencryptDryRunApplyAndRerun(t *testing.T) {
	r := newRotation(t)
	r.populate(7)
	n := len(r.plain) // 6 TOTP seeds, 14 Binance fields, 7+3 IBKR fields
	if n != 6+14+10 {
		t.Fatalf("%d values", n)
	}
	before := r.checksum()
	dry := r.reencrypt(true)
	wantCounts(t, dry, n, n, 0, 0)
	if !dry.DryRun || dry.OldKeyID != r.oldK.KeyID() || dry.NewKeyID != r.newK.KeyID() || dry.ServerKeyID != r.oldK.KeyID() {
		t.Fatalf("%+v", dry)
	}
	if after := r.checksum(); after != before {
		t.Fatal("the dry run changed the tables")
	}
	r.checkOpens(r.oldK)

	wantCounts(t, r.reencrypt(false), n, n, 0, 0)
	r.checkOpens(r.oldK, r.newK)
	c, err := r.values.Census(context.Background())
	if err != nil || c.Values != n || c.Lacking(r.newK.KeyID()) != 0 || c.Lacking(r.oldK.KeyID()) != 0 {
		t.Fatalf("census %+v %v", c, err)
	}
	applied := r.checksum()
	wantCounts(t, r.reencrypt(false), n, 0, n, 0)
	wantCounts(t, r.reencrypt(true), n, 0, n, 0)
	if r.checksum() != applied {
		t.Fatal("a second apply rewrote rows")
	}
	evs := r.reencryptEvents()
	if len(evs) != 4 || !evs[0].DryRun || evs[1].DryRun || evs[1].Updated != n || evs[2].Updated != 0 || evs[2].AlreadyCurrent != n ||
		!evs[3].Completed || evs[1].OldKeyID != r.oldK.KeyID() || evs[1].NewKeyID != r.newK.KeyID() {
		t.Fatalf("events %+v", evs)
	}
	// The status the app reports.
	st, err := app.NewKeysStatusHandler(r.values, r.rotations, r.newK.KeyID()).Handle(context.Background())
	if err != nil || st.Census.ByKeyID[r.newK.KeyID()] != n || st.LastApply == nil || st.LastApply.NewKeyID != r.newK.KeyID() || st.Frozen != nil {
		t.Fatalf("status %+v %v", st, err)
	}
}

// A ciphertext copied to another user's row (or field) fails: the dry run
// names it, the others still pass, and the vault refuses it with an error
// naming key ids.
func TestReencryptReportsACiphertextMovedToAnotherRow(t *testing.T) {
	r := newRotation(t)
	r.populate(3)
	a, b := r.ids[0], r.ids[1]
	ctx := context.Background()
	if _, err := r.pool.Exec(ctx, `UPDATE exchange_secrets SET fields = jsonb_set(fields, '{api_secret}',
		(SELECT fields->'api_secret' FROM exchange_secrets WHERE user_id = $1 AND exchange = 'BINANCE'))
		WHERE user_id = $2 AND exchange = 'BINANCE'`, a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := r.pool.Exec(ctx, `UPDATE user_totp SET seed = (SELECT seed FROM user_totp WHERE user_id = $1) WHERE user_id = $2`, a, b); err != nil {
		t.Fatal(err)
	}
	n := len(r.plain)
	before := r.checksum()
	res := r.reencrypt(true)
	wantCounts(t, res, n, n-2, 0, 2)
	for _, f := range res.Failed {
		if f.Owner != b || !(f.Purpose == "BINANCE" && f.Field == "api_secret" || f.Purpose == "totp" && f.Field == "seed") ||
			!strings.Contains(f.Error, "does not decrypt") || !strings.Contains(f.Error, r.oldK.KeyID()) {
			t.Fatalf("failure %+v", f)
		}
	}
	if r.checksum() != before {
		t.Fatal("dry run wrote")
	}
	// Apply covers the others and leaves the moved ones as they are.
	wantCounts(t, r.reencrypt(false), n, n-2, 0, 2)
	_, err := app.NewOpenExchangeCredentialsHandler(r.secrets, r.oldK).Handle(ctx, b, domain.ExchangeBinance)
	var e *domain.Error
	if !errors.As(err, &e) || e.Code != "secret_undecryptable" || !strings.Contains(e.Message, r.oldK.KeyID()) || !strings.Contains(e.Message, "moved") {
		t.Fatalf("open moved ciphertext: %v", err)
	}
	if creds, err := app.NewOpenExchangeCredentialsHandler(r.secrets, r.newK).Handle(ctx, a, domain.ExchangeBinance); err != nil ||
		creds.Field("api_secret").Reveal() != "binance-secret-0" {
		t.Fatalf("open under the new key: %v", err)
	}
}

// hookedValues wraps the real SealedValues to act between the steps of a
// run: stop it, race it, hold it.
type hookedValues struct {
	app.SealedValues
	mu        sync.Mutex
	adds      int
	beforeAdd func(call int)
	afterAdd  func(call int)
	onRecords func()
}

func (h *hookedValues) Records(ctx context.Context, after *app.SealedCursor, limit int) ([]app.SealedRecord, error) {
	if h.onRecords != nil {
		h.onRecords()
	}
	return h.SealedValues.Records(ctx, after, limit)
}

func (h *hookedValues) AddCiphertexts(ctx context.Context, adds []app.SealedAddition) ([]int, error) {
	h.mu.Lock()
	h.adds++
	call := h.adds
	h.mu.Unlock()
	if h.beforeAdd != nil {
		h.beforeAdd(call)
	}
	changed, err := h.SealedValues.AddCiphertexts(ctx, adds)
	if h.afterAdd != nil {
		h.afterAdd(call)
	}
	return changed, err
}

// An apply killed between batches leaves every value decryptable under the
// old key (and the finished ones under the new key too); a rerun finishes.
func TestReencryptKilledMidwayResumes(t *testing.T) {
	r := newRotation(t)
	r.populate(4)
	n := len(r.plain)
	ctx, cancel := context.WithCancel(adminCtx())
	defer cancel()
	hooked := &hookedValues{SealedValues: r.values, afterAdd: func(call int) {
		if call == 3 {
			cancel() // the process dies after its third batch
		}
	}}
	res, err := r.handler(hooked, 1).Handle(ctx, app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey})
	if !errors.Is(err, context.Canceled) || domain.ErrorKind(err) != domain.KindUnavailable || !strings.Contains(err.Error(), "reencrypt_interrupted") {
		t.Fatalf("interrupted apply: %v", err)
	}
	if res.Updated == 0 || res.Updated >= n {
		t.Fatalf("partial apply updated %d of %d", res.Updated, n)
	}
	r.checkOpens(r.oldK)
	c, _ := r.values.Census(context.Background())
	if c.ByKeyID[r.newK.KeyID()] != res.Updated || c.Lacking(r.oldK.KeyID()) != 0 {
		t.Fatalf("census %+v after %d updated", c, res.Updated)
	}
	for b, s := range r.stored() {
		if _, ok := s[r.newK.KeyID()]; ok {
			if got, err := r.newK.Open(s, b); err != nil || string(got) != r.plain[b] {
				t.Fatalf("%v under the new key: %v", b, err)
			}
		}
	}
	evs := r.reencryptEvents()
	if len(evs) != 1 || evs[0].Completed || evs[0].Updated != res.Updated {
		t.Fatalf("the interrupted run's event: %+v", evs)
	}
	done := res.Updated
	wantCounts(t, r.reencrypt(false), n, n-done, done, 0)
	r.checkOpens(r.oldK, r.newK)
}

// A user's PUT while an apply runs (served under the old key) is never
// overwritten: one landing in the batch being written is reported, one
// landing behind the apply is found by the next dry run, and a rerun of
// apply covers both.
func TestPutRacingAnApplyIsPickedUpByTheRerun(t *testing.T) {
	r := newRotation(t)
	r.populate(4)
	recs, err := r.values.Records(context.Background(), nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	// Records come in (owner, purpose) order: the smallest user id's
	// BINANCE and IBKR records make the first batch of two.
	firstOwner := recs[0].Owner
	if recs[0].Purpose != "BINANCE" || recs[1].Purpose != "IBKR" || recs[1].Owner != firstOwner {
		t.Fatalf("record order: %+v", recs[:2])
	}
	ibkr := []string{"account_id", "DU7777777"}
	if _, ok := recs[1].Values["api_key"]; ok {
		ibkr = append(ibkr, "api_key", "RACEDIBKRKEY01wxyz")
	}
	hooked := &hookedValues{SealedValues: r.values, beforeAdd: func(call int) {
		switch call {
		case 1: // inside the first batch, between its read and its write
			r.configure(r.oldK, firstOwner, domain.ExchangeBinance, "api_key", "RACEDKEY000001abcd", "api_secret", "raced-in-batch")
		case 2: // behind the apply: the first batch is already written
			r.configure(r.oldK, firstOwner, domain.ExchangeIBKR, ibkr...)
		}
	}}
	res, err := r.handler(hooked, 2).Handle(adminCtx(), app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey})
	if err != nil {
		t.Fatal(err)
	}
	n := len(r.plain)
	if res.Scanned != n || res.FailedCount != 2 || res.Updated != n-2 {
		t.Fatalf("apply with races: %+v (n %d)", res, n)
	}
	for _, f := range res.Failed {
		if f.Owner != firstOwner || f.Purpose != "BINANCE" || !strings.Contains(f.Error, "rerun") {
			t.Fatalf("failure %+v", f)
		}
	}
	// Nothing the user stored was lost: the old key opens the raced values.
	r.checkOpens(r.oldK)
	st, _ := app.NewKeysStatusHandler(r.values, r.rotations, r.newK.KeyID()).Handle(context.Background())
	lacking := 2 + len(ibkr)/2
	if st.Census.Lacking(r.newK.KeyID()) != lacking {
		t.Fatalf("keys status: %d values lack the new key, want %d", st.Census.Lacking(r.newK.KeyID()), lacking)
	}
	wantCounts(t, r.reencrypt(true), n, lacking, n-lacking, 0)
	wantCounts(t, r.reencrypt(false), n, lacking, n-lacking, 0)
	r.checkOpens(r.oldK, r.newK)
}

// Two applies at once, from two processes (two pools): one runs, the other
// is refused with rotation_in_progress at once — as is a prune — and the
// lock is free again afterwards.
func TestConcurrentApplies(t *testing.T) {
	r := newRotation(t)
	r.populate(2)
	other, err := pgxpool.New(context.Background(), r.pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	otherStore := eventstore.New(other)
	replica := app.NewReencryptSecretsHandler(postgres.NewSealedValues(otherStore), postgres.NewKeyRotations(otherStore), postgres.NewRotationLock(other),
		func(key []byte) (app.Keyring, error) { return keyring.New(key) }, r.oldK.KeyID(), 0)

	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hooked := &hookedValues{SealedValues: r.values, onRecords: func() {
		once.Do(func() { close(inside); <-release })
	}}
	done := make(chan error, 1)
	go func() {
		_, err := r.handler(hooked, 0).Handle(adminCtx(), app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey})
		done <- err
	}()
	<-inside
	for _, dry := range []bool{false, true} {
		_, err := replica.Handle(adminCtx(), app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey, DryRun: dry})
		var e *domain.Error
		if !errors.As(err, &e) || e.Kind != domain.KindConflict || e.Code != "rotation_in_progress" ||
			!strings.Contains(e.Message, r.newK.KeyID()) || !strings.Contains(e.Message, r.oldK.KeyID()) {
			t.Fatalf("second run (dry %t): %v", dry, err)
		}
	}
	if _, err := app.NewPruneKeysHandler(postgres.NewSealedValues(otherStore), postgres.NewRotationLock(other)).Handle(adminCtx(),
		app.PruneKeys{Keep: r.newK.KeyID()}); !errors.Is(err, app.ErrRotationInProgress) {
		t.Fatalf("prune during an apply: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	res, err := replica.Handle(adminCtx(), app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey})
	if err != nil || res.Updated != 0 || res.AlreadyCurrent != len(r.plain) {
		t.Fatalf("after the first apply: %+v %v", res, err)
	}
	if n := len(r.reencryptEvents()); n != 2 {
		t.Fatalf("%d reencrypt events, want 2 (refused runs record nothing)", n)
	}
}

// Prune refuses while a value lacks the kept key and while rotation is
// frozen; otherwise it drops the other keys' ciphertexts with its event in
// one transaction.
func TestPruneAndTheRollbackFreeze(t *testing.T) {
	r := newRotation(t)
	r.populate(3)
	n := len(r.plain)
	ctx := adminCtx()
	prune := app.NewPruneKeysHandler(r.values, r.lock)
	before := r.checksum()
	_, err := prune.Handle(ctx, app.PruneKeys{Keep: r.newK.KeyID(), Operator: "ops@host"})
	if domain.ErrorKind(err) != domain.KindConflict || !strings.Contains(err.Error(), "keys_missing") || !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", n, n)) {
		t.Fatalf("prune before the apply: %v", err)
	}
	if _, err := prune.Handle(ctx, app.PruneKeys{Keep: "not-a-key-id"}); domain.ErrorKind(err) != domain.KindInvalid {
		t.Fatalf("bad key id: %v", err)
	}
	if r.checksum() != before {
		t.Fatal("a refused prune wrote")
	}
	r.reencrypt(false)

	// Restart under the new key, then back under the old one: frozen.
	started := func(k *keyring.Keyring) *domain.KeyRotationRolledBack {
		rb, err := app.NewRecordKeyRollbackHandler(r.rotations, k).Handle(app.WithCaller(context.Background(), app.Caller{Email: "system"}), "host-1")
		if err != nil {
			t.Fatal(err)
		}
		return rb
	}
	if started(r.newK) != nil {
		t.Fatal("rollback on the switch")
	}
	if rb := started(r.oldK); rb == nil || rb.FromKeyID != r.newK.KeyID() || rb.ToKeyID != r.oldK.KeyID() {
		t.Fatalf("rollback %+v", rb)
	}
	for name, err := range map[string]error{
		"apply": func() error {
			_, err := r.handler(r.values, 0).Handle(ctx, app.ReencryptSecrets{OldKey: r.oldKey, NewKey: r.newKey})
			return err
		}(),
		"prune": func() error { _, err := prune.Handle(ctx, app.PruneKeys{Keep: r.newK.KeyID()}); return err }(),
	} {
		if domain.ErrorKind(err) != domain.KindConflict || !strings.Contains(err.Error(), "rotation_frozen") {
			t.Fatalf("%s while frozen: %v", name, err)
		}
	}
	wantCounts(t, r.reencrypt(true), n, 0, n, 0) // dry runs stay allowed
	if err := app.NewUnfreezeRotationHandler(r.rotations).Handle(ctx, app.UnfreezeRotation{Incident: "INC-123", Reason: "canary failed", Operator: "ops@host"}); err != nil {
		t.Fatal(err)
	}

	p, err := prune.Handle(ctx, app.PruneKeys{Keep: r.newK.KeyID(), Operator: "ops@host"})
	if err != nil || p.Values != n || len(p.Dropped) != 1 || p.Dropped[r.oldK.KeyID()] != n {
		t.Fatalf("prune: %+v %v", p, err)
	}
	r.checkOpens(r.newK)
	c, _ := r.values.Census(context.Background())
	if c.Values != n || len(c.ByKeyID) != 1 || c.ByKeyID[r.newK.KeyID()] != n {
		t.Fatalf("census after prune %+v", c)
	}
	if _, err := app.NewOpenExchangeCredentialsHandler(r.secrets, r.oldK).Handle(ctx, r.ids[0], domain.ExchangeBinance); err == nil ||
		!strings.Contains(err.Error(), "key id "+r.oldK.KeyID()) || !strings.Contains(err.Error(), r.newK.KeyID()) {
		t.Fatalf("the old key after the prune: %v", err)
	}
	again, err := prune.Handle(ctx, app.PruneKeys{Keep: r.newK.KeyID()})
	if err != nil || len(again.Dropped) != 0 {
		t.Fatalf("second prune: %+v %v", again, err)
	}
	evs, _ := r.store.ReadStream(context.Background(), nil, domain.KeyringStream, 0)
	var typesSeen []string
	for _, e := range evs {
		typesSeen = append(typesSeen, e.Type)
	}
	want := "security.key_rotation.reencrypt,security.key_rotation.activated,security.key_rotation.rollback," +
		"security.key_rotation.reencrypt,security.key_rotation.unfrozen,security.key_rotation.prune"
	if strings.Join(typesSeen, ",") != want {
		t.Fatalf("keyring stream %v", typesSeen)
	}
	var pruned domain.KeysPruned
	_ = json.Unmarshal(evs[len(evs)-1].Data, &pruned)
	if pruned.KeptKeyID != r.newK.KeyID() || pruned.Dropped[r.oldK.KeyID()] != n || pruned.Operator != "ops@host" {
		t.Fatalf("prune event %+v", pruned)
	}
}

// Replicas starting together under the old key after a switch record the
// rollback once.
func TestRollbackRecordedOnceByConcurrentStarts(t *testing.T) {
	r := newRotation(t)
	r.populate(1)
	r.reencrypt(false)
	ctx := app.WithCaller(context.Background(), app.Caller{Email: "system"})
	if _, err := app.NewRecordKeyRollbackHandler(r.rotations, r.newK).Handle(ctx, "h0"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	recorded := 0
	for i := range 6 {
		wg.Go(func() {
			rb, err := app.NewRecordKeyRollbackHandler(r.rotations, r.oldK).Handle(ctx, fmt.Sprintf("h%d", i))
			if err != nil {
				t.Error(err)
			}
			if rb != nil {
				mu.Lock()
				recorded++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	evs, _ := r.store.ReadStream(context.Background(), nil, domain.KeyringStream, 0)
	if recorded != 1 || len(evs) != 3 || evs[2].Type != domain.EventKeyRotationRollback {
		t.Fatalf("%d rollbacks reported, stream %d events", recorded, len(evs))
	}
}
