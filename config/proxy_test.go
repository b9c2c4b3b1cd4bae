package config

import (
	"strings"
	"testing"
)

func TestProxyListenMustBeLoopback(t *testing.T) {
	cleanEnv(t)
	for _, ok := range []string{"127.0.0.1:7879", "127.0.0.1:0", "[::1]:7879", "localhost:7879"} {
		mustLoad(t, minimal+"proxy:\n  listen: \""+ok+"\"\n")
	}
	for _, bad := range []string{"0.0.0.0:7879", ":7879", "10.0.0.5:7879", "127.0.0.1"} {
		if msg := loadErr(t, minimal+"proxy:\n  listen: \""+bad+"\"\n"); !strings.Contains(msg, "proxy.listen") {
			t.Errorf("listen %q: error %q does not name proxy.listen", bad, msg)
		}
	}
	mustLoad(t, minimal+"proxy:\n  enabled: false\n  listen: \"0.0.0.0:1\"\n") // off: not checked
}
