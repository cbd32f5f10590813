package export

import (
	"strings"
	"testing"
	"time"
)

func TestSubject(t *testing.T) {
	c := Config{SubjectPrefix: "tradeops.events"}
	for typ, want := range map[string]string{
		"auth.login.success": "tradeops.events.auth.login.success",
		"a b*c>d":            "tradeops.events.a_b_c_d",
		"x..y.":              "tradeops.events.x._.y._",
		"":                   "tradeops.events._",
		".lead":              "tradeops.events._.lead",
	} {
		if got := c.Subject(typ); got != want {
			t.Errorf("Subject(%q) = %q, want %q", typ, got, want)
		}
	}
}

func TestValidateNamesTheFieldAndHidesTheURLsPassword(t *testing.T) {
	good := Config{URL: "nats://u:canary@127.0.0.1:4222,tls://h2:4222", Stream: "S", SubjectPrefix: "a.b", Replicas: 3, Duplicates: time.Minute}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	if r := good.Redacted(); strings.Contains(r, "canary") || !strings.Contains(r, "127.0.0.1:4222") {
		t.Fatalf("Redacted() = %q", r)
	}
	for want, mutate := range map[string]func(*Config){
		"no NATS URL":         func(c *Config) { c.URL = "" },
		"scheme":              func(c *Config) { c.URL = "http://u:canary@h:4222" },
		"want nats://":        func(c *Config) { c.URL = "nats://u:canary@:4222" },
		"stream name":         func(c *Config) { c.Stream = "a.b" },
		"subject prefix":      func(c *Config) { c.SubjectPrefix = "a.>" },
		"replicas":            func(c *Config) { c.Replicas = 0 },
		"duplicate window":    func(c *Config) { c.Duplicates = time.Millisecond },
		"prefix \"a..b\"":     func(c *Config) { c.SubjectPrefix = "a..b" },
		"stream name \"\"":    func(c *Config) { c.Stream = "" },
		"subject prefix \"\"": func(c *Config) { c.SubjectPrefix = "" },
	} {
		c := good
		mutate(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "canary") {
			t.Errorf("%s: %v", want, err)
		}
	}
}
