package devserver

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/secrets-agent/secrets-agent/controlplane"
)

// post sends body to proc with token and content type, as any Connect client
// would, and returns the status, Content-Type and body.
func post(t *testing.T, ts *testServer, proc, token, contentType, body string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), http.MethodPost, ts.url+proc, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if proc == controlplane.ProcWatchEvents && resp.StatusCode == http.StatusOK {
		return resp.StatusCode, resp.Header.Get("Content-Type"), "" // a stream: not read to its end
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func TestServerSpeaksConnectJSON(t *testing.T) {
	ts := startServer(t, t.TempDir(), 0)
	envID, tok := ts.createEnv(t, "org1", "proj1", "user1")
	cases := []struct {
		name        string
		proc, ctype string
		body        string
		status      int
		wantCType   string
		code        string // the error body's code; "" for a success
	}{
		{"unknown fields are ignored", controlplane.ProcGetEnvironment, "application/json",
			`{"environmentId":"` + envID + `","someFutureField":{"x":1}}`, 200, "application/json", ""},
		{"charset parameter is fine", controlplane.ProcGetEnvironment, "application/json; charset=utf-8",
			`{"environmentId":"` + envID + `"}`, 200, "application/json", ""},
		{"watch answers JSON lines", controlplane.ProcWatchEvents, "application/json",
			`{"environmentId":"` + envID + `"}`, 200, "application/jsonl", ""},
		{"other content type", controlplane.ProcGetEnvironment, "text/plain",
			`{"environmentId":"` + envID + `"}`, 400, "application/json", "invalid_argument"},
		{"malformed JSON", controlplane.ProcGetEnvironment, "application/json",
			`{"environmentId":`, 400, "application/json", "invalid_argument"},
		{"missing environment id", controlplane.ProcGetEnvironment, "application/json",
			`{}`, 400, "application/json", "invalid_argument"},
		{"unknown procedure", "/gitpod.v1.EnvironmentService/DeleteEverything", "application/json",
			`{}`, 501, "application/json", "unimplemented"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, ctype, body := post(t, ts, tc.proc, tok, tc.ctype, tc.body)
			if status != tc.status || ctype != tc.wantCType {
				t.Fatalf("HTTP %d %s %s, want %d %s", status, ctype, body, tc.status, tc.wantCType)
			}
			if tc.code == "" {
				return
			}
			var eb controlplane.ErrorBody
			if err := json.Unmarshal([]byte(body), &eb); err != nil || eb.Code != tc.code || eb.Message == "" {
				t.Fatalf("error body %s, want code %s with a message", body, tc.code)
			}
		})
	}
}
