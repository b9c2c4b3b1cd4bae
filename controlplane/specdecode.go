package controlplane

import (
	"bytes"
	"encoding/json"
	"slices"
	"sync"
)

// specDecoder decodes GetEnvironment answers for one Client, decoding only
// the spec secrets that changed since the last answer. The protocol makes the
// agent fetch the whole spec on every pass although usually one secret (its
// session) changed; decoding all of it again with encoding/json cost several
// allocations per secret per pass.
//
// Contract:
//
//   - The result is the one json.Unmarshal(body, &GetEnvironmentResponse{})
//     gives, for every body: same success or failure, the same error
//     (scrubbed, as decodeEnvironment returns it), and on success an
//     Environment that is reflect.DeepEqual to Unmarshal's.
//   - What is reused: an element of environment.spec.secrets that is byte
//     for byte the element at the same place in the last answer decoded
//     here, or (once more than maxBlind elements were not) byte for byte any
//     element of it, is not decoded again; its earlier EnvironmentSpecSecret
//     is copied into the result. Its strings are the very strings of the
//     earlier result, and its pointers (mounts, CredentialProxy, TargetHosts)
//     point to the same values as the earlier result's: callers treat a
//     returned Environment as read-only. The new elements are decoded
//     together by one json.Unmarshal of a JSON array of them. The usual
//     change (one element edited in place) costs a comparison per element
//     and no map: the index of the last answer by content is built only when
//     elements moved (one was added or removed before them).
//   - The cache holds the elements of the last answer only (raw bytes and
//     decoded secret, no values: the spec has none); it is rebuilt on every
//     decode, so it stays at about the size of one answer (and the scratch
//     space for the next, which keeps its capacity).
//   - The rest of the envelope (environment.id, metadata, status, unknown
//     fields) is decoded by json.Unmarshal from a copy of the body in which
//     the secrets array is replaced by null: encoding/json's semantics.
//   - When it falls back: the body is first scanned once (specScan), which
//     validates it as encoding/json does and finds the secrets array. The
//     reuse applies only when the body is valid JSON, the root, environment
//     and spec are objects, each of the keys "environment", "spec" and
//     "secrets" appears exactly once in its object, no other key of those
//     objects matches one of them case-insensitively (encoding/json matches
//     keys so) or holds an escape, and secrets is an array. Anything else
//     (an invalid body, no secrets key, secrets null, a duplicated key, a
//     decode error in any part) is decoded by plain json.Unmarshal of the
//     whole body, and the cache is emptied: correctness first, speed for the
//     normal case.
//
// It is safe for concurrent use: one mutex guards the cache and is held for
// the decode only (the HTTP call is made before).
type specDecoder struct {
	mu sync.Mutex
	// last holds the elements of the last answer decoded by the fast path.
	// next is empty between calls: the elements of the answer being decoded
	// go there, then the two swap. Both keep their capacity, so a steady
	// spec allocates no cache memory.
	last, next specCache
}

// specCache is the elements of one answer's secrets array, in order.
type specCache struct {
	entries []cachedSecret
	index   map[string]int // raw JSON → its place in entries; built when first needed (lookup)
}

// maxBlind is how many elements that differ from the one at their place in
// the last answer are decoded without looking for them elsewhere in it: an
// element edited in place needs no index, elements that moved do.
const maxBlind = 16

// cachedSecret is one element of a spec's secrets array: its raw JSON (the
// index's key, kept so that the next answer's index reuses the string) and
// what it decodes to.
type cachedSecret struct {
	raw    string
	secret EnvironmentSpecSecret
}

// reset empties c, keeping the capacity of its entries and dropping its
// references.
func (c *specCache) reset() {
	clear(c.entries)
	c.entries, c.index = c.entries[:0], nil
}

// lookup returns the entry whose raw JSON is raw, building the index first
// when there is none.
func (c *specCache) lookup(raw []byte) (cachedSecret, bool) {
	if c.index == nil {
		c.index = make(map[string]int, len(c.entries))
		for i, e := range c.entries {
			c.index[e.raw] = i
		}
	}
	i, ok := c.index[string(raw)]
	if !ok {
		return cachedSecret{}, false
	}
	return c.entries[i], true
}

// decode decodes a GetEnvironment response body as decodeEnvironment does,
// reusing the decoded secrets of the last answer (see specDecoder).
func (d *specDecoder) decode(body []byte) (*Environment, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	env, ok := d.reuse(body)
	if !ok {
		d.last, d.next = specCache{}, specCache{}
		return decodeEnvironment(body)
	}
	d.last.reset()
	d.last, d.next = d.next, d.last
	// The scratch keeps its capacity for the next answer, unless a much
	// larger answer earlier left it so: that memory is let go.
	if cap(d.next.entries) > 2*len(d.last.entries)+1024 {
		d.next = specCache{}
	}
	return env, nil
}

