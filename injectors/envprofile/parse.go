package envprofile

import (
	"bytes"
	"errors"
	"fmt"
)

// Var is one variable of a fragment, as a program's environment gets it.
type Var struct {
	Name  string
	Value []byte
}

// ParseDotenv reads a dotenv fragment as Render writes it (the dialect is
// described at quoteDotenv) and returns its variables in order, each value
// byte for byte as the secret holds it. Lines starting with # are comments.
// It is the reader of our own writer, not of dotenv files in general: any
// other shape (an unquoted value, an unknown escape, an unterminated quote)
// is an error naming the line, never quoting a value.
func ParseDotenv(data []byte) ([]Var, error) {
	var vars []Var
	line := 1
	for len(data) > 0 {
		if data[0] == '\n' {
			data, line = data[1:], line+1
			continue
		}
		if data[0] == '#' {
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				break
			}
			data, line = data[i+1:], line+1
			continue
		}
		eq := bytes.IndexByte(data, '=')
		if eq <= 0 || bytes.IndexByte(data[:eq], '\n') >= 0 {
			return nil, fmt.Errorf("dotenv line %d: want NAME=VALUE", line)
		}
		v := Var{Name: string(data[:eq])}
		rest := data[eq+1:]
		val, n, err := unquoteDotenv(rest)
		if err != nil {
			return nil, fmt.Errorf("dotenv line %d (%s): %w", line, v.Name, err)
		}
		v.Value = val
		line += bytes.Count(rest[:n], []byte{'\n'})
		rest = rest[n:]
		switch {
		case len(rest) == 0:
		case rest[0] == '\n':
			rest, line = rest[1:], line+1
		default:
			return nil, fmt.Errorf("dotenv line %d (%s): text after the closing quote", line, v.Name)
		}
		vars = append(vars, v)
		data = rest
	}
	return vars, nil
}

// unquoteDotenv reads one quoted value at the start of b and returns it and
// the number of bytes it took, quotes included.
func unquoteDotenv(b []byte) ([]byte, int, error) {
	if len(b) == 0 || (b[0] != '\'' && b[0] != '"') {
		return nil, 0, errors.New("value is not quoted")
	}
	if b[0] == '\'' {
		end := bytes.IndexByte(b[1:], '\'')
		if end < 0 {
			return nil, 0, errors.New("unterminated single quote")
		}
		return append([]byte{}, b[1:1+end]...), end + 2, nil
	}
	var out []byte
	for i := 1; i < len(b); i++ {
		switch c := b[i]; c {
		case '"':
			return out, i + 1, nil
		case '\\':
			if i+1 >= len(b) {
				return nil, 0, errors.New("unterminated double quote")
			}
			i++
			switch b[i] {
			case '\\', '"', '$':
				out = append(out, b[i])
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			default:
				return nil, 0, errors.New("unknown escape")
			}
		default:
			out = append(out, c)
		}
	}
	return nil, 0, errors.New("unterminated double quote")
}
