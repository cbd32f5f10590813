package app

import (
	"context"
	"time"

	"github.com/tradeops/tradeops/domain"
)

// DailyRiskCompare asks for the day-by-day comparison of the risk profiles
// (admins only) over the UTC days From to To, both included, written
// YYYY-MM-DD. An empty To is today (UTC); an empty From is six days before
// To, so that the default is the last 7 days.
type DailyRiskCompare struct {
	From, To string
}

// DailyRiskCounts is what happened on one day under one profile.
type DailyRiskCounts struct {
	Prepares, Accepted, Rejected int64
	// RejectedByCheck counts rejected prepares by failed check code; a
	// prepare failing two checks counts under both.
	RejectedByCheck map[string]int64
	// Notionals are exact decimal strings.
	NotionalRequested, NotionalAccepted string
	// Test orders of the profile's users, per exchange.
	BinanceOK, BinanceError, IBKROK, IBKRError int64
	// Divergent counts the prepares the other profile decided differently.
	Divergent int64
}

// DailyRiskRow is one stored (day, profile) of the read model.
type DailyRiskRow struct {
	Day     time.Time // UTC midnight
	Profile domain.RiskProfile
	DailyRiskCounts
}

// DailyRiskReader reads the daily_risk_compare read model: the rows of the
// days from..to (UTC midnights, both included) that have any, in any order.
type DailyRiskReader interface {
	DailyRisk(ctx context.Context, from, to time.Time) ([]DailyRiskRow, error)
}

// DailyRiskDay is one day of the comparison: every profile, and how many of
// the day's prepares, all profiles together, the other profile would have
// decided differently.
type DailyRiskDay struct {
	Date      string // YYYY-MM-DD
	Profiles  map[domain.RiskProfile]DailyRiskCounts
	Divergent int64
}

// DailyRiskReport is the comparison over From..To: every day of the range,
// oldest first (the order a chart plots them in).
type DailyRiskReport struct {
	From, To string
	Days     []DailyRiskDay
}

// MaxDailyRiskDays bounds a report's range: a leap year.
const MaxDailyRiskDays = 366

// defaultDailyRiskDays is the range when From is not given.
const defaultDailyRiskDays = 7

// comparedProfiles are the profiles every day of a report shows, with zeros
// on a day nothing was decided under one.
var comparedProfiles = []domain.RiskProfile{domain.RiskProfileModel2, domain.RiskProfileLoose}

var (
	errInvalidDate = domain.Errorf(domain.KindInvalid, "invalid_date", "from and to must be UTC days written YYYY-MM-DD")
	errFromAfterTo = domain.Errorf(domain.KindInvalid, "invalid_range", "from must not be after to")
	errRangeTooBig = domain.Errorf(domain.KindInvalid, "invalid_range", "the range may span at most %d days", MaxDailyRiskDays)
)

// DailyRiskCompareHandler answers the daily comparison from the read model.
type DailyRiskCompareHandler struct {
	reader DailyRiskReader
	clock  Clock
}

func NewDailyRiskCompareHandler(reader DailyRiskReader, clock Clock) *DailyRiskCompareHandler {
	return &DailyRiskCompareHandler{reader: reader, clock: clock}
}

func (h *DailyRiskCompareHandler) Handle(ctx context.Context, q DailyRiskCompare) (DailyRiskReport, error) {
	c := CallerFrom(ctx)
	switch {
	case c.UserID == "":
		return DailyRiskReport{}, errUnauthenticated
	case c.Role != domain.RoleAdmin:
		return DailyRiskReport{}, errAdminOnly
	}
	from, to, err := h.dayRange(q)
	if err != nil {
		return DailyRiskReport{}, err
	}
	rows, err := h.reader.DailyRisk(ctx, from, to)
	if err != nil {
		return DailyRiskReport{}, err
	}
	report := DailyRiskReport{From: from.Format(time.DateOnly), To: to.Format(time.DateOnly)}
	index := map[string]int{}
	for d := from; !d.After(to); d = d.AddDate(0, 0, 1) {
		day := DailyRiskDay{Date: d.Format(time.DateOnly), Profiles: map[domain.RiskProfile]DailyRiskCounts{}}
		for _, p := range comparedProfiles {
			day.Profiles[p] = zeroDailyRiskCounts()
		}
		index[day.Date] = len(report.Days)
		report.Days = append(report.Days, day)
	}
	for _, r := range rows {
		i, ok := index[r.Day.Format(time.DateOnly)]
		if !ok {
			continue // outside the range asked for: the reader's bug, not the caller's
		}
		if r.RejectedByCheck == nil {
			r.RejectedByCheck = map[string]int64{}
		}
		report.Days[i].Profiles[r.Profile] = r.DailyRiskCounts
		report.Days[i].Divergent += r.Divergent
	}
	return report, nil
}

// dayRange parses and checks the range, applying the defaults.
func (h *DailyRiskCompareHandler) dayRange(q DailyRiskCompare) (from, to time.Time, err error) {
	now := h.clock.Now().UTC()
	to = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	if q.To != "" {
		if to, err = parseDay(q.To); err != nil {
			return from, to, err
		}
	}
	from = to.AddDate(0, 0, 1-defaultDailyRiskDays)
	if q.From != "" {
		if from, err = parseDay(q.From); err != nil {
			return from, to, err
		}
	}
	switch {
	case from.After(to):
		return from, to, errFromAfterTo
	case !from.AddDate(0, 0, MaxDailyRiskDays).After(to):
		return from, to, errRangeTooBig
	}
	return from, to, nil
}

func parseDay(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil || d.Format(time.DateOnly) != s {
		return time.Time{}, errInvalidDate
	}
	return d, nil
}

func zeroDailyRiskCounts() DailyRiskCounts {
	return DailyRiskCounts{RejectedByCheck: map[string]int64{}, NotionalRequested: "0", NotionalAccepted: "0"}
}
