package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tradeops/tradeops/adapters/postgres"
	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/eventstore"
	porthttp "github.com/tradeops/tradeops/ports/http"
	"github.com/tradeops/tradeops/projections"
)

// auditRoutes wires the audit endpoints over the audit_log read model. The
// admin's ?user=<email> is resolved by the users repository (its own
// instance: e-mail look-ups do not use the access cache).
func auditRoutes(store *eventstore.Store, auth *porthttp.Authenticator) porthttp.Registrar {
	log := projections.NewAuditLogReader(store.Pool())
	return porthttp.AuditRoutes(porthttp.AuditQueries{
		Mine: app.NewListMyAuditHandler(log),
		All:  app.NewListAuditHandler(log, postgres.NewUsers(store, 0)),
	}, auth.RequireUser, auth.RequireAdmin)
}

// riskRoutes wires the daily risk comparison over its read model and the
// kill switch.
func riskRoutes(store *eventstore.Store, auth *porthttp.Authenticator, clock app.Clock) porthttp.Registrar {
	ks := postgres.NewKillSwitch(store)
	return porthttp.RiskRoutes(porthttp.Risk{
		Compare:       app.NewDailyRiskCompareHandler(projections.NewDailyRiskReader(store.Pool()), clock),
		KillSwitch:    app.NewGetKillSwitchHandler(ks),
		SetKillSwitch: app.NewSetKillSwitchHandler(ks),
	}, auth.RequireAdmin)
}

const projectionsUsage = `usage:
  tradeops projections status
  tradeops projections rebuild NAME|--all [--batch N]
  tradeops projections rebuild audit_seal --reseal [--batch N]
rebuild replays the stream into shadow tables while the service keeps running,
then swaps them in and hands off to the live runner; a killed rebuild resumes.
--all rebuilds every projection but audit_seal, which only --reseal rebuilds.`

func runProjections(ctx context.Context, getenv env, io stdio, args []string) error {
	if len(args) > 0 && isHelp(args[0]) {
		return showUsage(io.out, projectionsUsage)
	}
	if len(args) == 0 {
		return usageError("%s", projectionsUsage)
	}
	switch args[0] {
	case "status":
		return projectionsStatus(ctx, getenv, io, args[1:])
	case "rebuild":
		return projectionsRebuild(ctx, getenv, io, args[1:])
	}
	return usageError("%s", projectionsUsage)
}

