package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/google/uuid"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

const usersUsage = `usage:
  tradeops users create --email E --role admin|operator [--password-stdin]
  tradeops users list
  tradeops users set-role --email E --role admin|operator
  tradeops users reset-password --email E [--password-stdin]
  tradeops users disable-2fa --email E    (recovery for a lost authenticator)
Without --password-stdin a strong password is generated and printed once.`

// cliCaller is the actor of the events one CLI invocation appends; its
// request id (a fresh UUID) correlates them.
func cliCaller() app.Caller { return app.Caller{Email: "cli", RequestID: uuid.NewString()} }

// usersArgs are the parsed flags of a users subcommand.
type usersArgs struct {
	email, role   string
	passwordStdin bool
}

func runUsers(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return showUsage(io.out, usersUsage)
	}
	if len(args) == 0 {
		return usageError("%s", usersUsage)
	}
	sub := args[0]
	a, err := parseUsersArgs(sub, args[1:], io.out)
	if err != nil {
		return err
	}
	var password domain.Secret
	if a.passwordStdin {
		if password, err = readPassword(io.in); err != nil {
			return err
		}
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	users := postgres.NewUsers(eventstore.New(pool), 0)
	hasher := argon2id.New(argon2id.OWASP, 0)
	ctx = app.WithCaller(ctx, cliCaller())

	switch sub {
	case "create":
		u, err := app.NewCreateUserHandler(users, hasher).Handle(ctx, app.CreateUser{Email: a.email, Role: a.role, Password: password})
		if err != nil {
			return err
		}
		fmt.Fprintln(io.out, u.ID)
		printGenerated(io, u.GeneratedPassword)
	case "list":
		list, err := app.NewListUsersHandler(users).Handle(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tEMAIL\tROLE\tRISK_PROFILE\t2FA")
		for _, u := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", u.ID, u.Email, u.Role, u.RiskProfile, u.TOTPEnabled)
		}
		return tw.Flush()
	case "set-role":
		return app.NewChangeRoleHandler(users).Handle(ctx, app.ChangeRole{Email: a.email, Role: a.role})
	case "reset-password":
		generated, err := app.NewResetPasswordHandler(users, hasher, systemClock{}).Handle(ctx, app.ResetPassword{Email: a.email, Password: password})
		if err != nil {
			return err
		}
		printGenerated(io, generated)
	case "disable-2fa":
		return app.NewRecoverTwoFactorHandler(users, systemClock{}).Handle(ctx, a.email)
	}
	return nil
}

// parseUsersArgs parses and checks a subcommand's flags before anything
// touches the database: every mistake here exits 2; -h shows the usage.
func parseUsersArgs(sub string, args []string, stdout io.Writer) (usersArgs, error) {
	var a usersArgs
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	needEmail, needRole := true, false
	switch sub {
	case "create":
		needRole = true
		fs.BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	case "reset-password":
		fs.BoolVar(&a.passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	case "set-role":
		needRole = true
	case "disable-2fa":
	case "list":
		needEmail = false
	default:
		return a, usageError("unknown users subcommand %q\n%s", sub, usersUsage)
	}
	if needEmail {
		fs.StringVar(&a.email, "email", "", "the user's email")
	}
	if needRole {
		fs.StringVar(&a.role, "role", "", "admin or operator")
	}
	if _, err := parseFlags(fs, args, stdout, usersUsage, 0); err != nil {
		return a, err
	}
	if needEmail {
		if _, err := domain.ParseEmail(a.email); err != nil {
			return a, usageError("--email: %v", err)
		}
	}
	if needRole {
		if _, err := domain.ParseRole(a.role); err != nil {
			return a, usageError("--role: %v", err)
		}
	}
	return a, nil
}

// readPassword reads the first line of r (a pipe or a file, so the
// password stays out of the shell history and the process list).
func readPassword(r io.Reader) (domain.Secret, error) {
	b, err := io.ReadAll(io.LimitReader(r, domain.MaxPasswordLength+2))
	if err != nil {
		return domain.Secret{}, fmt.Errorf("read the password from stdin: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	p, err := domain.NewPassword(strings.TrimSuffix(line, "\r"))
	if err != nil {
		return domain.Secret{}, usageError("--password-stdin: %v", err)
	}
	return p, nil
}

func printGenerated(io stdio, password domain.Secret) {
	if password.IsZero() {
		return
	}
	fmt.Fprintln(io.out, password.Reveal())
	fmt.Fprintln(io.err, "The line above is the generated password. It is shown only this once; only its hash is stored.")
}
