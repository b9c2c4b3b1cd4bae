package dockercfg

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/secrets-agent/secrets-agent/internal/jsonerr"
)

// The config.json sections this injector writes into.
const (
	sectionAuths       = "auths"
	sectionCredHelpers = "credHelpers"
)

// document is a docker config.json held as a generic JSON object: every
// top-level key maps to its raw JSON, so that keys the injector does not touch
// — including those docker/cli's ConfigFile struct does not know — come back
// with the same meaning (formatting may change, content never). Only the
// "auths" and "credHelpers" objects are opened, and in them only the entries
// the injector sets or deletes are rewritten.
type document struct {
	top      map[string]json.RawMessage
	sections map[string]map[string]json.RawMessage // opened sections
	dirty    map[string]bool                       // sections set or del changed, written back by encode
	changed  bool
}

// parseDocument reads config.json content. An empty (or all-whitespace) file
// and a JSON null are an empty config, as docker treats them; anything else
// that is not a JSON object is an error that names no content.
func parseDocument(data []byte) (*document, error) {
	d := &document{top: map[string]json.RawMessage{}, sections: map[string]map[string]json.RawMessage{}, dirty: map[string]bool{}}
	if len(bytes.TrimSpace(data)) == 0 {
		return d, nil
	}
	if err := json.Unmarshal(data, &d.top); err != nil {
		return nil, fmt.Errorf("is not a JSON object: %w", jsonerr.Scrub(err))
	}
	if d.top == nil {
		d.top = map[string]json.RawMessage{}
	}
	return d, nil
}

// section opens the object at top-level key name. A missing key or null is an
// empty section; any other non-object is an error.
func (d *document) section(name string) (map[string]json.RawMessage, error) {
	if s, ok := d.sections[name]; ok {
		return s, nil
	}
	s := map[string]json.RawMessage{}
	if raw, ok := d.top[name]; ok {
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("%q is not a JSON object: %w", name, jsonerr.Scrub(err))
		}
		if s == nil {
			s = map[string]json.RawMessage{}
		}
	}
	d.sections[name] = s
	return s, nil
}

// get returns the entry key of section name, or nil when there is none.
func (d *document) get(name, key string) (json.RawMessage, error) {
	s, err := d.section(name)
	if err != nil {
		return nil, err
	}
	return s[key], nil
}

// set makes the entry key of section name equal to v. Setting an entry to
// what it already means is no change.
func (d *document) set(name, key string, v json.RawMessage) error {
	s, err := d.section(name)
	if err != nil {
		return err
	}
	if cur, ok := s[key]; ok && sameJSON(cur, v) {
		return nil
	}
	s[key] = v
	d.changed, d.dirty[name] = true, true
	return nil
}

// del removes the entry key of section name; a missing entry is no change.
func (d *document) del(name, key string) error {
	s, err := d.section(name)
	if err != nil {
		return err
	}
	if _, ok := s[key]; !ok {
		return nil
	}
	delete(s, key)
	d.changed, d.dirty[name] = true, true
	return nil
}

// str returns the top-level key name as a string, or "" when it is missing or
// not a string.
func (d *document) str(name string) string {
	var s string
	if raw, ok := d.top[name]; ok {
		_ = json.Unmarshal(raw, &s)
	}
	return s
}

// encode returns the document as docker writes it: a tab-indented object.
// Changed sections are written back; an emptied credHelpers is dropped
// (docker omits it when empty), an emptied auths stays as {} (docker always
// writes it).
func (d *document) encode() ([]byte, error) {
	for name := range d.dirty {
		s := d.sections[name]
		if len(s) == 0 && name != sectionAuths {
			delete(d.top, name)
			continue
		}
		raw, err := marshal(s)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", name, err)
		}
		d.top[name] = raw
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "\t")
	if err := enc.Encode(d.top); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}

// marshal encodes v compactly with sorted object keys and without HTML
// escaping, so that equal meanings give equal bytes.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// canonical returns raw re-encoded with sorted keys and no insignificant
// whitespace; numbers keep their digits. Invalid JSON is returned as it is.
func canonical(raw json.RawMessage) []byte {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return raw
	}
	out, err := marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// sameJSON reports whether a and b mean the same JSON value. Equal bytes,
// or equal once whitespace is taken out (an entry as the indented
// config.json holds it and as the injector encodes it), are the same
// without decoding either, which is every entry but the changed ones.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) == nil && json.Compact(&cb, b) == nil && bytes.Equal(ca.Bytes(), cb.Bytes()) {
		return true
	}
	return bytes.Equal(canonical(a), canonical(b))
}

// credentialFields are the fields of an auths entry that carry or point at a
// credential. An entry the injector writes has "auth" and none of the others;
// any other field found in an entry it takes over (e.g. "email") is kept.
var credentialFields = []string{"auth", "username", "password", "identitytoken", "registrytoken", "serveraddress"}

// authEntry returns the auths entry for auth (base64 "user:password"): the
// non-credential fields of cur, if cur is an object, plus {"auth": auth}, the
// form docker itself writes.
func authEntry(cur json.RawMessage, auth string) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if cur != nil {
		if err := json.Unmarshal(cur, &fields); err != nil || fields == nil {
			fields = map[string]json.RawMessage{}
		}
	}
	for _, f := range credentialFields {
		delete(fields, f)
	}
	a, err := marshal(auth)
	if err != nil {
		return nil, err
	}
	fields["auth"] = a
	return marshal(fields)
}
