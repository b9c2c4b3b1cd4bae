package agent

import (
	"net/http"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

// TestValueOverTheResponseCapFailsOnlyItsSecret: the client refuses a value
// answer over its response cap (a 100 MB value) with resource_exhausted on a
// 200. That value is over the size cap, so the secret fails as invalid and is
// left out; its injector is not held back, and a good secret of the same kind
// is applied beside it on the very first pass.
func TestValueOverTheResponseCapFailsOnlyItsSecret(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("huge", "HUGE_FILE", controlplane.ScopeUser, "file", "/x/huge", "")
	r.cp.put("good", "GOOD_FILE", controlplane.ScopeUser, "file", "/x/good", "fine")
	r.cp.set(func(f *fakePlane) {
		f.valueErr["huge"] = &controlplane.Error{Procedure: controlplane.ProcGetSecretValue, Code: controlplane.CodeResourceExhausted,
			HTTPStatus: http.StatusOK, Message: "response body is over the limit of 8388608 bytes"}
	})
	r.pass(t)
	if got, _ := r.file.read(t, "/x/good"); got != "fine" {
		t.Errorf("good file = %q, want it applied beside the oversized one", got)
	}
	if _, ok := r.file.read(t, "/x/huge"); ok {
		t.Error("the oversized secret was written")
	}
	row := r.row(t, "huge")
	if row.Outcome != "failed" || !strings.Contains(row.Error, "value: is over the limit of 1048576 bytes") || row.Note != "not applied" {
		t.Errorf("oversized row = %+v; want failed, over the value size cap, not applied", row)
	}
}

// TestServerResourceExhaustedStillHoldsTheInjector: a resource_exhausted
// error answer (a quota, not an oversized value) is a fetch failure a retry
// may fix, so a secret with nothing applied yet still holds its injector back.
func TestServerResourceExhaustedStillHoldsTheInjector(t *testing.T) {
	r := newRig(t, nil)
	r.cp.put("s1", "KEY_FILE", controlplane.ScopeUser, "file", "/x/key", "k")
	r.cp.set(func(f *fakePlane) {
		f.valueErr["s1"] = &controlplane.Error{Procedure: controlplane.ProcGetSecretValue, Code: controlplane.CodeResourceExhausted,
			HTTPStatus: http.StatusTooManyRequests, Message: "quota"}
	})
	r.pass(t)
	if r.file.calls != 0 {
		t.Errorf("secretfile applied %d times, want held back", r.file.calls)
	}
}
