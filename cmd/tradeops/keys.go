package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
)

const keysUsage = `usage:
  tradeops keys id
      print the key id of ENCRYPTION_KEY (never the key)
  tradeops keys status
      sealed values (exchange secrets and TOTP seeds) per key id, how many lack
      each key, and the rotation state
  tradeops keys reencrypt --old-key-file FILE --new-key-file FILE [--apply] [--batch N]
      add a ciphertext under the new key beside the old one to every sealed value;
      a dry run (the default) writes nothing; rerunning is safe
  tradeops keys prune --keep KEY_ID
      drop every ciphertext not under KEY_ID; refused while a value lacks one under it
  tradeops keys unfreeze --incident ID --reason TEXT
      record the incident that explains a rollback, lifting the rotation freeze
Keys are read from files (e.g. the secret files the platform mounts), never from
arguments. ENCRYPTION_KEY (or ENCRYPTION_KEY_FILE) is the running key.`

func runKeys(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) == 0 {
		return usageError("%s", keysUsage)
	}
	sub, args := args[0], args[1:]
	if isHelp(sub) {
		return showUsage(io.out, keysUsage)
	}
	fs := flag.NewFlagSet("keys "+sub, flag.ContinueOnError)
	var (
		oldFile, newFile, keep, incident, reason string
		apply                                    bool
		batch                                    int
	)
	switch sub {
	case "id", "status":
	case "reencrypt":
		fs.StringVar(&oldFile, "old-key-file", "", "file holding the current key (base64)")
		fs.StringVar(&newFile, "new-key-file", "", "file holding the new key (base64)")
		fs.BoolVar(&apply, "apply", false, "write the new ciphertexts (default: dry run)")
		fs.IntVar(&batch, "batch", app.DefaultReencryptBatch, "records per transaction")
	case "prune":
		fs.StringVar(&keep, "keep", "", "the key id to keep (tradeops keys id)")
	case "unfreeze":
		fs.StringVar(&incident, "incident", "", "the incident id, e.g. INC-123")
		fs.StringVar(&reason, "reason", "", "why the rollback happened and why rotating is safe again")
	default:
		return usageError("unknown keys subcommand %q\n%s", sub, keysUsage)
	}
	// Every argument is allowed through parseFlags, which would quote a
	// stray one: it is refused below without being echoed.
	rest, err := parseFlags(fs, args, io.out, keysUsage, len(args))
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		// Not echoed: a mistaken argument may be a pasted key.
		return usageError("unexpected argument (keys are read from files, never from arguments)\n%s", keysUsage)
	}
	serverKeyID, err := runningKeyID(getenv, sub == "id")
	if err != nil {
		return err
	}
	if sub == "id" {
		fmt.Fprintln(io.out, serverKeyID)
		return nil
	}
	var cmd app.ReencryptSecrets
	switch {
	case sub == "reencrypt" && (oldFile == "" || newFile == ""):
		return usageError("reencrypt needs --old-key-file and --new-key-file\n%s", keysUsage)
	case sub == "reencrypt" && batch < 1:
		return usageError("--batch must be positive")
	case sub == "reencrypt":
		if cmd.OldKey, err = readKeyFile("--old-key-file", oldFile); err != nil {
			return err
		}
		if cmd.NewKey, err = readKeyFile("--new-key-file", newFile); err != nil {
			return err
		}
		cmd.DryRun = !apply
	case sub == "prune" && keep == "":
		return usageError("prune needs --keep KEY_ID\n%s", keysUsage)
	case sub == "unfreeze" && (incident == "" || reason == ""):
		return usageError("unfreeze needs --incident and --reason\n%s", keysUsage)
	}

	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool)
	values, rotations, lock := postgres.NewSealedValues(store), postgres.NewKeyRotations(store), postgres.NewRotationLock(pool)
	ctx = app.WithCaller(ctx, cliCaller())
	switch sub {
	case "status":
		st, err := app.NewKeysStatusHandler(values, rotations, serverKeyID).Handle(ctx)
		if err != nil {
			return err
		}
		return printKeysStatus(io, st)
	case "reencrypt":
		cmd.Operator = operator()
		res, err := app.NewReencryptSecretsHandler(values, rotations, lock, keyringFactory, serverKeyID, batch).Handle(ctx, cmd)
		if err != nil {
			return err
		}
		enc := json.NewEncoder(io.out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(porthttp.ReencryptResponse(res)); err != nil {
			return err
		}
		if res.FailedCount > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d sealed values were not covered (see \"failed\"); fix them and rerun", res.FailedCount)}
		}
		return nil
	case "prune":
		p, err := app.NewPruneKeysHandler(values, lock).Handle(ctx, app.PruneKeys{Keep: keep, Operator: operator()})
		if err != nil {
			return err
		}
		if len(p.Dropped) == 0 {
			fmt.Fprintf(io.out, "nothing to prune: every sealed value holds only key id %s\n", keep)
			return nil
		}
		for _, id := range slices.Sorted(maps.Keys(p.Dropped)) {
			fmt.Fprintf(io.out, "dropped %d ciphertexts under key id %s\n", p.Dropped[id], id)
		}
		fmt.Fprintf(io.out, "kept key id %s for all %d sealed values\n", keep, p.Values)
		return nil
	default: // unfreeze
		if err := app.NewUnfreezeRotationHandler(rotations).Handle(ctx, app.UnfreezeRotation{Incident: incident, Reason: reason, Operator: operator()}); err != nil {
			return err
		}
		fmt.Fprintf(io.out, "key rotation unfrozen (incident %s)\n", incident)
		return nil
	}
}

