package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/tradeops/tradeops/domain"
	"github.com/tradeops/tradeops/eventstore"
)

// DailyRiskCompare is the daily_risk_compare projection: per UTC day and
// risk profile, the prepares decided under that profile — how many, accepted,
// rejected and by which failed check, the notional requested and accepted,
// how many the other profile's shadow evaluation decided differently — and
// the test orders of users under that profile, ok or error per exchange. The
// day and the profile are the ones the events carry, so a replay files every
// event where the live runner did.
type DailyRiskCompare struct{}

// DailyRiskCompareName names the projection.
const DailyRiskCompareName = "daily_risk_compare"

func (DailyRiskCompare) Name() string     { return DailyRiskCompareName }
func (DailyRiskCompare) Version() int     { return 1 }
func (DailyRiskCompare) Tables() []string { return []string{dailyRiskTable, dailyRiskChecksTable} }

const (
	dailyRiskTable       = "daily_risk_compare"
	dailyRiskChecksTable = "daily_risk_compare_checks"
)

// The kinds of event the projection counts, as the upsert's SQL names them.
const (
	kindPrepare      = "prepare"
	kindBinanceOK    = "binance_ok"
	kindBinanceError = "binance_error"
	kindIBKROK       = "ibkr_ok"
	kindIBKRError    = "ibkr_error"
)

var testOrderKinds = map[string]string{
	domain.EventBinanceTestOrderOK:  kindBinanceOK,
	domain.EventBinanceTestOrderErr: kindBinanceError,
	domain.EventIBKRTestOrderOK:     kindIBKROK,
	domain.EventIBKRTestOrderErr:    kindIBKRError,
}

// dailyRiskSchemaVersion is the payload version this projection reads (the
// store upcasts older ones before they get here).
const dailyRiskSchemaVersion = 1

// Apply adds the batch to the counters with one statement per table: the
// relevant events go to PostgreSQL as arrays, where they are grouped by day
// and profile and added to the stored rows — notionals summed as NUMERIC
// from their decimal strings, exactly. Other event types are skipped on
// their type alone, before any decoding. A relevant event whose payload does
// not hold what the projection needs is a DataError: the runner quarantines
// it rather than let it count wrong or not at all.
func (DailyRiskCompare) Apply(ctx context.Context, tx Tx, t Tables, events []eventstore.Event) error {
	var b dailyRiskBatch
	for _, e := range events {
		kind, ok := testOrderKinds[e.Type]
		if e.Type == domain.EventExecutionPrepare {
			kind, ok = kindPrepare, true
		}
		if !ok {
			continue
		}
		if err := b.add(kind, e); err != nil {
			return &DataError{EventID: e.ID, Err: fmt.Errorf("%s: %w", e.Type, err)}
		}
	}
	if len(b.day) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(dailyRiskUpsert, t.Of(dailyRiskTable).Sanitize()),
		b.day, b.profile, b.kind, b.accepted, b.notional, b.divergent); err != nil {
		return fmt.Errorf("%s: %w", dailyRiskTable, err)
	}
	if len(b.checkCode) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(dailyRiskChecksUpsert, t.Of(dailyRiskChecksTable).Sanitize()),
		b.checkDay, b.checkProfile, b.checkCode); err != nil {
		return fmt.Errorf("%s: %w", dailyRiskChecksTable, err)
	}
	return nil
}

// dailyRiskUpsert groups one row per event ($1..$6, parallel arrays) by day
// and profile and adds the groups to the table named by %s.
const dailyRiskUpsert = `INSERT INTO %s AS t (day, profile, prepares, accepted, rejected,
		notional_requested, notional_accepted, binance_ok, binance_error, ibkr_ok, ibkr_error, divergent)
	SELECT day::date, profile,
		count(*) FILTER (WHERE kind = 'prepare'),
		count(*) FILTER (WHERE kind = 'prepare' AND accepted),
		count(*) FILTER (WHERE kind = 'prepare' AND NOT accepted),
		coalesce(sum(notional::numeric), 0),
		coalesce(sum(notional::numeric) FILTER (WHERE accepted), 0),
		count(*) FILTER (WHERE kind = 'binance_ok'),
		count(*) FILTER (WHERE kind = 'binance_error'),
		count(*) FILTER (WHERE kind = 'ibkr_ok'),
		count(*) FILTER (WHERE kind = 'ibkr_error'),
		count(*) FILTER (WHERE divergent)
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::bool[])
		AS e(day, profile, kind, accepted, notional, divergent)
	GROUP BY day, profile
	ON CONFLICT (day, profile) DO UPDATE SET
		prepares = t.prepares + excluded.prepares,
		accepted = t.accepted + excluded.accepted,
		rejected = t.rejected + excluded.rejected,
		notional_requested = t.notional_requested + excluded.notional_requested,
		notional_accepted = t.notional_accepted + excluded.notional_accepted,
		binance_ok = t.binance_ok + excluded.binance_ok,
		binance_error = t.binance_error + excluded.binance_error,
		ibkr_ok = t.ibkr_ok + excluded.ibkr_ok,
		ibkr_error = t.ibkr_error + excluded.ibkr_error,
		divergent = t.divergent + excluded.divergent`

