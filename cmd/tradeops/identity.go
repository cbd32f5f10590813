package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/adapters/token"
	"github.com/tradeops/tradeops/adapters/totp"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

// accessCacheTTL bounds how long another process's revocation (a logout on
// another replica, a CLI role change) takes to reach this one; this
// process's own changes apply at once.
const accessCacheTTL = 5 * time.Second

// identity is the wired identity feature (issue #3): its routes, the
// middleware other features guard theirs with, and the start-up work.
type identity struct {
	routes porthttp.Registrar
	auth   *porthttp.Authenticator
	// start runs once the schema is migrated: settling the login attempts
	// a stopped process left in flight, dev seeding and risk profile
	// binding. It returns only when done or when ctx ends, leaving the
	// periodic settling running until ctx ends.
	start func(ctx context.Context) error
}

// identityDeps are the knobs tests turn; serve uses the defaults.
type identityDeps struct {
	clock    app.Clock
	policy   domain.ThrottlePolicy
	tokenTTL time.Duration
	hasher   app.PasswordHasher
	// settleEvery is how often login attempts left in flight by a stopped
	// process (another replica's crash) are settled after the start.
	settleEvery time.Duration
}

var defaultIdentityDeps = identityDeps{clock: systemClock{}, policy: domain.DefaultThrottlePolicy, tokenTTL: token.DefaultTTL,
	hasher: argon2id.New(argon2id.OWASP, 0), settleEvery: domain.DefaultThrottlePolicy.InFlight}

func newIdentity(ctx context.Context, cfg config, getenv env, store *eventstore.Store, keys app.Keyring, out io.Writer, log *slog.Logger) (*identity, error) {
	return wireIdentity(ctx, cfg, getenv, store, keys, out, log, defaultIdentityDeps)
}

// wireIdentity wires the feature; keys is the process's one keyring (TOTP
// seeds), shared with the exchange secrets vault.
func wireIdentity(ctx context.Context, cfg config, getenv env, store *eventstore.Store, keys app.Keyring, out io.Writer, log *slog.Logger, d identityDeps) (*identity, error) {
	binding, err := riskProfileBinding(getenv, cfg.Dev)
	if err != nil {
		return nil, err
	}
	tokens, err := token.New(cfg.SecretKey, d.tokenTTL)
	if err != nil {
		return nil, usageError("SECRET_KEY: %v", err)
	}
	users := postgres.NewUsers(store, accessCacheTTL)
	attempts := postgres.NewLoginAttempts(store)
	hasher := d.hasher
	otp := totp.New()
	usernames := domain.NewUsernameKey(cfg.SecretKey)
	login, err := app.NewLoginHandler(ctx, users, attempts, hasher, keys, otp, tokens, usernames, d.policy, d.clock)
	if err != nil {
		return nil, err
	}
	auth := porthttp.NewAuthenticator(app.NewAuthenticateHandler(tokens, users, d.clock))
	routes := porthttp.IdentityRoutes(porthttp.Identity{
		Login:            login,
		Logout:           app.NewLogoutHandler(users, d.clock),
		SetupTwoFactor:   app.NewSetupTwoFactorHandler(users, keys, otp),
		EnableTwoFactor:  app.NewEnableTwoFactorHandler(users, attempts, keys, otp, usernames, d.policy, d.clock),
		DisableTwoFactor: app.NewDisableTwoFactorHandler(users, attempts, keys, otp, usernames, d.policy, d.clock),
		Me:               app.NewGetMeHandler(users),
	}, auth)
	seed := app.NewSeedDemoUsersHandler(users, app.NewCreateUserHandler(users, hasher))
	bind := app.NewBindRiskProfilesHandler(users)
	settle := app.NewSettleInterruptedLoginsHandler(attempts, d.policy, d.clock)
	settleInterrupted := func(ctx context.Context) error {
		n, err := settle.Handle(ctx)
		if n > 0 {
			log.Warn("settled login attempts a stopped process left in flight (recorded as auth.login.failure, reason interrupted)", "attempts", n)
		}
		return err
	}

	startOnce := func(ctx context.Context) error {
		if err := settleInterrupted(ctx); err != nil {
			return err
		}
		if cfg.Dev {
			created, err := seed.Handle(ctx, binding)
			if err != nil {
				return fmt.Errorf("seed demo users: %w", err)
			}
			printDemoUsers(out, created)
			if len(created) == 0 {
				log.Info("dev mode: users already exist; a lost demo password is reset with `tradeops users reset-password --email " + app.DemoAdminEmail + "`")
			}
		}
		unknown, err := bind.Handle(ctx, binding)
		if err != nil {
			return err
		}
		for _, email := range unknown {
			log.Warn("a RISK_PROFILE_*_EMAIL names no user yet; the binding applies at the next start", "email", email)
		}
		return nil
	}
	checkKeys := app.NewCheckSealedKeysHandler(postgres.NewSealedValues(store), keys.KeyID())
	// Like the migrations, the start-up work is retried while the database
	// misbehaves; the API stays closed (503) until it is done. A key that
	// opens none of the stored secrets is not retried: start fails. Then
	// attempts left in flight by another replica that died are settled
	// periodically until ctx ends.
	start := func(ctx context.Context) error {
		ctx = app.WithCaller(ctx, app.Caller{Email: "system", RequestID: uuid.NewString()})
		var report app.SealedKeyReport
		if err := postgres.Retry(ctx, log, "encryption key check", func(ctx context.Context) (err error) {
			report, err = checkKeys.Handle(ctx)
			return err
		}); err != nil {
			return err
		}
		if err := judgeSealedKeys(report, cfg, log); err != nil {
			return err
		}
		if err := postgres.Retry(ctx, log, "identity start-up", startOnce); err != nil {
			return err
		}
		go func() {
			tick := time.NewTicker(d.settleEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := settleInterrupted(ctx); err != nil && ctx.Err() == nil {
					log.Warn("settling interrupted login attempts failed; retrying later", "err", err)
				}
			}
		}()
		return nil
	}
	return &identity{routes: routes, auth: auth, start: start}, nil
}

