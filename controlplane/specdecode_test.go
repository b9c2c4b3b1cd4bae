package controlplane

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/secrets-agent/secrets-agent/internal/jsonerr"
)

// sameAsUnmarshal decodes body with d and fails t unless the outcome is
// json.Unmarshal's: both succeed with DeepEqual environments, or both fail
// with the same (scrubbed) error.
func sameAsUnmarshal(t testing.TB, d *specDecoder, body []byte) {
	t.Helper()
	var want GetEnvironmentResponse
	werr := json.Unmarshal(body, &want)
	got, err := d.decode(body)
	switch {
	case werr != nil && err == nil:
		t.Fatalf("decode succeeded where json.Unmarshal failed (%v) on %q", werr, body)
	case werr == nil && err != nil:
		t.Fatalf("decode failed (%v) where json.Unmarshal succeeded on %q", err, body)
	case werr != nil:
		if w := fmt.Sprintf("response is not valid JSON: %v", jsonerr.Scrub(werr)); err.Error() != w {
			t.Fatalf("decode error %q, want %q, on %q", err, w, body)
		}
	case !reflect.DeepEqual(got, &want.Environment):
		t.Fatalf("decode gave %+v, json.Unmarshal %+v, on %q", got, want.Environment, body)
	}
}

// specBody is a GetEnvironment body with the given raw elements of
// environment.spec.secrets.
func specBody(elems ...string) []byte {
	return []byte(`{"environment":{"id":"e","spec":{"secrets":[` + strings.Join(elems, ",") + `]}}}`)
}

// nested returns depth arrays nested in one another.
func nested(depth int) string {
	return strings.Repeat("[", depth) + strings.Repeat("]", depth)
}

const (
	elemA = `{"id":"a","name":"A","scope":"SCOPE_USER","session":"1","environmentVariable":"A"}`
	elemB = `{"id":"b","name":"B","scope":"SCOPE_PROJECT","session":"1","filePath":"/run/secrets/b"}`
	elemC = `{"id":"c","credentialProxy":{"header":"Authorization","targetHosts":["x.example.com",""]},"apiOnly":true}`
)