func projectionsStatus(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("projections status", flag.ContinueOnError)
	if _, err := parseFlags(fs, args, io.out, projectionsUsage, 0); err != nil {
		return err
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	statuses, err := projections.ReadStatus(ctx, pool, projections.All())
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(io.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECTION\tVERSION\tCHECKPOINT\tLAG EVENTS\tLAG SECONDS\tSTATE\tQUARANTINED")
	for _, s := range statuses {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%.1f\t%s\t%d\n", s.Name, s.Version, s.Checkpoint, s.LagEvents, s.LagSeconds, s.State, s.Quarantined)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range statuses {
		if s.Version != s.CodeVersion && s.State != "not started" {
			fmt.Fprintf(io.out, "\n%s: stored at version %d, this build writes version %d: run `tradeops projections rebuild %s`\n", s.Name, s.Version, s.CodeVersion, s.Name)
		}
		if s.LastError != "" {
			fmt.Fprintf(io.out, "\n%s: failing: %s\n", s.Name, s.LastError)
		}
		if r := s.Rebuild; r != nil {
			fmt.Fprintf(io.out, "\n%s: unfinished rebuild (phase %s, %d events at %s, last progress %s); rerun the rebuild to resume it\n",
				s.Name, r.Phase, r.EventsDone, r.Position, r.UpdatedAt.Format(time.RFC3339))
		}
		if len(s.Recent) > 0 {
			fmt.Fprintf(io.out, "\n%s: quarantined events (latest first):\n", s.Name)
			for _, q := range s.Recent {
				fmt.Fprintf(io.out, "  %s  %s  %s  %s: %s\n", q.Position, q.EventID, q.Type, q.At.Format(time.RFC3339), q.Error)
			}
		}
	}
	return nil
}

func projectionsRebuild(ctx context.Context, getenv env, io stdio, args []string) error {
	fs := flag.NewFlagSet("projections rebuild", flag.ContinueOnError)
	all := fs.Bool("all", false, "rebuild every projection except audit_seal")
	reseal := fs.Bool("reseal", false, "with audit_seal: re-seal the stream (refused unless the existing chain verifies)")
	batch := fs.Int("batch", 10000, "events per transaction")
	// NAME may come before the flags (where flag parsing would stop) or
	// after them.
	var name string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	maxArgs := 1
	if name != "" {
		maxArgs = 0
	}
	rest, err := parseFlags(fs, args, io.out, projectionsUsage, maxArgs)
	if err != nil {
		return err
	}
	if len(rest) == 1 {
		name = rest[0]
	}
	if *batch < 1 {
		return usageError("--batch must be positive")
	}
	var targets []projections.Projection
	for _, p := range projections.All() {
		if (*all && p.Name() != projections.SealName) || p.Name() == name {
			targets = append(targets, p)
		}
	}
	switch {
	case *all == (name != ""):
		return usageError("%s", projectionsUsage)
	case len(targets) == 0:
		return usageError("unknown projection %q (known: %s)", name, strings.Join(projectionNames(), ", "))
	case *reseal && name != projections.SealName:
		return usageError("--reseal applies to audit_seal only")
	}
	pool, err := openDB(ctx, getenv)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := eventstore.New(pool)
	for _, p := range targets {
		bar := newProgressBar(io.err)
		opts := projections.RebuildOptions{BatchSize: *batch, Progress: bar.update, Logger: newLogger(io.err, 0)}
		start := time.Now()
		var pos eventstore.Position
		if *reseal {
			record := app.NewRecordResealHandler(postgres.NewEvents(store))
			pos, err = projections.Reseal(app.WithCaller(ctx, cliCaller()), pool, store, record, operator(), opts)
		} else {
			pos, err = projections.Rebuild(ctx, pool, store, p, opts)
		}
		var refused *projections.SealRefusedError
		switch {
		case errors.As(err, &refused), errors.Is(err, projections.ErrSealRebuild):
			return &exitError{code: 1, err: err}
		case err != nil:
			return err
		}
		fmt.Fprintf(io.out, "%s: rebuilt %d events in %s; the live runner continues from %s\n",
			p.Name(), bar.last.Done, time.Since(start).Round(time.Millisecond), pos)
	}
	return nil
}

func projectionNames() []string {
	var names []string
	for _, p := range projections.All() {
		names = append(names, p.Name())
	}
	return names
}

// operator names who ran a command, for the events that record it.
func operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// progressBar renders rebuild progress: a bar redrawn in place on a
// terminal, a plain line about every second otherwise (logs, CI).
type progressBar struct {
	w      io.Writer
	tty    bool
	drawn  time.Time
	first  projections.RebuildProgress // when this run started (a resumed rebuild starts above zero)
	last   projections.RebuildProgress
	primed bool
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	return &progressBar{w: w, tty: ok && term.IsTerminal(int(f.Fd()))}
}

func (b *progressBar) update(p projections.RebuildProgress) {
	if !b.primed {
		b.first, b.primed = p, true
	}
	phaseChanged := p.Phase != b.last.Phase
	b.last = p
	every := time.Second
	if b.tty {
		every = 100 * time.Millisecond
	}
	if !phaseChanged && time.Since(b.drawn) < every {
		return
	}
	b.drawn = time.Now()
	rate := 0.0
	if d := (p.Elapsed - b.first.Elapsed).Seconds(); d > 0 {
		rate = float64(p.Done-b.first.Done) / d
	}
	pct, eta := 100.0, "-"
	if p.Total > 0 && p.Done < p.Total {
		pct = 100 * float64(p.Done) / float64(p.Total)
		if rate > 0 {
			eta = time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second)).Round(time.Second).String()
		}
	}
	if !b.tty {
		fmt.Fprintf(b.w, "rebuild %s: %s %d/%d events (%.1f%%), %.0f events/s, ETA %s\n", p.Projection, p.Phase, p.Done, p.Total, pct, rate, eta)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	fmt.Fprintf(b.w, "\r\033[K%s %-5s [%s%s] %5.1f%% %d/%d events  %.0f events/s  ETA %s",
		p.Projection, p.Phase, strings.Repeat("=", filled), strings.Repeat(" ", width-filled), pct, p.Done, p.Total, rate, eta)
	if p.Phase == "done" {
		fmt.Fprintln(b.w)
	}
}