// judgeSealedKeys refuses to start when values are stored and ENCRYPTION_KEY
// opens none of them (the wrong key: every 2FA login and exchange call would
// fail), and warns
// loudly when it opens only some. A key --dev generated cannot open what a
// previous run stored; that is expected there and only warned about.
func judgeSealedKeys(r app.SealedKeyReport, cfg config, log *slog.Logger) error {
	values, unopenable := r.Values()
	switch {
	case r.NoneOpenable() && !cfg.generated("ENCRYPTION_KEY"):
		return usageError("ENCRYPTION_KEY opens none of the %d stored encrypted values: they are under key id(s) %s, "+
			"this server's key id is %s; start with the key they were encrypted with (key ids are the first 8 bytes of SHA-256 of a key, in hex)",
			values, r.KeyIDs(), r.KeyID)
	case r.NoneOpenable():
		log.Warn("DEV MODE: the generated ENCRYPTION_KEY opens none of the stored encrypted values (2FA seeds, exchange secrets); their users cannot log in with 2FA nor reach an exchange. "+
			"`make run` keeps one development key across restarts (scripts/devsecrets.sh)",
			"key_id", r.KeyID, "values", values, "stored_key_ids", r.KeyIDs())
	case r.Partial():
		log.Warn("ENCRYPTION_KEY DOES NOT OPEN EVERY STORED ENCRYPTED VALUE: those without a ciphertext under this server's key id fail "+
			"(2FA logins, exchange calls) until they are re-encrypted under it (rerun the reencrypt apply; `tradeops keys status` counts them); "+
			"an interrupted key rotation or a mixed-up key is the usual cause",
			"key_id", r.KeyID, "values", values, "unopenable", unopenable, "stored_key_ids", r.KeyIDs())
	}
	return nil
}

// riskProfileBinding reads RISK_PROFILE_MODEL2_EMAIL and
// RISK_PROFILE_LOOSE_EMAIL; --dev defaults them to the demo users.
func riskProfileBinding(getenv env, dev bool) (app.RiskProfileBinding, error) {
	b := app.RiskProfileBinding{}
	for _, v := range []struct {
		name, devDefault string
		profile          domain.RiskProfile
	}{
		{"RISK_PROFILE_MODEL2_EMAIL", "model2@tradeops.local", domain.RiskProfileModel2},
		{"RISK_PROFILE_LOOSE_EMAIL", "loose@tradeops.local", domain.RiskProfileLoose},
	} {
		raw := getenv(v.name)
		if raw == "" && dev {
			raw = v.devDefault
		}
		if raw == "" {
			continue
		}
		email, err := domain.ParseEmail(raw)
		if err != nil {
			return nil, usageError("%s: %v", v.name, err)
		}
		if _, dup := b[email.String()]; dup {
			return nil, usageError("RISK_PROFILE_MODEL2_EMAIL and RISK_PROFILE_LOOSE_EMAIL name the same user")
		}
		b[email.String()] = v.profile
	}
	return b, nil
}

// printDemoUsers shows the generated demo credentials once, framed so they
// stand out from the JSON log lines around them.
func printDemoUsers(w io.Writer, users []app.CreatedUser) {
	if len(users) == 0 {
		return
	}
	sort.Slice(users, func(i, j int) bool { return users[i].Email < users[j].Email })
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(w, "\n%s\n  DEV MODE: demo users created (passwords are shown only this once)\n%s\n", rule, rule)
	for _, u := range users {
		fmt.Fprintf(w, "  %-32s %s\n", u.Email, u.GeneratedPassword.Reveal())
	}
	fmt.Fprintf(w, "%s\n\n", rule)
}