// runningKeyID is the key id of ENCRYPTION_KEY; empty when unset and not
// required.
func runningKeyID(getenv env, required bool) (string, error) {
	raw, err := lookup(getenv, "ENCRYPTION_KEY")
	if err != nil || (raw == "" && !required) {
		return "", err
	}
	key, err := domain.ParseEncryptionKey("ENCRYPTION_KEY", domain.NewSecret(raw))
	if err != nil {
		return "", usageError("%v", err)
	}
	k, err := newKeyring(key)
	if err != nil {
		return "", err
	}
	return k.KeyID(), nil
}

// readKeyFile reads a key from a file, without its trailing line break.
// The path may be a mounted secret file or a process substitution. It is
// not echoed on failure: a key pasted in its place must not reach a log.
func readKeyFile(flagName, path string) (domain.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return domain.Secret{}, usageError("%s: cannot read the file: %v", flagName, err)
	}
	return domain.NewSecret(strings.TrimRight(string(b), "\r\n")), nil
}

func printKeysStatus(io stdio, st app.KeysStatus) error {
	if st.ServerKeyID != "" {
		fmt.Fprintf(io.out, "running key id (ENCRYPTION_KEY): %s\n", st.ServerKeyID)
	}
	fmt.Fprintf(io.out, "sealed values (exchange secret fields and TOTP seeds): %d\n\n", st.Census.Values)
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY ID\tVALUES\tLACKING\t")
	ids := slices.Sorted(maps.Keys(st.Census.ByKeyID))
	if st.ServerKeyID != "" && !slices.Contains(ids, st.ServerKeyID) {
		ids = append(ids, st.ServerKeyID)
	}
	for _, id := range ids {
		note := ""
		if id == st.ServerKeyID {
			note = "(running)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", id, st.Census.ByKeyID[id], st.Census.Lacking(id), note)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.ServerKeyID != "" {
		if n := st.Census.Lacking(st.ServerKeyID); n > 0 {
			fmt.Fprintf(io.out, "\nWARNING: %d sealed values have no ciphertext under the running key id %s: a server with this key cannot open them\n", n, st.ServerKeyID)
		}
	}
	fmt.Fprintln(io.out)
	if a := st.LastApply; a != nil {
		fmt.Fprintf(io.out, "last applied rotation: key id %s -> %s (%d updated, %d already current, %d failed, completed %t)\n",
			a.OldKeyID, a.NewKeyID, a.Updated, a.AlreadyCurrent, a.Failed, a.Completed)
	} else {
		fmt.Fprintln(io.out, "no rotation applied yet")
	}
	if f := st.Frozen; f != nil {
		fmt.Fprintf(io.out, "rotation FROZEN: a server started again under key id %s after the rotation to %s (rollback on %s); "+
			"run `tradeops keys unfreeze --incident ID --reason TEXT` once the incident is recorded\n", f.ToKeyID, f.FromKeyID, f.Host)
	} else {
		fmt.Fprintln(io.out, "rotation not frozen")
	}
	return nil
}
