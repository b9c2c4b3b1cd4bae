package faultproxy

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func startPair(t *testing.T) (*Proxy, chan string) {
	t.Helper()
	lines := make(chan string, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "Watch") {
			w.Header().Set("Content-Type", "application/jsonl")
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			for {
				select {
				case l := <-lines:
					io.WriteString(w, l+"\n")
					w.(http.Flusher).Flush()
				case <-r.Context().Done():
					return
				}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"environment":{"id":"e1","spec":{}}}`)
	}))
	t.Cleanup(up.Close)
	p, err := Start(up.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, lines
}

func get(t *testing.T, p *Proxy, path string) (int, string, error) {
	t.Helper()
	resp, err := http.Post(p.URL()+path, "application/json", strings.NewReader("{}"))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestRelaysUntouchedWithoutFault(t *testing.T) {
	p, _ := startPair(t)
	code, body, err := get(t, p, "/x/GetEnvironment")
	if err != nil || code != 200 || !strings.Contains(body, `"e1"`) {
		t.Fatalf("got %d %q %v", code, body, err)
	}
}

func TestStatusBurstEndsAfterCount(t *testing.T) {
	p, _ := startPair(t)
	p.Set(Fault{Status: 503, Count: 2})
	for i, want := range []int{503, 503, 200, 200} {
		code, body, err := get(t, p, "/x/GetEnvironment")
		if err != nil || code != want {
			t.Fatalf("request %d: got %d %v, want %d", i, code, err, want)
		}
		if code == 503 && !strings.Contains(body, `"unavailable"`) {
			t.Fatalf("503 body is not a Connect error: %q", body)
		}
	}
}

func TestResetTruncateGarbage(t *testing.T) {
	p, _ := startPair(t)
	p.Set(Fault{Reset: true})
	if _, _, err := get(t, p, "/x/GetEnvironment"); err == nil {
		t.Fatal("reset: want a connection error")
	}
	p.Set(Fault{Truncate: true})
	if _, _, err := get(t, p, "/x/GetEnvironment"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncate: want unexpected EOF, got %v", err)
	}
	p.Set(Fault{Garbage: true})
	if code, body, _ := get(t, p, "/x/GetEnvironment"); code != 200 || strings.HasPrefix(body, "{") {
		t.Fatalf("garbage: got %d %q", code, body)
	}
	p.Clear()
	if code, _, err := get(t, p, "/x/GetEnvironment"); err != nil || code != 200 {
		t.Fatalf("after clear: %d %v", code, err)
	}
}

func TestStallHoldsStreamUntilCleared(t *testing.T) {
	p, lines := startPair(t)
	p.Set(Fault{Path: "Watch", Stall: true})
	resp, err := http.Post(p.URL()+"/x/WatchEvents", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	lines <- `{"n":1}`
	got := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- l
	}()
	select {
	case l := <-got:
		t.Fatalf("stalled stream delivered %q", l)
	case <-time.After(200 * time.Millisecond):
	}
	p.Clear()
	select {
	case l := <-got:
		if l != "{\"n\":1}\n" {
			t.Fatalf("got %q", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not resume after Clear")
	}
}

func TestCutStreamsEndsStream(t *testing.T) {
	p, lines := startPair(t)
	resp, err := http.Post(p.URL()+"/x/WatchEvents", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	lines <- `{"n":1}`
	if l, err := br.ReadString('\n'); err != nil || l != "{\"n\":1}\n" {
		t.Fatalf("got %q %v", l, err)
	}
	p.CutStreams()
	done := make(chan error, 1)
	go func() { _, err := br.ReadString('\n'); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("want the stream to end with an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("stream not cut")
	}
}
