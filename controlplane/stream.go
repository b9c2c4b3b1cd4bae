package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLineTooLong is wrapped by the error Next returns for a stream line
// longer than Options.MaxLineBytes.
var ErrLineTooLong = errors.New("line too long")

// Stream is an open WatchEvents stream: JSON lines, one Event each. Next and
// Close may be called from different goroutines; Next from one at a time.
type Stream struct {
	ctx    context.Context
	cancel context.CancelFunc
	body   io.ReadCloser
	r      *bufio.Reader
	max    int
	line   []byte
	err    error // sticky: once set, Next returns it again
	close  sync.Once
}

// WatchEvents opens the event stream of environment environmentID. It returns
// once the server has answered 200 (waiting at most CallTimeout for the
// headers), or an *Error as a unary call would; it never retries, since the
// caller reconnects with its own backoff. Like a unary call, an
// unauthenticated answer makes it re-read the token file and, if the token
// changed, try once more. The stream lives until ctx ends, the server ends it
// or Close is called; the caller must Close it when done.
func (c *Client) WatchEvents(ctx context.Context, environmentID string) (*Stream, error) {
	payload, err := json.Marshal(WatchEventsRequest{EnvironmentID: environmentID})
	if err != nil {
		return nil, &Error{Procedure: ProcWatchEvents, Code: CodeInternal, Message: "encode request", Err: err}
	}
	var s *Stream
	err = c.withTokenRetry(ProcWatchEvents, func() error {
		s, err = c.openStream(ctx, payload)
		return err
	})
	return s, err
}

// openStream sends one WatchEvents request. A timer cancels it if the headers
// take longer than CallTimeout; once they are in, only ctx or Close end it.
func (c *Client) openStream(ctx context.Context, payload []byte) (*Stream, error) {
	sctx, cancel := context.WithCancel(ctx)
	req, err := c.post(sctx, ProcWatchEvents, payload, ContentTypeJSONL)
	if err != nil {
		cancel()
		return nil, &Error{Procedure: ProcWatchEvents, Code: CodeInvalidArgument, Message: "build request", Err: err}
	}
	var timedOut atomic.Bool
	timer := time.AfterFunc(c.opts.CallTimeout, func() {
		timedOut.Store(true)
		cancel()
	})
	c.requests.Add(1)
	resp, err := c.stream.Do(req)
	timer.Stop()
	late := timedOut.Load()
	if err != nil {
		cancel()
		e := toError(err)
		if late && ctx.Err() == nil {
			e = &Error{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("no response headers within %s", c.opts.CallTimeout), Err: err}
		}
		return nil, c.withProcedure(ProcWatchEvents, e)
	}
	if late { // headers came just as the timer fired: the body is canceled
		_ = resp.Body.Close()
		cancel()
		return nil, c.withProcedure(ProcWatchEvents, &Error{Code: CodeDeadlineExceeded, Message: fmt.Sprintf("no response headers within %s", c.opts.CallTimeout)})
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, c.withProcedure(ProcWatchEvents, c.statusError(resp))
	}
	return &Stream{ctx: sctx, cancel: cancel, body: resp.Body, r: bufio.NewReader(resp.Body), max: c.opts.MaxLineBytes}, nil
}

// Next blocks for the next event and returns it. A blank line (a keepalive
// some servers send) is returned as the zero Event, so that a caller timing
// the stream's silence sees it; the caller acts on no zero Event. Unknown
// fields are ignored, and so are unknown operations and resource types: they
// are returned as they are, for the caller to judge (Event.Relevant).
//
// It returns io.EOF when the server ends the stream cleanly (after a full
// line), and otherwise an *Error: CodeUnavailable wrapping
// io.ErrUnexpectedEOF when the stream breaks in the middle of a line (or
// wrapping the cause when the connection fails); CodeResourceExhausted
// wrapping ErrLineTooLong for a line over MaxLineBytes; CodeInternal for a
// line that is not a JSON object; CodeCanceled or CodeDeadlineExceeded
// (wrapping the context's error) when ctx ends or Close was called. Every
// error is final: Next keeps returning it, and the caller closes the stream
// and reconnects.
func (s *Stream) Next() (Event, error) {
	if s.err != nil {
		return Event{}, s.err
	}
	line, err := s.readLine()
	if err != nil {
		s.err = err
		return Event{}, err
	}
	if len(bytes.TrimSpace(line)) == 0 {
		return Event{}, nil
	}
	var ev Event
	if err := decodeJSON(line, &ev); err != nil {
		s.err = &Error{Procedure: ProcWatchEvents, Code: CodeInternal, HTTPStatus: http.StatusOK, Message: "decode event", Err: err}
		return Event{}, s.err
	}
	return ev, nil
}

// readLine returns the next line without its "\n" (and "\r"). Step by step:
//
//  1. read up to the next newline in buffer-sized fragments, appending each
//     to s.line;
//  2. fail as soon as the line passes s.max bytes (the newline not counted),
//     so a line is never held beyond the cap;
//  3. at the end of the body: a clean io.EOF when no partial line is pending,
//     else io.ErrUnexpectedEOF;
//  4. any other read error is the context's if it has ended, else a
//     connection error.
func (s *Stream) readLine() ([]byte, error) {
	s.line = s.line[:0]
	for {
		frag, err := s.r.ReadSlice('\n') // (1)
		s.line = append(s.line, frag...)
		content := len(s.line)
		if err == nil {
			content-- // the newline
		}
		if content > s.max { // (2)
			return nil, &Error{Procedure: ProcWatchEvents, Code: CodeResourceExhausted, HTTPStatus: http.StatusOK,
				Message: fmt.Sprintf("event line is over the limit of %d bytes", s.max), Err: ErrLineTooLong}
		}
		switch {
		case err == nil:
			line := s.line[:content]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case s.ctx.Err() != nil: // (4)
			return nil, streamError(toError(s.ctx.Err()))
		case errors.Is(err, io.EOF): // (3)
			if len(s.line) == 0 {
				return nil, io.EOF
			}
			return nil, &Error{Procedure: ProcWatchEvents, Code: CodeUnavailable, HTTPStatus: http.StatusOK,
				Message: "stream ended in the middle of a line", Err: io.ErrUnexpectedEOF}
		default:
			return nil, streamError(toError(err))
		}
	}
}

// streamError names the stream's procedure in e.
func streamError(e *Error) *Error {
	e.Procedure = ProcWatchEvents
	return e
}

// Close ends the stream and releases its connection. It unblocks a Next in
// progress, which then returns a CodeCanceled error. It is safe to call more
// than once and always returns nil.
func (s *Stream) Close() error {
	s.close.Do(func() {
		s.cancel()
		_ = s.body.Close()
	})
	return nil
}
