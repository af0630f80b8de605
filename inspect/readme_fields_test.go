package inspect

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// README.md's record reference lies between these two lines: a table of
// the record's own fields, then for each object a line naming its paths in
// bold backquotes (**`client_leg`**: …) and its table.
const (
	fieldsStart = "<!-- record fields: every JSON field of inspect.ConnRecord, checked by `go test ./inspect -run TestREADMERecordFields` -->"
	fieldsEnd   = "<!-- end of record fields -->"
)

// TestREADMERecordFields: README.md's record tables name every JSON field
// of ConnRecord (the Record it embeds included) and no field it lacks.
// Each object of the record (client_leg, upstream_leg.certificate, …) has
// a table of its own, or is spelled out in its parent's type column as
// {`a`, `b`: [{`c`}]}.
func TestREADMERecordFields(t *testing.T) {
	b, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start, end := strings.Index(doc, fieldsStart), strings.Index(doc, fieldsEnd)
	if start < 0 || end < start {
		t.Fatalf("README.md lacks the record fields' markers %q … %q", fieldsStart, fieldsEnd)
	}
	tables := readmeFieldTables(doc[start+len(fieldsStart) : end])
	want := map[string]map[string]reflect.Type{}
	jsonFields(reflect.TypeFor[ConnRecord](), "", want)

	covered := map[string]bool{}
	for _, path := range slices.Sorted(maps.Keys(want)) {
		if covered[path] {
			continue
		}
		if rows, ok := tables[path]; ok {
			checkNames(t, "README.md's table of "+label(path), namesOf(rows), slices.Collect(maps.Keys(want[path])))
			continue
		}
		// No table: the parent's row must spell the object out in braces.
		parent, name := splitPath(path)
		row, ok := tables[parent][name]
		inline := braced.FindString(row)
		if !ok || inline == "" {
			t.Errorf("README.md documents %s nowhere: give it a table (**`%s`**) or list its fields in braces in %s's row", path, path, label(parent))
			continue
		}
		checkNames(t, "README.md's braces for "+path, backquoted(inline), flatNames(path, want, covered))
	}
	for path := range tables {
		if _, ok := want[path]; !ok {
			t.Errorf("README.md has a table of %s, which the record does not have", label(path))
		}
	}
}

var (
	// objectLine names the paths a table documents: **`a.b`, `c.d`**: …
	objectLine = regexp.MustCompile("^\\*\\*(`[a-z_.]+`(?:, `[a-z_.]+`)*)\\*\\*")
	quoted     = regexp.MustCompile("`([a-z0-9_]+)`")
	braced     = regexp.MustCompile(`\{.*\}`)
)

// readmeFieldTables reads the record reference: path → field → the row's
// type column. The first table is the record's own (path "").
func readmeFieldTables(s string) map[string]map[string]string {
	out := map[string]map[string]string{"": {}}
	paths := []string{""}
	for line := range strings.Lines(s) {
		if m := objectLine.FindStringSubmatch(line); m != nil {
			paths = strings.Split(strings.NewReplacer("`", "", " ", "").Replace(m[1]), ",")
			for _, p := range paths {
				out[p] = map[string]string{}
			}
			continue
		}
		cells := strings.Split(line, "|")
		if !strings.HasPrefix(line, "| `") || len(cells) < 4 {
			continue
		}
		for _, p := range paths {
			for _, n := range backquoted(cells[1]) {
				out[p][n] = cells[2]
			}
		}
	}
	return out
}

// jsonFields records, for path and every object below it, the JSON names
// of its fields (an embedded struct's fields are its parent's, as
// encoding/json marshals them) and each field's type.
func jsonFields(t reflect.Type, path string, out map[string]map[string]reflect.Type) {
	if out[path] == nil {
		out[path] = map[string]reflect.Type{}
	}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && name == "" {
			jsonFields(f.Type, path, out)
			continue
		}
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		out[path][name] = f.Type
		if obj := objectType(f.Type); obj != nil {
			jsonFields(obj, join(path, name), out)
		}
	}
}

// objectType is the struct a field's JSON is an object (or a list of
// objects) of, or nil.
func objectType(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeFor[time.Time]() {
		return nil
	}
	return t
}

// flatNames is every field name of path and of the objects below it,
// which braces list together; each of those objects is then covered.
func flatNames(path string, want map[string]map[string]reflect.Type, covered map[string]bool) []string {
	var names []string
	for name := range want[path] {
		names = append(names, name)
		if _, ok := want[join(path, name)]; ok {
			covered[join(path, name)] = true
			names = append(names, flatNames(join(path, name), want, covered)...)
		}
	}
	return names
}

func checkNames(t *testing.T, where string, documented, fields []string) {
	t.Helper()
	doc, have := map[string]bool{}, map[string]bool{}
	for _, n := range documented {
		doc[n] = true
	}
	for _, n := range fields {
		have[n] = true
		if !doc[n] {
			t.Errorf("%s does not name the field %q", where, n)
		}
	}
	for n := range doc {
		if !have[n] {
			t.Errorf("%s names %q, which is no field of the record", where, n)
		}
	}
}

func namesOf(rows map[string]string) []string { return slices.Collect(maps.Keys(rows)) }

func backquoted(s string) []string {
	var out []string
	for _, m := range quoted.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func splitPath(path string) (parent, name string) {
	if i := strings.LastIndex(path, "."); i >= 0 {
		return path[:i], path[i+1:]
	}
	return "", path
}

func label(path string) string {
	if path == "" {
		return "the record's own fields"
	}
	return path
}