// dailyRiskChecksUpsert counts one row per (rejected prepare, failed check).
const dailyRiskChecksUpsert = `INSERT INTO %s AS t (day, profile, code, rejected)
	SELECT day::date, profile, code, count(*)
	FROM unnest($1::text[], $2::text[], $3::text[]) AS c(day, profile, code)
	GROUP BY day, profile, code
	ON CONFLICT (day, profile, code) DO UPDATE SET rejected = t.rejected + excluded.rejected`

// dailyRiskBatch is a batch's relevant events as columns: one row per event
// (notional is nil for test orders), and one per failed check of a
// rejected prepare.
type dailyRiskBatch struct {
	day, profile, kind []string
	accepted           []bool
	notional           []*string
	divergent          []bool

	checkDay, checkProfile, checkCode []string
}

func (b *dailyRiskBatch) add(kind string, e eventstore.Event) error {
	if e.SchemaVersion != dailyRiskSchemaVersion {
		return fmt.Errorf("schema version %d, this projection reads %d", e.SchemaVersion, dailyRiskSchemaVersion)
	}
	if kind != kindPrepare {
		// TestOrderSucceeded and TestOrderFailed share the two fields read.
		var p struct {
			Profile domain.RiskProfile `json:"profile"`
			Day     string             `json:"day"`
		}
		if err := json.Unmarshal(e.Data, &p); err != nil {
			return err
		}
		if err := checkDayProfile(p.Day, p.Profile); err != nil {
			return err
		}
		b.row(p.Day, p.Profile, kind, false, nil, false)
		return nil
	}
	var p domain.ExecutionPrepared
	if err := json.Unmarshal(e.Data, &p); err != nil {
		return err
	}
	if err := checkPrepared(p); err != nil {
		return err
	}
	accepted := p.Decision == domain.DecisionAccepted
	b.row(p.Day, p.Profile, kind, accepted, &p.Notional, p.Shadow.Decision != p.Decision)
	for i, code := range p.FailedChecks {
		if !slices.Contains(p.FailedChecks[:i], code) { // a check counts a prepare once
			b.checkDay, b.checkProfile, b.checkCode = append(b.checkDay, p.Day), append(b.checkProfile, string(p.Profile)), append(b.checkCode, code)
		}
	}
	return nil
}

func (b *dailyRiskBatch) row(day string, profile domain.RiskProfile, kind string, accepted bool, notional *string, divergent bool) {
	b.day, b.profile, b.kind = append(b.day, day), append(b.profile, string(profile)), append(b.kind, kind)
	b.accepted, b.notional, b.divergent = append(b.accepted, accepted), append(b.notional, notional), append(b.divergent, divergent)
}

var (
	// decimalText is the plain decimal notation events carry notionals in
	// (domain formats them so): no sign, no exponent, no NaN — which
	// PostgreSQL's NUMERIC would otherwise accept and sum into nonsense.
	// The bounds hold any qty × price the domain lets through (each ≤ 1e12
	// with ≤ 18 decimal places).
	decimalText = regexp.MustCompile(`^(0|[1-9][0-9]{0,39})(\.[0-9]{1,40})?$`)
	// checkCode is a check's stable code (RISK_MAX_NOTIONAL); codes the
	// projection does not know yet are counted like the others.
	checkCode = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)
)

func checkPrepared(p domain.ExecutionPrepared) error {
	if err := checkDayProfile(p.Day, p.Profile); err != nil {
		return err
	}
	if !decimalText.MatchString(p.Notional) {
		return fmt.Errorf("notional %q is not a plain non-negative decimal", p.Notional)
	}
	if !validOutcome(p.Decision) || !validOutcome(p.Shadow.Decision) {
		return fmt.Errorf("decision %q, shadow decision %q: want accepted or rejected", p.Decision, p.Shadow.Decision)
	}
	// Accepted means every check passed: a decision and its failed checks
	// that disagree would count under the wrong heading.
	if (p.Decision == domain.DecisionAccepted) != (len(p.FailedChecks) == 0) {
		return fmt.Errorf("decision %s with failed checks %q", p.Decision, p.FailedChecks)
	}
	for _, c := range p.FailedChecks {
		if !checkCode.MatchString(c) {
			return fmt.Errorf("failed check code %q", c)
		}
	}
	return nil
}

func checkDayProfile(day string, profile domain.RiskProfile) error {
	if _, err := domain.ParseRiskProfile(string(profile)); err != nil {
		return fmt.Errorf("profile %q is not a risk profile", profile)
	}
	if d, err := time.Parse(time.DateOnly, day); err != nil || d.Format(time.DateOnly) != day {
		return fmt.Errorf("day %q is not a UTC day written YYYY-MM-DD", day)
	}
	return nil
}

func validOutcome(o domain.DecisionOutcome) bool {
	return o == domain.DecisionAccepted || o == domain.DecisionRejected
}
