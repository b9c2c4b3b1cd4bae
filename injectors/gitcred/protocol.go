package gitcred

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// maxRequest bounds what ReadRequest reads: git sends a few short lines.
const maxRequest = 64 << 10

// Request is what git tells a credential helper, as far as this helper
// cares: the other attributes git may send (path, wwwauth[], capability[],
// password_expiry_utc, ...) are read and ignored, as the protocol asks.
type Request struct {
	Protocol string
	Host     string // host, with ":port" when the URL has one
	Username string // set when the URL or config names a user
	// Quit is the quit attribute (true or 1): stop, answer nothing.
	Quit bool
}

// ReadRequest reads git's credential-helper input from r: "key=value"
// lines, ended by a blank line or the end of input. A key seen twice keeps
// its last value; a key this helper does not know is ignored. A line without
// "=" or input over 64 KiB is an error, as it is for git's own reader. The
// error never quotes a line (git may send a password on store and erase).
func ReadRequest(r io.Reader) (Request, error) {
	var req Request
	sc := bufio.NewScanner(io.LimitReader(r, maxRequest+1))
	sc.Buffer(make([]byte, 0, 4096), maxRequest)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		n += len(line) + 1
		if n > maxRequest {
			return req, fmt.Errorf("credential request: longer than %d bytes", maxRequest)
		}
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		key, value, ok := strings.Cut(line, "=") // a key never holds '='; a value may
		if !ok {
			return req, errors.New("credential request: a line has no '='")
		}
		switch key {
		case "protocol":
			req.Protocol = value
		case "host":
			req.Host = value
		case "username":
			req.Username = value
		case "quit":
			req.Quit = value == "1" || strings.EqualFold(value, "true")
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return req, fmt.Errorf("credential request: longer than %d bytes", maxRequest)
		}
		return req, fmt.Errorf("credential request: %w", err)
	}
	return req, nil
}

// WriteAnswer writes the answer to a get: "username=" and "password=" lines
// and a blank line. A value holding a NUL or a line break is refused (git
// would read a different credential), without quoting it.
func WriteAnswer(w io.Writer, username, password string) error {
	if strings.ContainsAny(username, "\x00\n\r") {
		return errors.New("credential answer: user name holds a NUL or line break")
	}
	if CheckToken([]byte(password)) != nil {
		return errors.New("credential answer: password is empty or holds a NUL or line break")
	}
	_, err := io.WriteString(w, "username="+username+"\npassword="+password+"\n\n")
	return err
}
