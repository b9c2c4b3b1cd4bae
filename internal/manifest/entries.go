package manifest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Entries is a manifest's map of entries by key (a path, a variable name)
// kept together with each entry's JSON encoding, so that encoding the map
// again after k of n entries changed marshals those k and copies the bytes
// of the others, and the sorted keys are rebuilt only when a key was added
// or removed. AppendJSON gives exactly what json.Marshal gives for a
// map[string]V of the same entries (keys sorted, no indentation), so a
// manifest holding one reads back through Load like any other.
//
// V must be a type json.Marshal cannot fail on (plain fields, no
// channels, no custom marshalers that fail). The zero Entries is empty and
// ready; it is not safe for concurrent use.
type Entries[V comparable] struct {
	at map[string]*encoded[V]
	// sorted is every entry by key as of the last order(), those deleted
	// since marked gone; added are those put new since, unsorted.
	sorted  []*encoded[V]
	added   []*encoded[V]
	removed bool
	// keys are the keys of sorted. A new slice replaces it when a key is
	// added or removed; the one handed out is never modified.
	keys []string
}

// encoded is one entry and its encoding, `"key":value`.
type encoded[V comparable] struct {
	key  string
	v    V
	enc  []byte
	gone bool
}

// Put records v under key. It reports whether that changed anything:
// false when key already held v, and then nothing is encoded.
func (es *Entries[V]) Put(key string, v V) (changed bool) {
	e := es.at[key]
	if e != nil && e.v == v {
		return false
	}
	if e == nil {
		if es.at == nil {
			es.at = map[string]*encoded[V]{}
		}
		e = &encoded[V]{key: key}
		es.at[key] = e
		es.added = append(es.added, e)
	}
	k, err := json.Marshal(key)
	if err != nil {
		panic(fmt.Sprintf("manifest entry key: %v", err)) // a string: cannot fail
	}
	val, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("manifest entry %s: %v", key, err)) // see the type's doc
	}
	e.v, e.enc = v, append(append(append(e.enc[:0], k...), ':'), val...)
	return true
}

// Delete removes key's entry. It reports whether there was one.
func (es *Entries[V]) Delete(key string) (changed bool) {
	e := es.at[key]
	if e == nil {
		return false
	}
	delete(es.at, key)
	e.gone, es.removed = true, true
	return true
}

// Get returns the entry under key, and whether there is one.
func (es *Entries[V]) Get(key string) (V, bool) {
	if e := es.at[key]; e != nil {
		return e.v, true
	}
	var zero V
	return zero, false
}

// Len returns the number of entries.
func (es *Entries[V]) Len() int { return len(es.at) }

// Keys returns every key, sorted. The caller must not modify the slice;
// Entries never does either (a change of the keys makes a new one).
func (es *Entries[V]) Keys() []string {
	es.order()
	return es.keys
}

// AppendJSON appends the entries as a JSON object to b: what json.Marshal
// makes of a map[string]V holding them.
func (es *Entries[V]) AppendJSON(b []byte) []byte {
	es.order()
	b = append(b, '{')
	for i, e := range es.sorted {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, e.enc...)
	}
	return append(b, '}')
}

// order brings sorted and keys up to date after keys were added or
// removed: the new ones are sorted and merged with the rest in one pass.
func (es *Entries[V]) order() {
	if len(es.added) == 0 && !es.removed {
		return
	}
	slices.SortFunc(es.added, func(a, b *encoded[V]) int { return strings.Compare(a.key, b.key) })
	sorted := make([]*encoded[V], 0, len(es.at))
	old, add := es.sorted, es.added
	for len(old) > 0 || len(add) > 0 {
		var e *encoded[V]
		if len(add) == 0 || len(old) > 0 && old[0].key < add[0].key {
			e, old = old[0], old[1:]
		} else {
			e, add = add[0], add[1:]
		}
		if !e.gone {
			sorted = append(sorted, e)
		}
	}
	keys := make([]string, len(sorted))
	for i, e := range sorted {
		keys[i] = e.key
	}
	es.sorted, es.keys, es.added, es.removed = sorted, keys, nil, false
}
