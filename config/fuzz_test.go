package config

import (
	"os"
	"testing"
)

// FuzzLoad feeds arbitrary bytes through every step of Load but the
// environment (decode, resolve, validate): none of them may panic, and a
// config that validates has only absolute paths. Seeds: testdata/fuzz/FuzzLoad
// and the example config.
func FuzzLoad(f *testing.F) {
	if data, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(minimal))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := c.decode(data); err != nil {
			return
		}
		if err := c.resolve(); err != nil {
			return
		}
		if c.Validate() != nil {
			return
		}
		for _, p := range c.paths() {
			if (*p.value)[0] != '/' {
				t.Fatalf("%s = %q validated but is not absolute", p.key, *p.value)
			}
		}
	})
}
