package jsonerr

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestScrubNeverQuotesTheInput: whatever is wrong, the message says what
// and where, and holds no byte of the document.
func TestScrubNeverQuotesTheInput(t *testing.T) {
	var v struct {
		N int `json:"n"`
	}
	for doc, want := range map[string]string{
		`{"n": "sekret"}`: `JSON string where int was expected (field "n", at byte`,
		`{"n": sekret}`:   "syntax error at byte 7",
		`"sekret"`:        "JSON string where struct",
	} {
		err := Scrub(json.Unmarshal([]byte(doc), &v))
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "sekret") {
			t.Errorf("Scrub(%s) = %v, want %q and no value", doc, err, want)
		}
	}
	if Scrub(nil) != nil {
		t.Error("Scrub(nil) is not nil")
	}
}
