package testutil

import (
	"bytes"
	"fmt"
)

// AdversarialValue is a value that has broken shell quoting somewhere.
type AdversarialValue struct {
	Name  string // a valid environment variable name for it
	Value []byte
}

// AdversarialValues are the values every writer must round-trip byte for
// byte: quotes of both kinds, command substitutions, backslashes, newlines,
// CR, tabs, a leading dash, '=', unicode, invalid UTF-8 and a 64 KiB value.
// None contains NUL.
func AdversarialValues() []AdversarialValue {
	big := bytes.Repeat([]byte("0123456789abcdef'\"$`\\\n"), 64*1024/22+1)[:64*1024]
	vals := []string{
		"plain",
		"",
		"it's",
		`say "hi"`,
		`'both' "kinds"`,
		"$(touch /tmp/pwned)",
		"`touch /tmp/pwned`",
		"${HOME}$HOME$$",
		`back\slash`,
		`trailing\`,
		`\\double\\`,
		"new\nline\n",
		"\n",
		"cr\r\nlf",
		"tab\there",
		"-n",
		"-e \\n",
		"--",
		"a=b=c",
		"=",
		"ünïcødé ✓ 🔑",
		"\xff\xfe invalid \xc3\x28 utf8 \x80",
		"end with space ",
		"  leading",
		"!history !!",
		"semi; colon & amp | pipe > gt < lt",
		"# not a comment",
		"%s %d %n",
		"\x1b[31mescape\x1b[0m",
		"\x01\x02\x7f",
		"\\'\\\"",
		"'",
		"\"",
		"\\",
		"export X=1",
	}
	out := make([]AdversarialValue, 0, len(vals)+1)
	for i, v := range vals {
		out = append(out, AdversarialValue{Name: fmt.Sprintf("ADV_%02d", i), Value: []byte(v)})
	}
	return append(out, AdversarialValue{Name: "ADV_BIG", Value: big})
}
