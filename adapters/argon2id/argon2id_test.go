package argon2id_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tradeops/tradeops/adapters/argon2id"
	"github.com/tradeops/tradeops/domain"
)

func TestHashAndVerify(t *testing.T) {
	h := argon2id.New(argon2id.OWASP, 0)
	ctx := context.Background()
	pw := domain.NewSecret("correct horse battery")
	hash, err := h.Hash(ctx, pw)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(hash.Reveal(), "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != "v=19" || parts[3] != "m=19456,t=2,p=1" {
		t.Fatalf("not a PHC string with OWASP parameters: %s", hash.Reveal())
	}
	if again, _ := h.Hash(ctx, pw); again.Reveal() == hash.Reveal() {
		t.Fatal("salt reused")
	}
	if ok, err := h.Verify(ctx, pw, hash); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := h.Verify(ctx, domain.NewSecret("correct horse batterY"), hash); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	// Parameters come from the stored hash.
	cheap := argon2id.New(argon2id.Params{MemoryKiB: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 1)
	old, _ := cheap.Hash(ctx, pw)
	if ok, err := h.Verify(ctx, pw, old); !ok || err != nil {
		t.Fatalf("older parameters: %v %v", ok, err)
	}
}

func TestMalformedHashes(t *testing.T) {
	h := argon2id.New(argon2id.OWASP, 1)
	for _, bad := range []string{"", "plain", "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		"$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "$argon2id$v=19$m=19456,t=2,p=1$!!$aGFzaA"} {
		if ok, err := h.Verify(context.Background(), domain.NewSecret("x"), domain.NewSecret(bad)); ok || err == nil {
			t.Errorf("%q: %v %v", bad, ok, err)
		} else if bad != "" && strings.Contains(err.Error(), bad) {
			t.Errorf("error echoes the hash: %v", err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	h := argon2id.New(argon2id.OWASP, 1)
	for b.Loop() {
		if _, err := h.Hash(context.Background(), domain.NewSecret("correct horse battery")); err != nil {
			b.Fatal(err)
		}
	}
}
