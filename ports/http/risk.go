package http

import (
	"net/http"
	"time"

	"github.com/gorilla/mux"

	"github.com/tradeops/tradeops/app"
)

// Risk holds the use cases behind the admin's risk routes.
type Risk struct {
	Compare       *app.DailyRiskCompareHandler
	KillSwitch    *app.GetKillSwitchHandler
	SetKillSwitch *app.SetKillSwitchHandler
}

// RiskRoutes serves, for admins, GET /ops/risk/daily-compare?from=&to=
// (the day-by-day comparison of the risk profiles) and GET and PUT
// /ops/risk/kill-switch.
func RiskRoutes(h Risk, requireAdmin mux.MiddlewareFunc) Registrar {
	return func(r *mux.Router) {
		r.Handle("/ops/risk/daily-compare", requireAdmin(dailyCompare(h.Compare))).Methods(http.MethodGet)
		r.Handle("/ops/risk/kill-switch", requireAdmin(http.HandlerFunc(h.getKillSwitch))).Methods(http.MethodGet)
		r.Handle("/ops/risk/kill-switch", requireAdmin(http.HandlerFunc(h.setKillSwitch))).Methods(http.MethodPut)
	}
}

type killSwitchJSON struct {
	Engaged   bool       `json:"engaged"`
	Reason    string     `json:"reason"`
	ChangedBy *string    `json:"changed_by"`
	ChangedAt *time.Time `json:"changed_at"`
}

func killSwitchResponse(s app.KillSwitchState) killSwitchJSON {
	out := killSwitchJSON{Engaged: s.Engaged, Reason: s.Reason}
	if s.ChangedBy != "" {
		out.ChangedBy = &s.ChangedBy
	}
	if !s.ChangedAt.IsZero() {
		out.ChangedAt = &s.ChangedAt
	}
	return out
}

func (h Risk) getKillSwitch(w http.ResponseWriter, r *http.Request) {
	s, err := h.KillSwitch.Handle(r.Context())
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, killSwitchResponse(s))
}

// setKillSwitch takes {"engaged": bool, "reason": text}; engaged is
// required, so that a body missing it never releases the switch.
func (h Risk) setKillSwitch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Engaged *bool  `json:"engaged"`
		Reason  string `json:"reason"`
	}
	if !DecodeJSON(w, r, &req) {
		return
	}
	if req.Engaged == nil {
		writeErrorStatus(w, http.StatusBadRequest, "missing_engaged", "engaged (true or false) is required")
		return
	}
	s, err := h.SetKillSwitch.Handle(r.Context(), app.SetKillSwitch{Engaged: *req.Engaged, Reason: req.Reason})
	if err != nil {
		WriteError(w, r, err)
		return
	}
	WriteJSON(w, http.StatusOK, killSwitchResponse(s))
}

func dailyCompare(h *app.DailyRiskCompareHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query()
		report, err := h.Handle(r.Context(), app.DailyRiskCompare{From: v.Get("from"), To: v.Get("to")})
		if err != nil {
			WriteError(w, r, err)
			return
		}
		WriteJSON(w, http.StatusOK, dailyCompareJSON(report))
	})
}

type dailyCompareReport struct {
	From string            `json:"from"`
	To   string            `json:"to"`
	Days []dailyCompareDay `json:"days"`
}

type dailyCompareDay struct {
	Date               string                         `json:"date"`
	Profiles           map[string]dailyCompareProfile `json:"profiles"`
	DivergentDecisions int64                          `json:"divergent_decisions"`
}

type dailyCompareProfile struct {
	Prepares          int64            `json:"prepares"`
	Accepted          int64            `json:"accepted"`
	Rejected          int64            `json:"rejected"`
	RejectedByCheck   map[string]int64 `json:"rejected_by_check"`
	NotionalRequested string           `json:"notional_requested"`
	NotionalAccepted  string           `json:"notional_accepted"`
	TestOrders        struct {
		Binance testOrderCounts `json:"binance"`
		IBKR    testOrderCounts `json:"ibkr"`
	} `json:"test_orders"`
	Divergent int64 `json:"divergent"`
}

type testOrderCounts struct {
	OK    int64 `json:"ok"`
	Error int64 `json:"error"`
}

func dailyCompareJSON(rep app.DailyRiskReport) dailyCompareReport {
	out := dailyCompareReport{From: rep.From, To: rep.To, Days: make([]dailyCompareDay, len(rep.Days))}
	for i, d := range rep.Days {
		day := dailyCompareDay{Date: d.Date, Profiles: map[string]dailyCompareProfile{}, DivergentDecisions: d.Divergent}
		for name, c := range d.Profiles {
			p := dailyCompareProfile{Prepares: c.Prepares, Accepted: c.Accepted, Rejected: c.Rejected,
				RejectedByCheck: c.RejectedByCheck, NotionalRequested: c.NotionalRequested, NotionalAccepted: c.NotionalAccepted,
				Divergent: c.Divergent}
			p.TestOrders.Binance = testOrderCounts{OK: c.BinanceOK, Error: c.BinanceError}
			p.TestOrders.IBKR = testOrderCounts{OK: c.IBKROK, Error: c.IBKRError}
			day.Profiles[string(name)] = p
		}
		out.Days[i] = day
	}
	return out
}