// TestSpecDecoderTakesTheFastPathOnlyForTheUsualShape: every body decodes
// as json.Unmarshal decodes it, and the cache is filled only for the bodies
// of the usual shape (elsewhere the decoder falls back to json.Unmarshal of
// the whole body and empties it).
func TestSpecDecoderTakesTheFastPathOnlyForTheUsualShape(t *testing.T) {
	for _, c := range []struct {
		name string
		body string
		fast bool // the fast path is taken: the cache holds the elements
	}{
		{"usual", string(specBody(elemA, elemB, elemC)), true},
		{"white space everywhere", " \t\n{ \"environment\" :\r{\"spec\" : { \"secrets\" : [ " + elemA + " ,\n" + elemB + " ] } , \"id\":\"e\" } }\n", true},
		{"null elements", string(specBody("null", elemA, "null")), true},
		{"duplicated elements", string(specBody(elemA, elemA, elemB, elemA)), true},
		{"escapes and unicode", string(specBody(`{"id":"\u00e9\ud83d\ude00\ud800\"\\\/\b\f\n\r\t","name":"é😀","environmentVariable":"\u0041"}`)), true},
		{"invalid UTF-8 in strings", string(specBody("{\"id\":\"a\xff\xfeb\",\"name\":\"\xc3\"}")), true},
		{"numbers in unknown fields", string(specBody(`{"id":"a","n":[-0,0,1,-1.5,1e5,1E+5,0.5e-3,12345678901234567890123]}`)), true},
		{"unknown fields around", `{"x":{"environment":1},"environment":{"metadata":{"organizationId":"o","creator":{"id":"u"}},"status":{"phase":"P"},"y":[{"spec":2}],"spec":{"z":null,"secrets":[` + elemA + `],"w":true}},"v":false}`, true},
		{"case variants of other fields", `{"environment":{"ID":"x","id":"y","Id":"z","spec":{"secrets":[` + elemA + `]}}}`, true},
		{"element keys in any case", string(specBody(`{"ID":"a","Name":"n","ENVIRONMENTVARIABLE":"V","id":"b"}`)), true},
		{"element with duplicated keys", string(specBody(`{"id":"a","id":"b","filePath":"/x","filePath":null}`)), true},
		{"nesting at the limit", string(specBody(`{"id":"a","x":` + nested(maxNestingDepth-5) + `}`)), true},

		{"empty array (the fast path, nothing to cache)", string(specBody()), false},
		{"no secrets", `{"environment":{"id":"e","spec":{}}}`, false},
		{"no environment", `{}`, false},
		{"secrets null", `{"environment":{"spec":{"secrets":null}}}`, false},
		{"secrets an object", `{"environment":{"spec":{"secrets":{"id":"a"}}}}`, false},
		{"spec null", `{"environment":{"spec":null}}`, false},
		{"environment an array", `{"environment":[1]}`, false},
		{"root an array", `[{"environment":{}}]`, false},
		{"root null", `null`, false},
		{"Environment", `{"Environment":{"spec":{"secrets":[` + elemA + `]}}}`, false},
		{"SPEC beside spec", `{"environment":{"spec":{"secrets":[` + elemA + `]},"SPEC":{"secrets":[` + elemB + `]}}}`, false},
		{"Secrets before secrets", `{"environment":{"spec":{"Secrets":[` + elemB + `],"secrets":[` + elemA + `]}}}`, false},
		{"long s in secrets", `{"environment":{"spec":{"ſecrets":[` + elemA + `]}}}`, false},
		{"escaped key", `{"environment":{"spec":{"secr\u0065ts":[` + elemA + `]}}}`, false},
		{"escaped unrelated key", `{"environment":{"spec":{"secrets":[` + elemA + `],"\n":1}}}`, false},
		{"secrets twice", `{"environment":{"spec":{"secrets":[` + elemA + `],"secrets":[` + elemB + `]}}}`, false},
		{"environment twice", `{"environment":{"id":"e","spec":{"secrets":[` + elemA + `]}},"environment":{"spec":{"secrets":[` + elemB + `]}}}`, false},
		{"element of the wrong type", string(specBody(elemA, `"x"`)), false},
		{"field of the wrong type", string(specBody(elemA, `{"id":1}`)), false},
		{"envelope field of the wrong type", `{"environment":{"id":1,"spec":{"secrets":[` + elemA + `]}}}`, false},
		{"nesting over the limit", string(specBody(`{"id":"a","x":` + nested(maxNestingDepth-4) + `}`)), false},
		{"trailing garbage", string(specBody(elemA)) + "x", false},
		{"two values", string(specBody(elemA)) + "{}", false},
		{"trailing comma", `{"environment":{"spec":{"secrets":[` + elemA + `,]}}}`, false},
		{"missing comma", `{"environment":{"spec":{"secrets":[` + elemA + elemB + `]}}}`, false},
		{"control character", string(specBody(`{"id":"a` + "\t" + `"}`)), false},
		{"bad escape", string(specBody(`{"id":"\x"}`)), false},
		{"short unicode escape", string(specBody(`{"id":"\u12"}`)), false},
		{"leading zero", string(specBody(`{"n":01}`)), false},
		{"bare minus", string(specBody(`{"n":-}`)), false},
		{"no fraction digits", string(specBody(`{"n":1.}`)), false},
		{"no exponent digits", string(specBody(`{"n":1e+}`)), false},
		{"bad literal", string(specBody(`{"n":nul}`)), false},
		{"truncated", string(specBody(elemA))[:40], false},
		{"empty", ``, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d specDecoder
			sameAsUnmarshal(t, &d, specBody(elemA)) // a cache to empty
			sameAsUnmarshal(t, &d, []byte(c.body))
			if fast := len(d.last.entries) > 0; fast != c.fast {
				t.Errorf("fast path taken: %v, want %v", fast, c.fast)
			}
		})
	}
}

