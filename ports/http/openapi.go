package http

import (
	"net/http"

	"github.com/gorilla/mux"
)

// APIDescriptionRoutes serves GET /openapi.yaml, the API's OpenAPI
// description (package api embeds it; the composition root passes it in),
// to anyone: it holds no secret and clients generate code from it.
func APIDescriptionRoutes(doc []byte) Registrar {
	return func(r *mux.Router) {
		r.HandleFunc("/openapi.yaml", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write(doc)
		}).Methods(http.MethodGet)
	}
}
