package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
)

// Prefix starts every placeholder, so that one is recognisable wherever it
// turns up: in a request to a host that is not its target (refused), in a
// file or a log (harmless: it is not the value).
const Prefix = "secrets-agent-proxy-"

// placeholderRandBytes is how much randomness a placeholder carries: 128
// bits, so one cannot be guessed from another.
const placeholderRandBytes = 16

// NewPlaceholder returns a fresh placeholder: Prefix and 32 random lower-case
// hex digits. Its characters are safe in a header value, a URL's userinfo,
// a file and a shell variable without quoting.
func NewPlaceholder() string {
	b := make([]byte, placeholderRandBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return Prefix + hex.EncodeToString(b)
}

// IsPlaceholder reports whether s is a whole placeholder as NewPlaceholder
// makes them.
func IsPlaceholder(s string) bool {
	h, ok := strings.CutPrefix(s, Prefix)
	if !ok || len(h) != 2*placeholderRandBytes {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// Placeholders hands out one placeholder per secret and keeps it for as long
// as the secret's session stays the same: a new session (the value changed)
// gets a new placeholder, so the old one stops working with the old value.
// Encode and LoadPlaceholders keep them across an agent restart, so that
// programs already running with a placeholder keep working. It is safe for
// concurrent use; the zero value is ready.
type Placeholders struct {
	mu sync.Mutex
	m  map[string]issued // by secret id
}

type issued struct {
	Session     string `json:"session"`
	Placeholder string `json:"placeholder"`
}

// Encode returns the placeholders as JSON (secret id -> session and
// placeholder; never a value), deterministic for the same content.
func (p *Placeholders) Encode() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := json.Marshal(p.m) // map keys are sorted
	if err != nil {
		panic(fmt.Sprintf("encode placeholders: %v", err)) // plain strings: cannot fail
	}
	return b
}

// LoadPlaceholders reads what Encode wrote. Entries that are not
// placeholders are dropped (they get new ones).
func LoadPlaceholders(b []byte) (*Placeholders, error) {
	var m map[string]issued
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("read placeholders: %w", err)
	}
	for id, is := range m {
		if !IsPlaceholder(is.Placeholder) {
			delete(m, id)
		}
	}
	return &Placeholders{m: m}, nil
}

// For returns the placeholder of secret id at session, making a new one
// when the secret has none yet or had one for another session.
func (p *Placeholders) For(id, session string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if is, ok := p.m[id]; ok && is.Session == session {
		return is.Placeholder
	}
	if p.m == nil {
		p.m = map[string]issued{}
	}
	ph := NewPlaceholder()
	p.m[id] = issued{Session: session, Placeholder: ph}
	return ph
}

// Retain forgets the placeholders of every secret whose id is not in ids,
// so that a secret deleted and later created again gets a new one.
func (p *Placeholders) Retain(ids []string) {
	keep := make(map[string]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.m {
		if !keep[id] {
			delete(p.m, id)
		}
	}
}
