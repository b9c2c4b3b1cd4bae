package dockercfg

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/injectors"
)

// FuzzMerge feeds the merge an arbitrary config.json and a set of hosts the
// injector writes (one per line), then takes them away again, and checks
// that every key and entry that is not the injector's keeps its meaning
// after both passes, and that the injector's entries are there after the
// first and gone after the second.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(foreignConfig), "registry.example.com\ndocker.io", false)
	f.Add([]byte(foreignConfig), "other.example.com\ngcr.io", true)
	f.Add([]byte(`{"auths":{"r.example.com":{"auth":"eDp5","email":"e"}}}`), "R.example.com", false)
	f.Add([]byte(`{"credHelpers":null,"auths":null,"x":1e999}`), "a\nb", true)
	f.Add([]byte(``), "127.0.0.1:5000", false)
	f.Fuzz(func(t *testing.T, config []byte, hosts string, helper bool) {
		orig, err := parseDocument(config)
		if err != nil {
			return // not a JSON object: Apply fails the pass and writes nothing
		}
		mode := Inline
		if helper {
			mode = Helper
		}
		in, err := New(Options{ConfigDir: "/c", Mode: mode, StateDir: "/s", Owner: injectors.Owner{UID: -1, GID: -1}})
		if err != nil {
			t.Fatal(err)
		}
		man, err := newManifest()
		if err != nil {
			t.Fatal(err)
		}
		var wants []want
		ours := map[string]bool{}
		for _, h := range strings.Split(hosts, "\n") {
			s := registrySecret("s", h, "user", "pw")
			key := Key(h)
			if key == "" || ours[key] {
				continue
			}
			ours[key] = true
			wants = append(wants, want{s: s, key: key, auth: b64("user:pw"), out: new(injectors.Outcome)})
		}
		section := sectionAuths
		if helper {
			section = sectionCredHelpers
		}

		// Pass 1: add.
		p, err := in.mergeRead(configRead{data: config}, man, wants, nil)
		if err != nil {
			return // the section we write is not an object: the pass fails
		}
		out1 := config
		if p.doc.changed {
			if out1, err = p.doc.encode(); err != nil {
				t.Fatalf("encode: %v", err)
			}
		}
		d1 := mustParse(t, out1)
		assertOthersKept(t, orig, d1, section, ours)
		for key := range ours {
			e, err := d1.get(section, key)
			if err != nil || e == nil {
				t.Fatalf("%s[%q] missing after add: %s", section, key, out1)
			}
		}

		// Pass 2: remove.
		man = man.with(p.recs)
		p, err = in.mergeRead(configRead{data: out1}, man, nil, nil)
		if err != nil {
			t.Fatalf("remove pass: %v", err)
		}
		out2 := out1
		if p.doc.changed {
			if out2, err = p.doc.encode(); err != nil {
				t.Fatalf("encode: %v", err)
			}
		}
		d2 := mustParse(t, out2)
		assertOthersKept(t, orig, d2, section, ours)
		for key := range ours {
			if e, _ := d2.get(section, key); e != nil {
				t.Fatalf("%s[%q] left after removal: %s", section, key, out2)
			}
		}
	})
}

func mustParse(t *testing.T, data []byte) *document {
	t.Helper()
	d, err := parseDocument(data)
	if err != nil {
		t.Fatalf("output is not a JSON object: %v\n%q", err, data)
	}
	return d
}

// assertOthersKept checks that every top-level key of orig but section means
// the same in got, and so does every entry of section but ours.
func assertOthersKept(t *testing.T, orig, got *document, section string, ours map[string]bool) {
	t.Helper()
	for k, v := range orig.top {
		if k == section {
			continue
		}
		if g, ok := got.top[k]; !ok || !sameJSON(v, g) {
			t.Fatalf("top-level %q: %s became %s", k, v, g)
		}
	}
	var os map[string]json.RawMessage
	if err := json.Unmarshal(orig.top[section], &os); err != nil {
		return
	}
	gs, err := got.section(section)
	if err != nil {
		t.Fatalf("%s: %v", section, err)
	}
	for k, v := range os {
		if ours[k] {
			continue
		}
		if g, ok := gs[k]; !ok || !sameJSON(v, g) {
			t.Fatalf("%s[%q]: %s became %s", section, k, v, g)
		}
	}
}
