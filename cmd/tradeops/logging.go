package main

import (
	"io"
	"log/slog"
)

// newLogger writes JSON lines. Secret-bearing types redact themselves in
// LogValue, so nothing here filters; request bodies are never logged.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level}))
}
