// Package api holds the OpenAPI description of tradeops' HTTP API
// (openapi.yaml), embedded so that the server serves the very document the
// tests validate its responses against.
package api

import _ "embed"

// OpenAPI is openapi.yaml, the API's OpenAPI 3.0 description.
//
//go:embed openapi.yaml
var OpenAPI []byte