// reuse is the fast path of decode, in three steps. ok is false when the
// body must be decoded by plain json.Unmarshal instead (d.next then holds
// junk the caller drops). The caller holds d.mu.
func (d *specDecoder) reuse(body []byte) (env *Environment, ok bool) {
	s := specScan{data: body, elems: make([]span, 0, len(d.last.entries)+16)}
	if !s.scan() {
		return nil, false
	}
	// (1) The envelope: the body with the array replaced by null.
	envelope := make([]byte, 0, len(body)-(s.array.end-s.array.start)+len("null"))
	envelope = append(envelope, body[:s.array.start]...)
	envelope = append(envelope, "null"...)
	envelope = append(envelope, body[s.array.end:]...)
	var r GetEnvironmentResponse
	if json.Unmarshal(envelope, &r) != nil {
		return nil, false
	}
	// (2) Each element's entry in d.next, in order: the last answer's at
	// the same place when it is the same bytes, else (past maxBlind such
	// elements) the last answer's with the same bytes anywhere, else new.
	// The new ones are gathered into one JSON array, batch, and decoded at
	// once: one json.Unmarshal per element would cost several allocations
	// each. Comparing string(raw) and looking it up do not allocate.
	next, last := &d.next, &d.last
	next.entries = slices.Grow(next.entries, len(s.elems))
	var batch []byte
	var fresh []int // the entries batch holds, in its order
	if len(last.entries) == 0 {
		batch = make([]byte, 0, s.array.end-s.array.start)
	}
	blind := 0
	for i, e := range s.elems {
		raw := body[e.start:e.end]
		if i < len(last.entries) && last.entries[i].raw == string(raw) {
			next.entries = append(next.entries, last.entries[i])
			continue
		}
		if blind++; blind > maxBlind {
			if c, hit := last.lookup(raw); hit {
				next.entries = append(next.entries, c)
				continue
			}
		}
		next.entries = append(next.entries, cachedSecret{raw: string(raw)})
		fresh = append(fresh, i)
		batch = append(append(batch, ','), raw...)
	}
	if len(fresh) > 0 {
		batch[0] = '['
		batch = append(batch, ']')
		decoded := make([]EnvironmentSpecSecret, 0, len(fresh)) // zeroed: the decoder fills it in place
		if json.Unmarshal(batch, &decoded) != nil || len(decoded) != len(fresh) {
			return nil, false
		}
		for j, k := range fresh {
			next.entries[k].secret = decoded[j]
		}
	}
	// (3) The result, in the body's order.
	list := make([]EnvironmentSpecSecret, len(s.elems)) // [] decodes to empty, not nil
	for i := range list {
		list[i] = next.entries[i].secret
	}
	r.Environment.Spec.Secrets = list
	return &r.Environment, true
}

// maxNestingDepth is encoding/json's limit on nested arrays and objects: a
// body that nests deeper is invalid.
const maxNestingDepth = 10000

// specPath is the keys from the root object to the secrets array.
var specPath = [...]string{"environment", "spec", "secrets"}

// span is a byte range [start, end) of a body.
type span struct{ start, end int }

// specScan is one pass over a GetEnvironment body that validates it as
// json.Unmarshal does (strings with their escapes and no control characters,
// numbers, literals, nesting up to maxNestingDepth, nothing but white space
// after the value) and finds the range of environment.spec.secrets and of
// each of its elements. It follows only keys equal to specPath's, and stops
// (scan returns false) at the first thing that is invalid or unusual, as
// specDecoder's contract lists.
type specScan struct {
	data  []byte
	pos   int
	depth int
	array span   // the secrets array, brackets included
	elems []span // its elements, white space excluded
	found bool   // the secrets array was found
}

// scan reports whether the body is valid JSON of the usual shape with a
// secrets array.
func (s *specScan) scan() bool {
	s.space()
	if s.peek() != '{' || !s.object(0) {
		return false
	}
	s.space()
	return s.pos == len(s.data) && s.found
}

// offPath is the level of a value that is not on specPath.
const offPath = -1

// value scans the value at s.pos (white space before it included). level is
// offPath, or how many keys of specPath led to it: 1 and 2 must be objects
// (environment, spec), 3 an array (secrets).
func (s *specScan) value(level int) bool {
	s.space()
	c := s.peek()
	switch {
	case level == len(specPath):
		return c == '[' && s.list(level)
	case level != offPath:
		return c == '{' && s.object(level)
	}
	switch c {
	case '{':
		return s.object(offPath)
	case '[':
		return s.list(offPath)
	case '"':
		_, ok := s.str()
		return ok
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	}
	return s.number()
}

