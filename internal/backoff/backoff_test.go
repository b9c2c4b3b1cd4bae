package backoff

import (
	"testing"
	"time"
)

func TestCeilingDoublesUpToTheLimit(t *testing.T) {
	for _, c := range []struct {
		base  time.Duration
		k     int
		limit time.Duration
		want  time.Duration
	}{
		{time.Second, 0, time.Minute, time.Second},
		{time.Second, 3, time.Minute, 8 * time.Second},
		{time.Second, 6, time.Minute, time.Minute},
		{time.Second, 62, time.Minute, time.Minute},
		{time.Second, 1000, time.Minute, time.Minute},
	} {
		if got := Ceiling(c.base, c.k, c.limit); got != c.want {
			t.Errorf("Ceiling(%s, %d, %s) = %s, want %s", c.base, c.k, c.limit, got, c.want)
		}
	}
}

func TestJitterAndSpreadStayInTheirRange(t *testing.T) {
	for range 1000 {
		if d := Jitter(time.Second); d < 0 || d > time.Second {
			t.Fatalf("Jitter(1s) = %s", d)
		}
		if d := Spread(10 * time.Second); d < 8*time.Second || d > 12*time.Second {
			t.Fatalf("Spread(10s) = %s", d)
		}
	}
}
