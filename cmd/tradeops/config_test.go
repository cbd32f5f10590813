package main

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// goodEnv is a valid serve environment; cases override single variables.
func goodEnv(over map[string]string) env {
	m := map[string]string{
		"DATABASE_URL":   "postgres://u@127.0.0.1:1/x",
		"SECRET_KEY":     base64.StdEncoding.EncodeToString(randomBytes(32)),
		"ENCRYPTION_KEY": base64.StdEncoding.EncodeToString(randomBytes(32)),
	}
	for k, v := range over {
		m[k] = v
	}
	return envOf(m)
}

func wantUsageError(t *testing.T, err error, variable, why string) {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), variable) || !strings.Contains(err.Error(), why) {
		t.Fatalf("want exit 2 naming %s (%s), got %v", variable, why, err)
	}
}

func TestWeakKeysRefused(t *testing.T) {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	for name, tc := range map[string]struct {
		variable, value, why string
	}{
		"secret one byte repeated":      {"SECRET_KEY", strings.Repeat("a", 40), "distinct byte values"},
		"secret two bytes alternating":  {"SECRET_KEY", strings.Repeat("ab", 20), "distinct byte values"},
		"secret seven distinct bytes":   {"SECRET_KEY", "abcdefgbcdefgacdefgabdefgabcefgabcdfgabcdeg", "distinct byte values"},
		"secret word repeated":          {"SECRET_KEY", strings.Repeat("changeme!", 4), "repeats a 9-byte pattern"},
		"secret pattern, cut":           {"SECRET_KEY", strings.Repeat("0123456789", 4)[:36], "repeats a 10-byte pattern"},
		"secret mostly one byte":        {"SECRET_KEY", strings.Repeat("a", 22) + "0123456789", "estimated entropy is 62 bits"},
		"encryption all zero":           {"ENCRYPTION_KEY", b64(make([]byte, 32)), "distinct byte values"},
		"encryption 32 x 0x41":          {"ENCRYPTION_KEY", b64(bytes.Repeat([]byte{0x41}, 32)), "distinct byte values"},
		"encryption hex digits twice":   {"ENCRYPTION_KEY", b64([]byte("0123456789abcdef0123456789abcdef")), "repeats a 16-byte pattern"},
		"encryption, url-safe unpadded": {"ENCRYPTION_KEY", base64.RawURLEncoding.EncodeToString(make([]byte, 32)), "distinct byte values"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadConfig(goodEnv(map[string]string{tc.variable: tc.value}), false)
			wantUsageError(t, err, tc.variable, tc.why)
			if strings.Contains(err.Error(), tc.value) {
				t.Fatalf("the message quotes the value: %v", err)
			}
		})
	}
}

// TestRandomKeysPass: the formats the README and the tools produce pass the
// rule, including the weakest legitimate one (16 random bytes in hex).
func TestRandomKeysPass(t *testing.T) {
	gen := map[string]func() string{
		"openssl rand -hex 16":    func() string { return hex.EncodeToString(randomBytes(16)) },
		"openssl rand -base64 32": func() string { return base64.StdEncoding.EncodeToString(randomBytes(32)) },
		"passphrase":              func() string { return "correct horse battery staple, twice over" },
		"test key":                func() string { return string(testSecretKey) },
	}
	for name, g := range gen {
		for range 200 {
			v := g()
			if _, err := loadConfig(goodEnv(map[string]string{"SECRET_KEY": v}), false); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	for range 200 {
		if _, err := loadConfig(goodEnv(map[string]string{"ENCRYPTION_KEY": base64.RawURLEncoding.EncodeToString(randomBytes(32))}), false); err != nil {
			t.Fatal(err)
		}
	}
}

// TestDevSecretsPass: --dev's generated secrets and scripts/devsecrets.sh's
// go through the same rule and pass.
func TestDevSecretsPass(t *testing.T) {
	for range 200 {
		c, err := loadConfig(envOf(map[string]string{"DATABASE_URL": "postgres://u@127.0.0.1:1/x"}), true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c.GeneratedSecrets, []string{"SECRET_KEY", "ENCRYPTION_KEY"}) {
			t.Fatalf("generated %v", c.GeneratedSecrets)
		}
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	script, err := os.ReadFile("../../scripts/devsecrets.sh")
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		// A copy in a temporary checkout: the script writes .data/dev.env
		// next to its scripts/ directory.
		dir := t.TempDir()
		if err := os.Mkdir(filepath.Join(dir, "scripts"), 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "scripts", "devsecrets.sh")
		if err := os.WriteFile(path, script, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bash, "-c", `unset SECRET_KEY ENCRYPTION_KEY; eval "$("$0")"; printf '%s\n%s\n' "$SECRET_KEY" "$ENCRYPTION_KEY"`, path)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		secret, enc, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		if _, err := loadConfig(goodEnv(map[string]string{"SECRET_KEY": secret, "ENCRYPTION_KEY": enc}), false); err != nil {
			t.Fatalf("devsecrets.sh output refused: %v", err)
		}
	}
}

func TestTrustProxyHeaders(t *testing.T) {
	for v, want := range map[string]bool{"true": true, "false": false, "": false} {
		c, err := loadConfig(goodEnv(map[string]string{"TRUST_PROXY_HEADERS": v}), false)
		if err != nil || c.TrustProxy != want {
			t.Fatalf("%q: %v %v", v, c.TrustProxy, err)
		}
	}
	for _, v := range []string{"yes", "1", "TRUE", "ture", " true"} {
		_, err := loadConfig(goodEnv(map[string]string{"TRUST_PROXY_HEADERS": v}), false)
		wantUsageError(t, err, "TRUST_PROXY_HEADERS", "must be true or false")
	}
}

func TestTrustedProxies(t *testing.T) {
	c, err := loadConfig(goodEnv(nil), false)
	if err != nil || c.TrustedProxies != nil {
		t.Fatalf("unset: %v %v (want nil: the default ranges)", c.TrustedProxies, err)
	}
	c, err = loadConfig(goodEnv(map[string]string{"TRUSTED_PROXIES": " 10.1.2.3/16, 203.0.113.7 ,2001:db8::/32,::ffff:198.51.100.1"}), false)
	want := []netip.Prefix{
		netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("203.0.113.7/32"),
		netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("198.51.100.1/32"),
	}
	if err != nil || !slices.Equal(c.TrustedProxies, want) {
		t.Fatalf("got %v %v, want %v", c.TrustedProxies, err, want)
	}
	for _, v := range []string{"bogus", "10.0.0.0/33", "10.0.0.0/8,,192.168.0.0/16", "10.0.0.0/8,", "fe80::1%eth0", "10.0.0.1:80"} {
		_, err := loadConfig(goodEnv(map[string]string{"TRUSTED_PROXIES": v}), false)
		wantUsageError(t, err, "TRUSTED_PROXIES", "is not")
	}
}
