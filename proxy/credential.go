package proxy

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// Credential is one proxied secret: requests to TargetHosts get Value in
// Header, in place of Placeholder.
type Credential struct {
	SecretID    string // for logs; never the value
	Header      string // e.g. "Authorization"
	TargetHosts []string
	Placeholder string
	Value       secrets.Value
}

// Validate reports what is wrong with c, naming the field: a header that is
// not a valid field name, no target host or one that is not a host name or
// IP address (with an optional port), a placeholder not made by
// NewPlaceholder, or a value that could not go into a header (empty, or
// holding a control character such as CR or LF, which would split the
// request). The error never holds the value.
func (c Credential) Validate() error {
	if !validHeaderName(c.Header) {
		return fmt.Errorf("credentialProxy.header %q is not a valid HTTP header name", c.Header)
	}
	if len(c.TargetHosts) == 0 {
		return fmt.Errorf("credentialProxy.targetHosts is empty")
	}
	for _, h := range c.TargetHosts {
		if _, err := parseTarget(h); err != nil {
			return fmt.Errorf("credentialProxy.targetHosts: %w", err)
		}
	}
	if !IsPlaceholder(c.Placeholder) {
		return fmt.Errorf("placeholder is not one NewPlaceholder makes")
	}
	if len(c.Value) == 0 {
		return fmt.Errorf("value is empty")
	}
	if !validHeaderValue(c.Value) {
		return fmt.Errorf("value cannot be sent in a header: it holds a control character")
	}
	return nil
}

// target is one entry of targetHosts: a lower-case host, and a port when the
// entry names one (else any port matches).
type target struct{ host, port string }

func parseTarget(s string) (target, error) {
	t := target{host: strings.ToLower(s)}
	if h, p, err := net.SplitHostPort(s); err == nil {
		if _, err := strconv.ParseUint(p, 10, 16); err != nil {
			return target{}, fmt.Errorf("%q has no valid port", s)
		}
		t = target{host: strings.ToLower(h), port: p}
	}
	t.host = strings.TrimSuffix(strings.Trim(t.host, "[]"), ".")
	if t.host == "" || strings.ContainsAny(t.host, "/@?#* ") || strings.ContainsFunc(t.host, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return target{}, fmt.Errorf("%q is not a host name or IP address", s)
	}
	return t, nil
}

// table is an immutable set of credentials, swapped whole by Proxy.Set.
type table struct {
	byHost map[string][]*Credential // by lower-case host, without port
	ports  map[*Credential][]target
	byPH   map[string]*Credential
}

func newTable(creds []Credential) (*table, map[string]error) {
	t := &table{byHost: map[string][]*Credential{}, ports: map[*Credential][]target{}, byPH: map[string]*Credential{}}
	bad := map[string]error{}
	for i := range creds {
		c := creds[i]
		if err := c.Validate(); err != nil {
			bad[c.SecretID] = err
			continue
		}
		c.Header = http.CanonicalHeaderKey(c.Header)
		c.TargetHosts = slices.Clone(c.TargetHosts)
		for _, h := range c.TargetHosts {
			tg, _ := parseTarget(h)
			t.byHost[tg.host] = append(t.byHost[tg.host], &c)
			t.ports[&c] = append(t.ports[&c], tg)
		}
		t.byPH[c.Placeholder] = &c
	}
	return t, bad
}

// forHost returns the credentials whose targets include host:port, in the
// order they were set.
func (t *table) forHost(host, port string) []*Credential {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	var out []*Credential
	for _, c := range t.byHost[host] {
		for _, tg := range t.ports[c] {
			if tg.host == host && (tg.port == "" || tg.port == port) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// inject puts each credential of creds into h: its placeholder is replaced
// by its value wherever it appears in its header's value and in the
// userinfo of an "Authorization: Basic" header (which is how clients send a
// URL's user:password); a request without the header gets it with the value
// as stored.
func inject(h http.Header, creds []*Credential) {
	for _, c := range creds {
		replaceInBasic(h, c)
		vals := h.Values(c.Header)
		if len(vals) == 0 {
			h.Set(c.Header, string(c.Value))
			continue
		}
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = strings.ReplaceAll(v, c.Placeholder, string(c.Value))
		}
		h[c.Header] = out
	}
}

// replaceInBasic replaces c's placeholder inside the user:password of an
// "Authorization: Basic" header.
func replaceInBasic(h http.Header, c *Credential) {
	for i, v := range h["Authorization"] {
		up, ok := basicUserinfo(v)
		if !ok || !strings.Contains(up, c.Placeholder) {
			continue
		}
		up = strings.ReplaceAll(up, c.Placeholder, string(c.Value))
		h["Authorization"][i] = "Basic " + base64.StdEncoding.EncodeToString([]byte(up))
	}
}

// basicUserinfo decodes the user:password of a Basic authorization value.
func basicUserinfo(v string) (string, bool) {
	scheme, enc, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
	if err != nil {
		return "", false
	}
	return string(b), true
}

// carried reports where in a request a placeholder remains (the URL, or a
// header by name; "" when none), so that one bound for a host that is not
// its target is refused. It looks at the URL (userinfo, path, query), every
// header value and the decoded userinfo of Basic authorization; not at the
// body. The placeholder itself is returned so the caller can name its secret.
func carried(u *url.URL, h http.Header) (where, placeholder string) {
	if u != nil {
		if i := strings.Index(u.String(), Prefix); i >= 0 {
			return "the URL", extract(u.String()[i:])
		}
		if i := strings.Index(u.RawPath+u.Path, Prefix); i >= 0 {
			s := u.RawPath + u.Path
			return "the URL", extract(s[i:])
		}
	}
	for k, vs := range h {
		for _, v := range vs {
			if i := strings.Index(v, Prefix); i >= 0 {
				return "header " + k, extract(v[i:])
			}
			if up, ok := basicUserinfo(v); ok {
				if i := strings.Index(up, Prefix); i >= 0 {
					return "header " + k + " (Basic user:password)", extract(up[i:])
				}
			}
		}
	}
	return "", ""
}

// extract returns the placeholder at the start of s, or s cut to the
// length of one when it is not whole.
func extract(s string) string {
	n := len(Prefix) + 2*placeholderRandBytes
	if len(s) > n {
		s = s[:n]
	}
	return s
}

// validHeaderName reports whether s is an HTTP field name: one or more
// token characters (RFC 9110, 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether v can be sent as a field value: no
// control character but horizontal tab, and no DEL.
func validHeaderValue(v []byte) bool {
	for _, c := range v {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
