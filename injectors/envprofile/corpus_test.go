package envprofile

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// adversarial are values that break naive quoting. Every one must read back
// byte for byte from every fragment.
var adversarial = []string{
	"",
	"plain",
	"it's",
	`"double"`,
	`'single'`,
	`''''`,
	`$(touch /tmp/secrets-agent-pwned)`,
	"`id`",
	`${HOME}$HOME$$$!$?`,
	`back\slash`,
	`trailing\`,
	`\\double\\`,
	`\'`,
	`\"`,
	"line1\nline2\n",
	"\n",
	"crlf\r\nend\r",
	"\r",
	"tab\there\t",
	"-n",
	"-e \\n",
	"--",
	"=",
	"a=b=c",
	"ünïcødé ✓ 🔑",
	"\xff\xfe invalid \x80 utf8 \xc3",
	"\xef\x98\x80 fish private use \xef\xb7\x90",
	"#not a comment",
	" leading and trailing spaces ",
	"glob * ? [a-z] ~",
	"semi; amp & pipe | lt < gt >",
	"!history !! !-1",
	"%s %d %%",
	"\x01\x02\x1b[31mansi\x1b[0m\x7f",
	"ends with newline\\\n",
	"'\\''",
	"\"$(echo \\\"x\\\")\"",
	"a:b::c:",
	strings.Repeat("0123456789abcdef\n'\"\\$`", 64<<10/24) + "end",
	string(allBytes()),
}

// allBytes is every byte but NUL.
func allBytes() []byte {
	b := make([]byte, 0, 255)
	for c := 1; c < 256; c++ {
		b = append(b, byte(c))
	}
	return b
}

// envSecret returns an environment-variable secret.
func envSecret(id, name string, value []byte) secrets.Secret {
	return secrets.Secret{
		ID: id, Name: "secret_" + id, Scope: secrets.ScopeUser, Session: "s1",
		Mount: secrets.Mount{Kind: secrets.MountEnv, Target: name}, Value: value,
	}
}

// corpusSecrets returns one secret per adversarial value, named V0, V1, ...,
// and one whose variable name ends in PATH (fish treats those as lists).
func corpusSecrets() []secrets.Secret {
	var out []secrets.Secret
	for i, v := range adversarial {
		out = append(out, envSecret(fmt.Sprint(i), fmt.Sprintf("V%d", i), []byte(v)))
	}
	out = append(out, envSecret("path", "SECRET_PATH", []byte("/a:/b::/c:")))
	return out
}

// parseDotenv is a parser for the dialect quoteDotenv documents, written
// from that description (not from quoteDotenv's code): comments, NAME='...'
// literal (may span lines), NAME="..." with \\ \" \n \r escapes, NAME=bare
// for printable ASCII without spaces that ends in a backslash. It returns
// the variables in order, or an error on anything else.
func parseDotenv(data []byte) ([][2]string, error) {
	var out [][2]string
	for len(data) > 0 {
		if data[0] == '#' {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				return out, nil
			}
			data = data[i+1:]
			continue
		}
		eq := bytes.IndexByte(data, '=')
		if eq < 0 {
			return nil, fmt.Errorf("line without =")
		}
		name := string(data[:eq])
		if !secrets.ValidEnvName(name) {
			return nil, fmt.Errorf("bad name %q", name)
		}
		data = data[eq+1:]
		if len(data) == 0 {
			return nil, fmt.Errorf("%s: no value", name)
		}
		var val []byte
		switch data[0] {
		case '\'':
			end := bytes.IndexByte(data[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("%s: unterminated '", name)
			}
			val = data[1 : 1+end]
			data = data[end+2:]
		case '"':
			i := 1
			for ; i < len(data) && data[i] != '"'; i++ {
				if data[i] != '\\' {
					val = append(val, data[i])
					continue
				}
				i++
				if i == len(data) {
					return nil, fmt.Errorf("%s: trailing backslash", name)
				}
				switch data[i] {
				case '\\', '"':
					val = append(val, data[i])
				case 'n':
					val = append(val, '\n')
				case 'r':
					val = append(val, '\r')
				default:
					return nil, fmt.Errorf("%s: unknown escape \\%c", name, data[i])
				}
			}
			if i == len(data) {
				return nil, fmt.Errorf("%s: unterminated \"", name)
			}
			data = data[i+1:]
		default:
			end := bytes.IndexByte(data, '\n')
			if end < 0 {
				end = len(data)
			}
			val = data[:end]
			for _, c := range val {
				if c <= ' ' || c >= 0x7f {
					return nil, fmt.Errorf("%s: bare value holds %q", name, c)
				}
			}
			if !bytes.HasSuffix(val, []byte(`\`)) {
				return nil, fmt.Errorf("%s: bare value does not end in a backslash", name)
			}
			data = data[end:]
		}
		if len(data) == 0 || data[0] != '\n' {
			return nil, fmt.Errorf("%s: no newline after value", name)
		}
		data = data[1:]
		out = append(out, [2]string{name, string(val)})
	}
	return out, nil
}
