package envprofile

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/secrets-agent/secrets-agent/secrets"
)

// Var is one variable of a fragment, as a program's environment gets it.
type Var struct {
	Name  string
	Value []byte
}

// ParseDotenv reads a dotenv fragment as Render writes it and returns its
// variables in order, each value byte for byte as the secret holds it. It is
// written from the dialect quoteDotenv documents (not from quoteDotenv's
// code): comments, NAME='...' literal (may span lines), NAME="..." with \\
// \" \n \r escapes, NAME=bare for printable ASCII without spaces that ends in
// a backslash. It is the reader of our own writer, not of dotenv files in
// general: anything else is an error naming the variable, never quoting its
// value.
func ParseDotenv(data []byte) ([]Var, error) {
	var out []Var
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
			return nil, errors.New("dotenv: a line without =")
		}
		name := string(data[:eq])
		if !secrets.ValidEnvName(name) {
			return nil, errors.New("dotenv: a line that does not start with a variable name")
		}
		data = data[eq+1:]
		if len(data) == 0 {
			return nil, fmt.Errorf("dotenv: %s: no value", name)
		}
		var val []byte
		switch data[0] {
		case '\'':
			end := bytes.IndexByte(data[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("dotenv: %s: unterminated '", name)
			}
			val = append([]byte{}, data[1:1+end]...)
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
					return nil, fmt.Errorf("dotenv: %s: trailing backslash", name)
				}
				switch data[i] {
				case '\\', '"':
					val = append(val, data[i])
				case 'n':
					val = append(val, '\n')
				case 'r':
					val = append(val, '\r')
				default:
					return nil, fmt.Errorf("dotenv: %s: unknown escape", name)
				}
			}
			if i == len(data) {
				return nil, fmt.Errorf("dotenv: %s: unterminated \"", name)
			}
			data = data[i+1:]
		default:
			end := bytes.IndexByte(data, '\n')
			if end < 0 {
				end = len(data)
			}
			val = append([]byte{}, data[:end]...)
			for _, c := range val {
				if c <= ' ' || c >= 0x7f {
					return nil, fmt.Errorf("dotenv: %s: bare value holds a space or a byte that is not printable ASCII", name)
				}
			}
			if !bytes.HasSuffix(val, []byte(`\`)) {
				return nil, fmt.Errorf("dotenv: %s: bare value does not end in a backslash", name)
			}
			data = data[end:]
		}
		if len(data) == 0 || data[0] != '\n' {
			return nil, fmt.Errorf("dotenv: %s: no newline after value", name)
		}
		data = data[1:]
		out = append(out, Var{Name: name, Value: val})
	}
	return out, nil
}
