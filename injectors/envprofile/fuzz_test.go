package envprofile

import (
	"bytes"
	"fmt"
	"testing"
)

// Real shells are too slow to fuzz against; these targets check the quoting
// against in-Go models of each language's quoting rules (and the dotenv
// parser). TestEveryValueReadsBackExactlyInEveryShell checks the models'
// premises with the real shells on the corpus values.

func addSeeds(f *testing.F) {
	for _, v := range adversarial {
		f.Add([]byte(v))
	}
}

// shWord is a model of how a POSIX shell reads one word of the kind quoteSh
// makes: '...' is literal up to the next ', a backslash outside quotes takes
// the next byte literally, an unquoted blank or newline ends the word. It
// returns the word's value and the rest of the input.
func shWord(in []byte) (val, rest []byte, err error) {
	val = []byte{}
	for i := 0; i < len(in); i++ {
		switch c := in[i]; c {
		case '\'':
			end := bytes.IndexByte(in[i+1:], '\'')
			if end < 0 {
				return nil, nil, fmt.Errorf("unterminated '")
			}
			val = append(val, in[i+1:i+1+end]...)
			i += end + 1
		case '\\':
			if i+1 == len(in) || in[i+1] == '\n' {
				return nil, nil, fmt.Errorf("backslash-newline or trailing backslash")
			}
			val = append(val, in[i+1])
			i++
		case ' ', '\t', '\n', ';', '&', '|', '<', '>', '(', ')':
			return val, in[i:], nil
		case '$', '`', '"', '*', '?', '[', '~', '#':
			return nil, nil, fmt.Errorf("unquoted special %q", c)
		default:
			val = append(val, c)
		}
	}
	return val, nil, nil
}

// fishWord is a model of fish's reading of one word: in '...' only \\ and \'
// are escapes (any other backslash is itself); outside quotes a backslash
// escapes the next byte; an unquoted blank or newline ends the word.
func fishWord(in []byte) (val, rest []byte, err error) {
	val = []byte{}
	for i := 0; i < len(in); i++ {
		switch c := in[i]; c {
		case '\'':
			i++
			for ; i < len(in) && in[i] != '\''; i++ {
				if in[i] == '\\' && i+1 < len(in) && (in[i+1] == '\\' || in[i+1] == '\'') {
					i++
				}
				val = append(val, in[i])
			}
			if i == len(in) {
				return nil, nil, fmt.Errorf("unterminated '")
			}
		case ' ', '\t', '\n', ';', '&', '|', '<', '>':
			return val, in[i:], nil
		case '\\', '$', '"', '*', '?', '{', '}', '(', ')', '~', '#', '[', ']':
			return nil, nil, fmt.Errorf("unquoted special %q", c)
		default:
			val = append(val, c)
		}
	}
	return val, nil, nil
}

// checkFragment renders one variable in f and reads the assignment back with
// word (the line must be prefix + word + newline, then the rest of the
// fragment as expected).
func checkFragment(t *testing.T, f Format, prefix string, word func([]byte) ([]byte, []byte, error), v []byte, next string) {
	frag := render(f, []variable{{name: "V", value: v}}, "0")
	i := bytes.Index(frag, []byte("\n"+prefix))
	if i < 0 {
		t.Fatalf("no %q line in %q", prefix, frag)
	}
	got, rest, err := word(frag[i+1+len(prefix):])
	if err != nil {
		t.Fatalf("%v in %q", err, frag)
	}
	if !bytes.Equal(got, v) {
		t.Fatalf("read back %q, want %q", got, v)
	}
	if !bytes.HasPrefix(rest, []byte("\n"+next)) {
		t.Fatalf("after the value: %q, want %q", rest, "\n"+next)
	}
}

func FuzzShellQuoting(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v []byte) {
		if bytes.IndexByte(v, 0) >= 0 {
			return
		}
		checkFragment(t, FormatSh, "export V=", shWord, v, "__SECRETS_AGENT_VARS='V'\n")
	})
}

func FuzzFish(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v []byte) {
		if bytes.IndexByte(v, 0) >= 0 {
			return
		}
		checkFragment(t, FormatFish, "set -gx V ", fishWord, v, "set -g __SECRETS_AGENT_VARS V\n")
	})
}

func FuzzDotenv(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, v []byte) {
		if bytes.IndexByte(v, 0) >= 0 {
			return
		}
		frag := render(FormatDotenv, []variable{{name: "V", value: v}, {name: "W", value: []byte("w")}}, "0")
		got, err := parseDotenv(frag)
		if err != nil {
			t.Fatalf("%v in %q", err, frag)
		}
		// A value python-dotenv cannot read is written after the others.
		if len(got) == 2 && got[0][0] == "W" {
			got[0], got[1] = got[1], got[0]
		}
		if len(got) != 2 || got[0][0] != "V" || got[0][1] != string(v) || got[1] != [2]string{"W", "w"} {
			t.Fatalf("read back %q, want V=%q W=w", got, v)
		}
	})
}
