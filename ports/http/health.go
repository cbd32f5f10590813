package http

import (
	"context"
	"net/http"
	"time"
)

// HealthChecker reports whether the database answers.
type HealthChecker interface {
	Ping(ctx context.Context) error
}

type healthResponse struct {
	Status   string `json:"status"`
	Database string `json:"database"`
	Version  string `json:"version"`
}

// healthHandler answers 200 "ok" when the service is ready and the database
// answers within a second; 503 "degraded" when the database does not
// answer; 503 "starting" while it answers but the service is not ready yet
// (migrations or start-up work pending), when the API would still refuse
// requests. It pings on every call, so it turns ok again on its own when
// the database comes back. Its 503s carry Retry-After like every other 503,
// so a load balancer or the smoke script knows when to ask again.
func healthHandler(version string, h HealthChecker, ready func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := h.Ping(ctx); err != nil {
			LoggerFrom(r.Context()).Warn("health: database unreachable", "err", err)
			w.Header().Set("Retry-After", "1")
			WriteJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "degraded", Database: "unreachable", Version: version})
			return
		}
		if ready != nil && !ready() {
			w.Header().Set("Retry-After", "1")
			WriteJSON(w, http.StatusServiceUnavailable, healthResponse{Status: "starting", Database: "ok", Version: version})
			return
		}
		WriteJSON(w, http.StatusOK, healthResponse{Status: "ok", Database: "ok", Version: version})
	})
}
