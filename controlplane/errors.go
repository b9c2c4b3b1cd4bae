package controlplane

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Code is a Connect error code.
type Code string

// The Connect error codes (connectrpc.com/docs/protocol#error-codes).
const (
	CodeCanceled           Code = "canceled"
	CodeUnknown            Code = "unknown"
	CodeInvalidArgument    Code = "invalid_argument"
	CodeDeadlineExceeded   Code = "deadline_exceeded"
	CodeNotFound           Code = "not_found"
	CodeAlreadyExists      Code = "already_exists"
	CodePermissionDenied   Code = "permission_denied"
	CodeResourceExhausted  Code = "resource_exhausted"
	CodeFailedPrecondition Code = "failed_precondition"
	CodeAborted            Code = "aborted"
	CodeOutOfRange         Code = "out_of_range"
	CodeUnimplemented      Code = "unimplemented"
	CodeInternal           Code = "internal"
	CodeUnavailable        Code = "unavailable"
	CodeDataLoss           Code = "data_loss"
	CodeUnauthenticated    Code = "unauthenticated"
)

// HTTPStatus is the status the Connect protocol maps the code to
// (connectrpc.com/docs/protocol#error-codes): failed_precondition is 400 and
// unimplemented 501, as amended by Connect's RFC 003; an unknown code is 500.
func (c Code) HTTPStatus() int {
	switch c {
	case CodeCanceled:
		return 499 // Client Closed Request
	case CodeInvalidArgument, CodeFailedPrecondition, CodeOutOfRange:
		return http.StatusBadRequest
	case CodeDeadlineExceeded:
		return http.StatusGatewayTimeout
	case CodeNotFound:
		return http.StatusNotFound
	case CodeAlreadyExists, CodeAborted:
		return http.StatusConflict
	case CodePermissionDenied:
		return http.StatusForbidden
	case CodeResourceExhausted:
		return http.StatusTooManyRequests
	case CodeUnimplemented:
		return http.StatusNotImplemented
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeUnauthenticated:
		return http.StatusUnauthorized
	}
	return http.StatusInternalServerError // unknown, internal, data_loss
}

// CodeFromHTTPStatus is the code the Connect protocol makes of a status when
// the body carries none: 400 is internal (a server answers invalid_argument
// with a body), 404 unimplemented (no such procedure), 429 and the gateway
// errors unavailable, anything else unknown.
func CodeFromHTTPStatus(status int) Code {
	switch status {
	case http.StatusBadRequest:
		return CodeInternal
	case http.StatusUnauthorized:
		return CodeUnauthenticated
	case http.StatusForbidden:
		return CodePermissionDenied
	case http.StatusNotFound:
		return CodeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return CodeUnavailable
	}
	return CodeUnknown
}

// Error is an error answered by the control plane, or the client's account of
// a call that failed on the way (Code unavailable for a connection error,
// deadline_exceeded for a timeout). Message is the server's text; it never
// holds a secret value.
type Error struct {
	Procedure  string
	Code       Code
	Message    string
	HTTPStatus int // 0 when no response came
	Err        error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s: %s", e.Procedure, e.Code)
	if e.Message != "" {
		s += ": " + e.Message
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

// CodeOf returns the Code of the first *Error in err's chain, CodeCanceled or
// CodeDeadlineExceeded for context errors, or CodeUnknown.
func CodeOf(err error) Code {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return CodeDeadlineExceeded
	}
	return CodeUnknown
}