// withSession returns body, a largeSpec(n), with the session of secret i
// changed (same length).
func withSession(b testing.TB, body []byte, i int, n int) []byte {
	old := fmt.Sprintf("0193c4a6-%04x-7c1b-9f2d-%012x", i%0x10000, i)
	changed := bytes.Replace(body, []byte(old), []byte("X"+old[1:]), 1)
	if bytes.Equal(changed, body) {
		b.Fatalf("session %s of secret %d not in the %d-secret spec", old, i, n)
	}
	return changed
}

// TestSpecDecoderReusesUnchangedSecrets: after one session changed, every
// other secret is the earlier result's (its strings are the same memory),
// the changed one is decoded again, and the cache holds this answer's
// elements only.
func TestSpecDecoderReusesUnchangedSecrets(t *testing.T) {
	const n = 100
	first := largeSpec(n)
	second := withSession(t, first, 7, n)
	var d specDecoder
	sameAsUnmarshal(t, &d, first)
	a, b := decodeBoth(t, &d, first, second)
	for i := range n {
		x, y := a.Spec.Secrets[i], b.Spec.Secrets[i]
		same := unsafe.StringData(x.Name) == unsafe.StringData(y.Name) && unsafe.StringData(x.Session) == unsafe.StringData(y.Session)
		if same != (i != 7) {
			t.Errorf("secret %d: shares its strings with the last answer's: %v", i, same)
		}
	}
	if b.Spec.Secrets[7].Session[0] != 'X' {
		t.Errorf("changed session decoded as %q", b.Spec.Secrets[7].Session)
	}
	if len(d.last.entries) != n || d.last.index != nil || len(d.next.entries) != 0 || d.next.index != nil {
		t.Errorf("cache holds %d elements (scratch %d) and indexes %d, want %d (0) and no index: one secret edited in place needs none",
			len(d.last.entries), len(d.next.entries), len(d.last.index), n)
	}
}

// TestSpecDecoderFindsSecretsThatMoved: with one secret removed from the
// front of the array every later one moved; past maxBlind of them the
// decoder looks them up by content, and reuses them.
func TestSpecDecoderFindsSecretsThatMoved(t *testing.T) {
	const n = 100
	first := largeSpec(n)
	var r GetEnvironmentResponse
	if err := json.Unmarshal(first, &r); err != nil {
		t.Fatal(err)
	}
	r.Environment.Spec.Secrets = r.Environment.Spec.Secrets[1:]
	second, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var d specDecoder
	a, b := decodeBoth(t, &d, first, second)
	for i := range n - 1 {
		x, y := a.Spec.Secrets[i+1], b.Spec.Secrets[i]
		same := unsafe.StringData(x.Name) == unsafe.StringData(y.Name)
		if want := i >= maxBlind; same != want {
			t.Errorf("secret %d (was %d): shares its strings with the last answer's: %v, want %v", i, i+1, same, want)
		}
	}
}

