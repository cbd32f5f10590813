package domain

import (
	"strings"
	"unicode/utf8"
)

// ValidText reports whether s is text every layer can keep unchanged: valid
// UTF-8 without NUL bytes. PostgreSQL refuses both in text columns, and JSON
// silently replaces invalid bytes, so input that fails is refused where it
// enters (HTTP port, CLI flags) before anything reads or writes with it.
func ValidText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}
