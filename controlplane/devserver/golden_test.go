package devserver

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

// The devserver's answers must have Ona's shape: every field it writes is
// one the fixtures in ../testdata/ona (written from Ona's SDK) have, under
// the same name and of the same JSON kind. The devserver may write less;
// what it adds beyond Ona is listed in devserverAdditions.

// devserverAdditions are the paths the devserver writes that Ona's messages
// do not have, each documented where it is defined.
var devserverAdditions = map[string]bool{
	"secret.session":    true, // Secret.Session
	"secrets[].session": true,
}

func goldenJSON(t *testing.T, name string) any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "ona", name))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

// shapeDiff lists each path of got that golden lacks or holds as another
// JSON kind. An array's elements are compared with the union of golden's
// elements, so the fixture may spread its fields over several.
func shapeDiff(path string, got, golden any) []string {
	switch g := got.(type) {
	case map[string]any:
		o, ok := golden.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: an object, Ona has %s", path, kind(golden))}
		}
		var diffs []string
		for k, v := range g {
			gv, ok := o[k]
			if !ok && devserverAdditions[strings.TrimPrefix(path+"."+k, ".")] {
				continue
			}
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s.%s: not in Ona's message", path, k))
				continue
			}
			diffs = append(diffs, shapeDiff(path+"."+k, v, gv)...)
		}
		return diffs
	case []any:
		a, ok := golden.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s: an array, Ona has %s", path, kind(golden))}
		}
		var union any
		for _, e := range a {
			union = merge(union, e)
		}
		var diffs []string
		for _, e := range g {
			diffs = append(diffs, shapeDiff(path+"[]", e, union)...)
		}
		return diffs
	}
	if kind(got) != kind(golden) {
		return []string{fmt.Sprintf("%s: %s, Ona has %s", path, kind(got), kind(golden))}
	}
	return nil
}

// merge returns a and b's objects merged, keys of both; otherwise a.
func merge(a, b any) any {
	ao, ok1 := a.(map[string]any)
	bo, ok2 := b.(map[string]any)
	if !ok1 || !ok2 {
		if a == nil {
			return b
		}
		return a
	}
	out := map[string]any{}
	for k, v := range ao {
		out[k] = v
	}
	for k, v := range bo {
		out[k] = merge(out[k], v)
	}
	return out
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	case string:
		return "a string"
	case float64:
		return "a number"
	case bool:
		return "a bool"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", v)
}

func wantShape(t *testing.T, what, body, fixture string) {
	t.Helper()
	var got any
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	diffs := shapeDiff("", got, goldenJSON(t, fixture))
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Errorf("%s (vs %s): %s", what, fixture, d)
	}
}

func TestDevserverAnswersHaveOnasShape(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	ts.createSecret(t, "GH_TOKEN", SecretScope{UserID: "user1"}, envMount, []byte("u"))
	ts.createSecret(t, "npmrc", SecretScope{ProjectID: "proj1"}, SecretMount{FilePath: "/home/u/.npmrc"}, []byte("p"))
	ts.createSecret(t, "ghcr pull", SecretScope{OrganizationID: "org1"}, SecretMount{ContainerRegistryBasicAuthHost: "ghcr.io"}, []byte("dTpw"))
	ts.createSecret(t, "signing key", SecretScope{OrganizationID: "org1"}, SecretMount{APIOnly: true}, []byte("k"))

	status, _, body := post(t, ts, controlplane.ProcGetEnvironment, tok, "application/json", `{"environmentId":"`+envID+`"}`)
	if status != 200 {
		t.Fatalf("GetEnvironment: HTTP %d %s", status, body)
	}
	wantShape(t, "GetEnvironment", body, "get_environment.json")

	status, _, body = post(t, ts, ProcListSecrets, ts.admin.Token, "application/json", `{"pagination":{"pageSize":2}}`)
	if status != 200 {
		t.Fatalf("ListSecrets: HTTP %d %s", status, body)
	}
	if !strings.Contains(body, `"nextToken"`) {
		t.Errorf("ListSecrets of 4 in pages of 2 = %s; want a nextToken", body)
	}
	wantShape(t, "ListSecrets", body, "list_secrets.json")

	reqs, err := os.ReadFile(filepath.Join("..", "testdata", "ona", "create_secret_requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, req := range strings.Split(strings.TrimSpace(string(reqs)), "\n") {
		status, _, body := post(t, ts, "/api"+ProcCreateSecret, ts.admin.Token, "application/json", req)
		if status != 200 {
			t.Errorf("CreateSecret request %d of the fixture: HTTP %d %s", i+1, status, body)
			continue
		}
		var resp map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		wantShape(t, fmt.Sprintf("CreateSecret %d", i+1), `{"secret":`+string(resp["secret"])+`}`, "secret_response.json")
	}
}
