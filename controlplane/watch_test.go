package controlplane

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// watchRecord is what a Watch's callbacks saw.
type watchRecord struct {
	mu        sync.Mutex
	connected []bool
	events    []Event
}

// newWatch returns a Watch of env-1 on c whose callbacks record into rec and
// whose reconnect waits an hour.
func newWatch(c *Client, rec *watchRecord, silence time.Duration) *Watch {
	return &Watch{
		EnvID: "env-1",
		Open: func(ctx context.Context) (Events, error) {
			s, err := c.WatchEvents(ctx, "env-1")
			if err != nil {
				return nil, err
			}
			return s, nil
		},
		Silence:         func() time.Duration { return silence },
		Backoff:         func(int) time.Duration { return time.Hour },
		Wake:            make(chan struct{}, 1),
		Connected:       func(up bool) { rec.mu.Lock(); rec.connected = append(rec.connected, up); rec.mu.Unlock() },
		Event:           func(ev Event) { rec.mu.Lock(); rec.events = append(rec.events, ev); rec.mu.Unlock() },
		Unauthenticated: func() {},
		Log:             zap.NewNop(),
	}
}

func TestWatchReadPassesOnlyRelevantEventsAndClosesASilentStream(t *testing.T) {
	srv := streamServer(t, []string{
		"\n", // a keepalive
		`{"operation":"RESOURCE_OPERATION_UPDATE","resourceType":"RESOURCE_TYPE_ENVIRONMENT","resourceId":"env-2"}` + "\n",
		updateLine + "\n",
	}, blockUntilGone)
	c, _ := newClient(t, srv.URL, nil)
	var rec watchRecord
	w := newWatch(c, &rec, 100*time.Millisecond)
	s, err := c.WatchEvents(ctx10s(t), "env-1")
	if err != nil {
		t.Fatalf("WatchEvents: %v", err)
	}
	defer s.Close()
	if err := w.read(s, 100*time.Millisecond); !errors.Is(err, ErrSilent) {
		t.Fatalf("read = %v, want ErrSilent", err)
	}
	if want := []Event{{OpUpdate, ResEnvironment, "env-1"}}; len(rec.events) != 1 || rec.events[0] != want[0] {
		t.Errorf("events = %+v, want %+v", rec.events, want)
	}
}

func TestWatchHoldSaysWhenTheStreamIsUpAndDown(t *testing.T) {
	srv := streamServer(t, []string{updateLine + "\n"}, nil) // then a clean end
	c, _ := newClient(t, srv.URL, nil)
	var rec watchRecord
	w := newWatch(c, &rec, 0)
	ctx, cancel := context.WithCancel(ctx10s(t))
	done := make(chan struct{})
	go func() { defer close(done); w.Hold(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec.mu.Lock()
		n := len(rec.connected)
		rec.mu.Unlock()
		if n >= 2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // Hold waits an hour to reconnect: ending ctx ends it
	<-done
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.connected) != 2 || !rec.connected[0] || rec.connected[1] {
		t.Errorf("Connected calls = %v, want [true false]", rec.connected)
	}
	if len(rec.events) != 1 {
		t.Errorf("events = %+v, want the one update", rec.events)
	}
	if srv.hits.Load() != 1 {
		t.Errorf("%d WatchEvents requests, want 1 (the next attempt waits Backoff)", srv.hits.Load())
	}
}
