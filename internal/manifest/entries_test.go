package manifest

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

type item struct {
	ID   string `json:"id"`
	Mode uint32 `json:"mode,omitempty"`
	Ino  uint64 `json:"ino,omitempty"`
}

// TestEntriesEncodeAsJSONMarshalsTheMap: after any sequence of puts and
// deletes, AppendJSON is byte for byte json.Marshal of the same map, and
// Keys is its keys sorted, so a manifest encoded through Entries is the
// manifest encoding/json would write.
func TestEntriesEncodeAsJSONMarshalsTheMap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var es Entries[item]
	want := map[string]item{}
	keys := []string{"/home/u/a", "/home/u/b<&>", "/home/u/é", "x", "", `q"uote\`, "/run/secrets/z"}
	for i := range 200 {
		keys = append(keys, "/home/u/dir"+strconv.Itoa(r.IntN(20))+"/f"+strconv.Itoa(i))
	}
	for step := range 2000 {
		k := keys[r.IntN(len(keys))]
		switch r.IntN(4) {
		case 0:
			_, had := want[k]
			delete(want, k)
			if got := es.Delete(k); got != had {
				t.Fatalf("step %d: Delete(%q) = %v, want %v", step, k, got, had)
			}
		default:
			v := item{ID: "s" + strconv.Itoa(r.IntN(3)), Mode: uint32(r.IntN(2)) * 0o600, Ino: uint64(r.IntN(3))}
			old, had := want[k]
			want[k] = v
			if got := es.Put(k, v); got != (!had || old != v) {
				t.Fatalf("step %d: Put(%q) = %v, want %v", step, k, got, !had || old != v)
			}
		}
		if step%7 != 0 {
			continue // let changes pile up between encodings too
		}
		wantJSON, _ := json.Marshal(want)
		if got := es.AppendJSON(nil); string(got) != string(wantJSON) {
			t.Fatalf("step %d: AppendJSON =\n%s\nwant\n%s", step, got, wantJSON)
		}
		wantKeys := make([]string, 0, len(want))
		for k := range want {
			wantKeys = append(wantKeys, k)
		}
		slices.Sort(wantKeys)
		if got := es.Keys(); !slices.Equal(got, wantKeys) || es.Len() != len(want) {
			t.Fatalf("step %d: Keys = %q (Len %d), want %q", step, got, es.Len(), wantKeys)
		}
	}
}

// TestEntriesKeysHandedOutNeverChange: a Keys slice a caller holds stays as
// it was when keys are added or removed later.
func TestEntriesKeysHandedOutNeverChange(t *testing.T) {
	var es Entries[int]
	es.Put("b", 1)
	es.Put("d", 1)
	held := es.Keys()
	es.Put("a", 1)
	es.Put("c", 1)
	es.Delete("d")
	if !slices.Equal(held, []string{"b", "d"}) {
		t.Errorf("held keys = %q, want [b d]", held)
	}
	if got := es.Keys(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("Keys = %q, want [a b c]", got)
	}
	if got := es.AppendJSON(nil); string(got) != `{"a":1,"b":1,"c":1}` {
		t.Errorf("AppendJSON = %s", got)
	}
}
