package gitcred

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadRequestTakesKnownKeysAndIgnoresTheRest(t *testing.T) {
	in := "capability[]=authtype\nprotocol=https\nhost=GitHub.com:443\npath=org/repo.git\n" +
		"wwwauth[]=Basic realm=\"x\"\nusername=me\nunknown=1\n\nprotocol=http\n"
	req, err := ReadRequest(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if req != (Request{Protocol: "https", Host: "GitHub.com:443", Username: "me"}) {
		t.Errorf("request %+v", req)
	}
}

func TestReadRequestEndsAtEOFAndReadsQuit(t *testing.T) {
	for in, quit := range map[string]bool{"protocol=https\nquit=1": true, "quit=true\n": true, "quit=0\n": false, "": false} {
		req, err := ReadRequest(strings.NewReader(in))
		if err != nil || req.Quit != quit {
			t.Errorf("%q: quit %v err %v, want %v", in, req.Quit, err, quit)
		}
	}
}

func TestReadRequestRefusesALineWithoutEqualsWithoutQuotingIt(t *testing.T) {
	_, err := ReadRequest(strings.NewReader("protocol=https\nhunter2-s3cr3t\n"))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("err %v", err)
	}
	_, err = ReadRequest(strings.NewReader("host=" + strings.Repeat("a", maxRequest+10) + "\n"))
	if err == nil {
		t.Error("an oversized request was read")
	}
}

func TestWriteAnswerIsKeyValueLinesAndABlankLine(t *testing.T) {
	var b bytes.Buffer
	if err := WriteAnswer(&b, "oauth2", "tok=en"); err != nil {
		t.Fatal(err)
	}
	if b.String() != "username=oauth2\npassword=tok=en\n\n" {
		t.Errorf("answer %q", b.String())
	}
	if err := WriteAnswer(&b, "oauth2", "a\nb"); err == nil || strings.Contains(err.Error(), "a\nb") {
		t.Errorf("err %v", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add("protocol=https\nhost=h\n\n")
	f.Add("quit=1\n")
	f.Add("=\n\n=")
	f.Fuzz(func(t *testing.T, in string) {
		req, err := ReadRequest(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, v := range []string{req.Protocol, req.Host, req.Username} {
			if strings.ContainsAny(v, "\n") || len(v) > maxRequest {
				t.Fatalf("field %q", v)
			}
		}
	})
}
