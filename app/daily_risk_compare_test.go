package app

import (
	"context"
	"testing"
	"time"

	"github.com/tradeops/tradeops/domain"
)

type fixedClock time.Time

func (c fixedClock) Now() time.Time { return time.Time(c) }

// fakeDailyRisk returns rows and remembers the range it was asked for.
type fakeDailyRisk struct {
	rows     []DailyRiskRow
	from, to time.Time
	calls    int
}

func (f *fakeDailyRisk) DailyRisk(_ context.Context, from, to time.Time) ([]DailyRiskRow, error) {
	f.from, f.to, f.calls = from, to, f.calls+1
	return f.rows, nil
}

func day(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }

func TestDailyRiskCompareFillsEveryDayAndProfile(t *testing.T) {
	reader := &fakeDailyRisk{rows: []DailyRiskRow{
		{Day: day("2026-12-02"), Profile: domain.RiskProfileLoose, DailyRiskCounts: DailyRiskCounts{Prepares: 3, Accepted: 3,
			NotionalRequested: "0.3", NotionalAccepted: "0.3", Divergent: 2}},
		{Day: day("2026-12-02"), Profile: domain.RiskProfileModel2, DailyRiskCounts: DailyRiskCounts{Prepares: 1, Rejected: 1,
			RejectedByCheck: map[string]int64{domain.CheckMaxNotional: 1}, NotionalRequested: "9000", NotionalAccepted: "0", Divergent: 1}},
	}}
	// 01:00 in UTC+2 on the 4th is still the 3rd in UTC.
	h := NewDailyRiskCompareHandler(reader, fixedClock(time.Date(2026, 12, 4, 1, 0, 0, 0, time.FixedZone("EET", 2*3600))))
	rep, err := h.Handle(as("admin", domain.RoleAdmin), DailyRiskCompare{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.From != "2026-11-27" || rep.To != "2026-12-03" || len(rep.Days) != 7 ||
		!reader.from.Equal(day("2026-11-27")) || !reader.to.Equal(day("2026-12-03")) {
		t.Fatalf("default range: %s..%s, %d days; asked %v..%v", rep.From, rep.To, len(rep.Days), reader.from, reader.to)
	}
	for i, d := range rep.Days {
		if want := day("2026-11-27").AddDate(0, 0, i).Format(time.DateOnly); d.Date != want || len(d.Profiles) != 2 {
			t.Fatalf("day %d: %+v, want %s with both profiles (oldest first)", i, d, want)
		}
		if d.Date == "2026-12-02" {
			if d.Divergent != 3 || d.Profiles[domain.RiskProfileLoose].Prepares != 3 ||
				d.Profiles[domain.RiskProfileModel2].RejectedByCheck[domain.CheckMaxNotional] != 1 ||
				d.Profiles[domain.RiskProfileLoose].RejectedByCheck == nil {
				t.Fatalf("the stored day: %+v", d)
			}
			continue
		}
		for _, p := range []domain.RiskProfile{domain.RiskProfileModel2, domain.RiskProfileLoose} {
			c := d.Profiles[p]
			if c.Prepares != 0 || c.NotionalRequested != "0" || c.NotionalAccepted != "0" || c.RejectedByCheck == nil || d.Divergent != 0 {
				t.Fatalf("empty day %s %s: %+v", d.Date, p, c)
			}
		}
	}
}

func TestDailyRiskCompareRange(t *testing.T) {
	h := NewDailyRiskCompareHandler(&fakeDailyRisk{}, fixedClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)))
	admin := as("admin", domain.RoleAdmin)
	for _, tc := range []struct {
		q              DailyRiskCompare
		from, to, code string
	}{
		{q: DailyRiskCompare{From: "2026-12-01", To: "2026-12-01"}, from: "2026-12-01", to: "2026-12-01"},
		{q: DailyRiskCompare{To: "2026-03-02"}, from: "2026-02-24", to: "2026-03-02"},
		{q: DailyRiskCompare{From: "2026-12-05"}, from: "2026-12-05", to: "2026-12-07"},
		{q: DailyRiskCompare{From: "2024-01-01", To: "2024-12-31"}, from: "2024-01-01", to: "2024-12-31"}, // 366 days
		{q: DailyRiskCompare{From: "2025-01-01", To: "2026-01-01"}, from: "2025-01-01", to: "2026-01-01"}, // 366 days
		{q: DailyRiskCompare{From: "2025-01-01", To: "2026-01-02"}, code: "invalid_range"},                // 367
		{q: DailyRiskCompare{From: "2026-12-02", To: "2026-12-01"}, code: "invalid_range"},
		{q: DailyRiskCompare{From: "2026-12-08"}, code: "invalid_range"}, // after today, the default to
		{q: DailyRiskCompare{From: "2026-02-30"}, code: "invalid_date"},
		{q: DailyRiskCompare{From: "2026-2-01"}, code: "invalid_date"},
		{q: DailyRiskCompare{To: "2026-12-01T00:00:00Z"}, code: "invalid_date"},
		{q: DailyRiskCompare{To: "yesterday"}, code: "invalid_date"},
	} {
		rep, err := h.Handle(admin, tc.q)
		if codeOf(err) != tc.code || (err == nil && (rep.From != tc.from || rep.To != tc.to)) {
			t.Errorf("%+v: %s..%s %v, want %s..%s %q", tc.q, rep.From, rep.To, err, tc.from, tc.to, tc.code)
		}
	}
}

func TestDailyRiskCompareIsForAdmins(t *testing.T) {
	reader := &fakeDailyRisk{}
	h := NewDailyRiskCompareHandler(reader, fixedClock(time.Now()))
	if _, err := h.Handle(context.Background(), DailyRiskCompare{}); domain.ErrorKind(err) != domain.KindUnauthorized {
		t.Fatalf("anonymous: %v", err)
	}
	if _, err := h.Handle(as("op", domain.RoleOperator), DailyRiskCompare{}); domain.ErrorKind(err) != domain.KindForbidden {
		t.Fatalf("operator: %v", err)
	}
	if reader.calls != 0 {
		t.Fatal("the read model was read for a caller who may not see it")
	}
}