// TestUnchangedSecretsCostNoAllocation: decoding the same 1,000-secret spec
// again allocates a small number of times whatever its size (the envelope, the
// result's slice), none per secret.
func TestUnchangedSecretsCostNoAllocation(t *testing.T) {
	const n = 1000
	body := largeSpec(n)
	var d specDecoder
	if _, err := d.decode(body); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(10, func() {
		if _, err := d.decode(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 20 {
		t.Errorf("decoding an unchanged %d-secret spec allocates %.0f times, want at most 20", n, allocs)
	}
	t.Logf("decoding an unchanged %d-secret spec allocates %.0f times", n, allocs)
}

// TestSpecDecoderIsSafeForConcurrentUse decodes two bodies on one decoder
// from several goroutines (run with -race).
func TestSpecDecoderIsSafeForConcurrentUse(t *testing.T) {
	bodies := [][]byte{largeSpec(50), withSession(t, largeSpec(50), 3, 50)}
	var d specDecoder
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 20 {
				body := bodies[(g+i)%2]
				env, err := d.decode(body)
				if err != nil {
					t.Error(err)
					return
				}
				var want GetEnvironmentResponse
				if err := json.Unmarshal(body, &want); err != nil || !reflect.DeepEqual(env, &want.Environment) {
					t.Errorf("decode differs from json.Unmarshal (%v)", err)
					return
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}

// FuzzDecodeEnvironmentMatchesUnmarshal: for any body, specDecoder.decode
// gives what json.Unmarshal gives (success or failure, the same error, a
// DeepEqual environment), cold and with a cache: body is decoded, then body
// with body[at:at+cut] replaced by edit (so most of the cache is hit), then
// body again. Seeds live in testdata/fuzz/FuzzDecodeEnvironmentMatchesUnmarshal.
func FuzzDecodeEnvironmentMatchesUnmarshal(f *testing.F) {
	f.Add(specBody(elemA, elemB, elemC), []byte(`"2"`), uint(58), uint16(3))
	f.Add(specBody(elemA, "null", elemA), []byte(`,`), uint(40), uint16(0))
	f.Fuzz(func(t *testing.T, body, edit []byte, at uint, cut uint16) {
		p := int(at % uint(len(body)+1))
		q := min(p+int(cut), len(body))
		edited := append(append(append([]byte(nil), body[:p]...), edit...), body[q:]...)
		var d specDecoder
		sameAsUnmarshal(t, &d, body)
		sameAsUnmarshal(t, &d, edited)
		sameAsUnmarshal(t, &d, body)
	})
}

// TestGetEnvironmentReusesTheLastAnswersSecrets: a Client's GetEnvironment,
// over real HTTP, answers what json.Unmarshal makes of each body, and the
// secret that did not change between two answers is the first answer's.
func TestGetEnvironmentReusesTheLastAnswersSecrets(t *testing.T) {
	bodies := [][]byte{specBody(elemA, elemB), specBody(elemA, strings.Replace(elemB, `"1"`, `"2"`, 1)), []byte(`{"environment":{"spec":{"Secrets":[]}}}`)}
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		_, _ = w.Write(bodies[(n-1)%len(bodies)])
	})
	c, _ := newClient(t, srv.URL, nil)
	var got []*Environment
	for _, body := range bodies {
		env, err := c.GetEnvironment(ctx10s(t), "e")
		if err != nil {
			t.Fatalf("GetEnvironment: %v", err)
		}
		var want GetEnvironmentResponse
		if err := json.Unmarshal(body, &want); err != nil || !reflect.DeepEqual(env, &want.Environment) {
			t.Fatalf("GetEnvironment = %+v, json.Unmarshal %+v (%v)", env, want.Environment, err)
		}
		got = append(got, env)
	}
	a, b := got[0].Spec.Secrets, got[1].Spec.Secrets
	if unsafe.StringData(a[0].Name) != unsafe.StringData(b[0].Name) {
		t.Error("the unchanged secret was decoded again")
	}
	if b[1].Session != "2" {
		t.Errorf("the changed secret's session is %q", b[1].Session)
	}
}

// decodeBoth decodes first, then second, with d, checking second against
// json.Unmarshal on the way.
func decodeBoth(t *testing.T, d *specDecoder, first, second []byte) (a, b *Environment) {
	t.Helper()
	a, err := d.decode(first)
	if err != nil {
		t.Fatal(err)
	}
	sameAsUnmarshal(t, d, second)
	if b, err = d.decode(second); err != nil {
		t.Fatal(err)
	}
	return a, b
}
