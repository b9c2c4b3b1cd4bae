package controlplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// streamServer answers WatchEvents by writing each of lines as it is (no
// newline added) and flushing, then calls end (which may block or hijack).
func streamServer(t *testing.T, lines []string, end func(w http.ResponseWriter, r *http.Request)) *server {
	return serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
		if r.URL.Path != ProcWatchEvents || r.Header.Get("Accept") != ContentTypeJSONL {
			writeConnectError(w, CodeInvalidArgument, "want a WatchEvents request accepting JSONL")
			return
		}
		w.Header().Set("Content-Type", ContentTypeJSONL)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for _, l := range lines {
			_, _ = io.WriteString(w, l)
			w.(http.Flusher).Flush()
		}
		if end != nil {
			end(w, r)
		}
	})
}

const updateLine = `{"operation":"RESOURCE_OPERATION_UPDATE","resourceType":"RESOURCE_TYPE_ENVIRONMENT","resourceId":"env-1"}`

func TestWatchEventsDeliversLinesThenEOF(t *testing.T) {
	srv := streamServer(t, []string{
		updateLine + "\n",
		"\n", // keep-alive
		`{"operation":"RESOURCE_OPERATION_DELETE","resourceType":"RESOURCE_TYPE_ENVIRONMENT","resourceId":"env-1","extra":{"a":1}}` + "\r\n",
		`{"operation":"RESOURCE_OPERATION_UPDATE",` + "\n" + `"resourceId":"env-2"}` + "\n",
	}, nil)
	c, _ := newClient(t, srv.URL, nil)
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer s.Close()
	want := []Event{
		{OpUpdate, ResEnvironment, "env-1"},
		{}, // the blank line, so that a silence timer sees it
		{OpDelete, ResEnvironment, "env-1"},
	}
	for i, w := range want {
		ev, err := s.Next()
		if err != nil || ev != w {
			t.Fatalf("event %d = %+v, %v; want %+v", i, ev, err, w)
		}
	}
	// A JSON object split over two lines is not a line of JSON.
	_, err = s.Next()
	wantCode(t, err, CodeInternal)
	if _, again := s.Next(); again != err {
		t.Errorf("Next after an error = %v, want the same error", again)
	}
}

func TestWatchEventsCleanEndIsEOF(t *testing.T) {
	srv := streamServer(t, []string{updateLine + "\n"}, nil)
	c, _ := newClient(t, srv.URL, nil)
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != io.EOF {
		t.Errorf("Next at the end = %v, want io.EOF", err)
	}
}

func TestWatchEventsStreamBreakingMidLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(w http.ResponseWriter, r *http.Request)
	}{
		// The server ends the response cleanly after half a line.
		{"clean end", nil},
		// The connection is cut after half a line (chunked encoding unfinished).
		{"cut connection", func(w http.ResponseWriter, r *http.Request) {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := streamServer(t, []string{updateLine + "\n", `{"operation":"RESOURCE_OPER`}, tc.end)
			c, _ := newClient(t, srv.URL, nil)
			s, err := c.WatchEvents(ctx10s(t), "env-1")
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err := s.Next(); err != nil {
				t.Fatalf("first event: %v", err)
			}
			_, err = s.Next()
			wantCode(t, err, CodeUnavailable)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error %v does not wrap io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestWatchEventsLineLengthCap(t *testing.T) {
	const max = 256
	// A line of exactly max bytes is fine; one byte more is not.
	pad := func(n int) string {
		l := `{"operation":"` + OpUpdate + `","resourceId":"`
		return l + strings.Repeat("x", n-len(l)-2) + `"}`
	}
	srv := streamServer(t, []string{pad(max) + "\n", pad(max+1) + "\n", updateLine + "\n"}, nil)
	c, _ := newClient(t, srv.URL, func(o *Options) { o.MaxLineBytes = max })
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(); err != nil {
		t.Fatalf("line of %d bytes: %v", max, err)
	}
	_, err = s.Next()
	wantCode(t, err, CodeResourceExhausted)
	if !errors.Is(err, ErrLineTooLong) {
		t.Errorf("error %v does not wrap ErrLineTooLong", err)
	}
}

func TestWatchEventsHugeLineIsCutOffNotBuffered(t *testing.T) {
	// 4 MiB without a newline against a 64 KiB cap.
	srv := streamServer(t, []string{strings.Repeat("a", 4<<20)}, nil)
	c, _ := newClient(t, srv.URL, nil)
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = s.Next()
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Next = %v, want ErrLineTooLong", err)
	}
	if cap(s.line) > 2*DefaultMaxLineBytes {
		t.Errorf("buffered %d bytes for a line capped at %d", cap(s.line), DefaultMaxLineBytes)
	}
}

// blockUntilGone keeps the response open until the client goes away.
func blockUntilGone(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func TestWatchEventsContextCancelEndsNext(t *testing.T) {
	srv := streamServer(t, []string{updateLine + "\n"}, blockUntilGone)
	c, _ := newClient(t, srv.URL, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := c.WatchEvents(ctx, "env-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		wantCode(t, err, CodeCanceled)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("error %v does not wrap context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after cancel")
	}
}

func TestWatchEventsCloseUnblocksNext(t *testing.T) {
	srv := streamServer(t, nil, blockUntilGone)
	c, _ := newClient(t, srv.URL, nil)
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	if err := s.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	_ = s.Close() // twice is fine
	select {
	case err := <-done:
		wantCode(t, err, CodeCanceled)
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after Close")
	}
}

func TestWatchEventsErrorStatusIsTypedAndNotRetried(t *testing.T) {
	for _, code := range []Code{CodePermissionDenied, CodeUnavailable, CodeNotFound} {
		t.Run(string(code), func(t *testing.T) {
			srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) {
				writeConnectError(w, code, fmt.Sprint("nope ", n))
			})
			c, _ := newClient(t, srv.URL, nil)
			_, err := c.WatchEvents(ctx10s(t), "env-1")
			e := wantCode(t, err, code)
			if e.Procedure != ProcWatchEvents || e.Message != "nope 1" {
				t.Errorf("error = %+v", e)
			}
			if n := c.Requests(); n != 1 {
				t.Errorf("Requests() = %d, want 1", n)
			}
		})
	}
}

func TestWatchEventsWaitsForHeadersAtMostCallTimeout(t *testing.T) {
	srv := serve(t, func(w http.ResponseWriter, r *http.Request, n int) { <-r.Context().Done() })
	c, _ := newClient(t, srv.URL, func(o *Options) { o.CallTimeout = 100 * time.Millisecond })
	_, err := c.WatchEvents(ctx10s(t), "env-1")
	wantCode(t, err, CodeDeadlineExceeded)
}

func TestWatchEventsStreamOutlivesCallTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := streamServer(t, nil, func(w http.ResponseWriter, r *http.Request) {
		<-release
		_, _ = io.WriteString(w, updateLine+"\n")
	})
	c, _ := newClient(t, srv.URL, func(o *Options) { o.CallTimeout = 50 * time.Millisecond })
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(200 * time.Millisecond) // several CallTimeouts pass with the stream idle
	close(release)
	if ev, err := s.Next(); err != nil || ev.ResourceID != "env-1" {
		t.Fatalf("Next = %+v, %v", ev, err)
	}
}
