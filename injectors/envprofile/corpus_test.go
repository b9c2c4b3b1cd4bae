package envprofile

import (
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

// parseDotenv reads data with ParseDotenv, as name/value pairs.
func parseDotenv(data []byte) ([][2]string, error) {
	vars, err := ParseDotenv(data)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, len(vars))
	for i, v := range vars {
		out[i] = [2]string{v.Name, string(v.Value)}
	}
	return out, nil
}
