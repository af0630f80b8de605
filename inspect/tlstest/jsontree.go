package tlstest

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// node is one member of tshark's JSON output, kept in document order.
// tshark repeats a key when a field occurs several times in one tree (and
// with --no-duplicate-keys turns them into an array); both forms become
// sibling nodes with the same key, so order and multiplicity survive, which
// a map would lose.
type node struct {
	key  string
	val  string // leaf value; numbers are kept as their JSON text
	kids []*node
	leaf bool
}

// parseTree reads one JSON value into a synthetic root whose kids are the
// elements of a top-level array (or the value itself).
func parseTree(r io.Reader) (*node, error) {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	root := &node{}
	kids, err := parseValue(dec, "")
	if err != nil {
		return nil, fmt.Errorf("parsing tshark json: %w", err)
	}
	root.kids = kids
	return root, nil
}

// parseValue reads the next value; an array yields one node per element,
// each under key.
func parseValue(dec *json.Decoder, key string) ([]*node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			n := &node{key: key}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, fmt.Errorf("object key %v is not a string", kt)
				}
				kids, err := parseValue(dec, k)
				if err != nil {
					return nil, err
				}
				n.kids = append(n.kids, kids...)
			}
			_, err := dec.Token() // '}'
			return []*node{n}, err
		case '[':
			var out []*node
			for dec.More() {
				kids, err := parseValue(dec, key)
				if err != nil {
					return nil, err
				}
				out = append(out, kids...)
			}
			_, err := dec.Token() // ']'
			return out, err
		}
		return nil, fmt.Errorf("unexpected delimiter %v", v)
	case string:
		return []*node{{key: key, val: v, leaf: true}}, nil
	case json.Number:
		return []*node{{key: key, val: v.String(), leaf: true}}, nil
	case bool:
		return []*node{{key: key, val: fmt.Sprint(v), leaf: true}}, nil
	case nil:
		return []*node{{key: key, leaf: true}}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// child returns the first direct child with key.
func (n *node) child(key string) *node {
	for _, k := range n.kids {
		if k.key == key {
			return k
		}
	}
	return nil
}

// has reports whether a direct child has key.
func (n *node) has(key string) bool { return n.child(key) != nil }

// all returns the values of every leaf with key below n, in document order.
func (n *node) all(key string) []string {
	var out []string
	n.walk(func(k *node) bool {
		if k.leaf && k.key == key {
			out = append(out, k.val)
		}
		return true
	})
	return out
}

// first returns the value of the first leaf with key below n.
func (n *node) first(key string) (string, bool) {
	v := n.all(key)
	if len(v) == 0 {
		return "", false
	}
	return v[0], true
}

// walk calls fn for every node below n, depth first; fn returning false
// skips that node's subtree.
func (n *node) walk(fn func(*node) bool) {
	for _, k := range n.kids {
		if fn(k) {
			k.walk(fn)
		}
	}
}

// hexBytes turns tshark's "ab:cd:ef" into "abcdef".
func hexBytes(s string) string { return strings.ReplaceAll(s, ":", "") }
