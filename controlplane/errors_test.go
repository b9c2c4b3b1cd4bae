package controlplane

import "testing"

// TestCodesMapToHTTPAsConnectSays checks both tables of the Connect protocol:
// code to HTTP status (as amended by Connect's RFC 003) and HTTP status to
// code for a body without one.
func TestCodesMapToHTTPAsConnectSays(t *testing.T) {
	toHTTP := map[Code]int{
		CodeCanceled: 499, CodeUnknown: 500, CodeInvalidArgument: 400, CodeDeadlineExceeded: 504,
		CodeNotFound: 404, CodeAlreadyExists: 409, CodePermissionDenied: 403, CodeResourceExhausted: 429,
		CodeFailedPrecondition: 400, CodeAborted: 409, CodeOutOfRange: 400, CodeUnimplemented: 501,
		CodeInternal: 500, CodeUnavailable: 503, CodeDataLoss: 500, CodeUnauthenticated: 401,
	}
	for code, want := range toHTTP {
		if got := code.HTTPStatus(); got != want {
			t.Errorf("%s.HTTPStatus() = %d, want %d", code, got, want)
		}
	}
	fromHTTP := map[int]Code{
		400: CodeInternal, 401: CodeUnauthenticated, 403: CodePermissionDenied, 404: CodeUnimplemented,
		429: CodeUnavailable, 502: CodeUnavailable, 503: CodeUnavailable, 504: CodeUnavailable,
		409: CodeUnknown, 412: CodeUnknown, 500: CodeUnknown, 501: CodeUnknown,
	}
	for status, want := range fromHTTP {
		if got := CodeFromHTTPStatus(status); got != want {
			t.Errorf("CodeFromHTTPStatus(%d) = %s, want %s", status, got, want)
		}
	}
}