// object scans the object at s.pos, which is at its '{'. On specPath (level
// 0 to 2), the key specPath[level] is followed; the object is unusual when
// that key is repeated, when another key matches it case-insensitively (with
// encoding/json's folding, which bytes.EqualFold is) or when a key holds an
// escape (encoding/json would match it unescaped).
func (s *specScan) object(level int) bool {
	if !s.push() {
		return false
	}
	s.space()
	if s.peek() == '}' {
		return s.pop()
	}
	seen := false
	for {
		if s.peek() != '"' {
			return false
		}
		start := s.pos + 1
		escaped, ok := s.str()
		if !ok {
			return false
		}
		key := s.data[start : s.pos-1]
		s.space()
		if s.peek() != ':' {
			return false
		}
		s.pos++
		next := offPath
		if level != offPath {
			want := specPath[level]
			switch {
			case escaped:
				return false
			case string(key) == want:
				if seen {
					return false
				}
				seen, next = true, level+1
			case bytes.EqualFold(key, []byte(want)):
				return false
			}
		}
		if !s.value(next) {
			return false
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
			s.space()
		case '}':
			return s.pop()
		default:
			return false
		}
	}
}

// list scans the array at s.pos, which is at its '['. At level 3 it is the
// secrets array: its range and its elements' are recorded.
func (s *specScan) list(level int) bool {
	start := s.pos
	if !s.push() {
		return false
	}
	s.space()
	if s.peek() == ']' {
		return s.endList(level, start)
	}
	for {
		s.space()
		e := s.pos
		if !s.value(offPath) {
			return false
		}
		if level != offPath {
			s.elems = append(s.elems, span{e, s.pos})
		}
		s.space()
		switch s.peek() {
		case ',':
			s.pos++
		case ']':
			return s.endList(level, start)
		default:
			return false
		}
	}
}

// endList closes the array that began at start; s.pos is at its ']'.
func (s *specScan) endList(level, start int) bool {
	if !s.pop() {
		return false
	}
	if level != offPath {
		s.array, s.found = span{start, s.pos}, true
	}
	return true
}

// push enters the array or object at s.pos.
func (s *specScan) push() bool {
	s.pos++
	s.depth++
	return s.depth <= maxNestingDepth
}

// pop leaves an array or object; s.pos is at its closing bracket.
func (s *specScan) pop() bool {
	s.pos++
	s.depth--
	return true
}

// peek returns the byte at s.pos, or 0 at the end (0 is valid nowhere).
func (s *specScan) peek() byte {
	if s.pos < len(s.data) {
		return s.data[s.pos]
	}
	return 0
}

// space skips JSON white space.
func (s *specScan) space() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// strStop marks the bytes a string's scan stops at: its end, an escape and
// the control characters, which JSON does not allow in a string. Any other
// byte is taken, invalid UTF-8 too (encoding/json replaces it when decoding).
var strStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// str scans the string at s.pos, which is at its opening quote, and reports
// whether it holds an escape.
func (s *specScan) str() (escaped, ok bool) {
	d, i := s.data, s.pos+1
	for {
		for i < len(d) && !strStop[d[i]] {
			i++
		}
		if i >= len(d) {
			return false, false
		}
		switch d[i] {
		case '"':
			s.pos = i + 1
			return escaped, true
		case '\\':
			escaped = true
			i++
			if i >= len(d) {
				return false, false
			}
			switch d[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				if i+4 >= len(d) || !isHex(d[i+1]) || !isHex(d[i+2]) || !isHex(d[i+3]) || !isHex(d[i+4]) {
					return false, false
				}
				i += 5
			default:
				return false, false
			}
		default: // a control character
			return false, false
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// number scans a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
// What follows it is the caller's to check.
func (s *specScan) number() bool {
	d, i := s.data, s.pos
	if i < len(d) && d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && '1' <= d[i] && d[i] <= '9':
		i = digits(d, i)
	default:
		return false
	}
	if i < len(d) && d[i] == '.' {
		if j := digits(d, i+1); j > i+1 {
			i = j
		} else {
			return false
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		j := digits(d, i)
		if j == i {
			return false
		}
		i = j
	}
	s.pos = i
	return true
}

// digits returns the index of the first byte at or after i that is not a
// decimal digit.
func digits(d []byte, i int) int {
	for i < len(d) && '0' <= d[i] && d[i] <= '9' {
		i++
	}
	return i
}

// literal scans true, false or null.
func (s *specScan) literal(word string) bool {
	if !bytes.HasPrefix(s.data[s.pos:], []byte(word)) {
		return false
	}
	s.pos += len(word)
	return true
}
