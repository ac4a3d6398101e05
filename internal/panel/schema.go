package panel

import (
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Schema checks a decoded JSON value (as produced by encoding/json with
// UseNumber: map[string]any, []any, string, json.Number, bool, nil) without
// any type coercion, appends an Issue per failure, and returns the cleaned
// value: objects keep only their declared keys, integers become int64.
type Schema interface {
	check(v any, path []any, issues *[]Issue) any
}

func addIssue(issues *[]Issue, path []any, format string, args ...any) {
	*issues = append(*issues, Issue{Path: append([]any{}, path...), Message: fmt.Sprintf(format, args...)})
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

// Validate checks v against s and returns the cleaned value and the issues
// (none when valid).
func Validate(s Schema, v any) (any, []Issue) {
	var issues []Issue
	out := s.check(v, nil, &issues)
	return out, issues
}

// ObjectSchema is a JSON object with declared fields; unknown keys are
// ignored and dropped from the cleaned value.
type ObjectSchema struct {
	fields []Field
}

// Field is one key of an ObjectSchema.
type Field struct {
	Name     string
	Schema   Schema
	Required bool
}

// Object returns an object schema with the given fields.
func Object(fields ...Field) *ObjectSchema { return &ObjectSchema{fields: fields} }

// Required declares a key that must be present (null is refused unless the
// schema is Nullable).
func Required(name string, s Schema) Field { return Field{Name: name, Schema: s, Required: true} }

// Optional declares a key that may be absent (null is refused unless the
// schema is Nullable).
func Optional(name string, s Schema) Field { return Field{Name: name, Schema: s} }

func (o *ObjectSchema) check(v any, path []any, issues *[]Issue) any {
	m, ok := v.(map[string]any)
	if !ok {
		addIssue(issues, path, "Expected object, received %s", typeName(v))
		return nil
	}
	out := make(map[string]any, len(o.fields))
	for _, f := range o.fields {
		fv, present := m[f.Name]
		p := append(append([]any{}, path...), f.Name)
		if !present {
			if f.Required {
				addIssue(issues, p, "Required")
			}
			continue
		}
		out[f.Name] = f.Schema.check(fv, p, issues)
	}
	return out
}

// StringSchema is a JSON string with optional length, pattern and check.
type StringSchema struct {
	min, max int // characters; max 0 = unlimited
	pattern  *regexp.Regexp
	enum     []string
	checks   []func(string) error
}

// String returns a string schema.
func String() *StringSchema { return &StringSchema{} }

// Min requires at least n characters.
func (s *StringSchema) Min(n int) *StringSchema { c := *s; c.min = n; return &c }

// Max allows at most n characters.
func (s *StringSchema) Max(n int) *StringSchema { c := *s; c.max = n; return &c }

// Pattern requires the whole string to match expr (anchor it yourself).
func (s *StringSchema) Pattern(expr string) *StringSchema {
	c := *s
	c.pattern = regexp.MustCompile(expr)
	return &c
}

// OneOf requires one of the given values.
func (s *StringSchema) OneOf(values ...string) *StringSchema { c := *s; c.enum = values; return &c }

// Check adds a validator (e.g. validate.Domain); its error text becomes the
// issue message.
func (s *StringSchema) Check(fn func(string) error) *StringSchema {
	c := *s
	c.checks = append(append([]func(string) error{}, s.checks...), fn)
	return &c
}

func (s *StringSchema) check(v any, path []any, issues *[]Issue) any {
	str, ok := v.(string)
	if !ok {
		addIssue(issues, path, "Expected string, received %s", typeName(v))
		return nil
	}
	n := utf8.RuneCountInString(str)
	switch {
	case n < s.min:
		addIssue(issues, path, "Must be at least %d characters", s.min)
	case s.max > 0 && n > s.max:
		addIssue(issues, path, "Must be at most %d characters", s.max)
	case s.pattern != nil && !s.pattern.MatchString(str):
		addIssue(issues, path, "Invalid format")
	case len(s.enum) > 0 && !contains(s.enum, str):
		addIssue(issues, path, "Must be one of: %s", strings.Join(s.enum, ", "))
	default:
		for _, fn := range s.checks {
			if err := fn(str); err != nil {
				addIssue(issues, path, "%s", err.Error())
				break
			}
		}
	}
	return str
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// IntegerSchema is a JSON number with an integral value; the cleaned value
// is an int64.
type IntegerSchema struct {
	min, max int64
}

// Integer returns an integer schema over the int64 range.
func Integer() *IntegerSchema { return &IntegerSchema{min: math.MinInt64, max: math.MaxInt64} }

// Min requires at least n.
func (s *IntegerSchema) Min(n int64) *IntegerSchema { c := *s; c.min = n; return &c }

// Max allows at most n.
func (s *IntegerSchema) Max(n int64) *IntegerSchema { c := *s; c.max = n; return &c }

func (s *IntegerSchema) check(v any, path []any, issues *[]Issue) any {
	num, ok := v.(json.Number)
	if !ok {
		addIssue(issues, path, "Expected integer, received %s", typeName(v))
		return nil
	}
	i, ok := integral(num)
	if !ok {
		addIssue(issues, path, "Expected integer, received a fraction, an exponent or an out-of-range number")
		return nil
	}
	if i < s.min || i > s.max {
		addIssue(issues, path, "Must be between %d and %d", s.min, s.max)
	}
	return i
}

// integral returns the value of n when it is written as a JSON integer (an
// optional minus and digits: no fraction, no exponent) in int64 range. The
// API promises no coercion, so 8080.0 and 1e4 are not integers even though
// their values are whole.
func integral(n json.Number) (int64, bool) {
	s := string(n)
	if strings.ContainsAny(s, ".eE+") {
		return 0, false
	}
	i, err := strconv.ParseInt(s, 10, 64)
	return i, err == nil
}

// NumberSchema is any JSON number; the cleaned value is a float64.
type NumberSchema struct{ min, max float64 }

// Number returns a number schema.
func Number() *NumberSchema { return &NumberSchema{min: math.Inf(-1), max: math.Inf(1)} }

// Min requires at least n.
func (s *NumberSchema) Min(n float64) *NumberSchema { c := *s; c.min = n; return &c }

// Max allows at most n.
func (s *NumberSchema) Max(n float64) *NumberSchema { c := *s; c.max = n; return &c }

func (s *NumberSchema) check(v any, path []any, issues *[]Issue) any {
	num, ok := v.(json.Number)
	if !ok {
		addIssue(issues, path, "Expected number, received %s", typeName(v))
		return nil
	}
	f, err := num.Float64()
	if err != nil || math.IsInf(f, 0) {
		addIssue(issues, path, "Number out of range")
		return nil
	}
	if f < s.min || f > s.max {
		addIssue(issues, path, "Must be between %v and %v", s.min, s.max)
	}
	return f
}

// BoolSchema is a JSON boolean.
type BoolSchema struct{}

// Bool returns a boolean schema.
func Bool() BoolSchema { return BoolSchema{} }

func (BoolSchema) check(v any, path []any, issues *[]Issue) any {
	b, ok := v.(bool)
	if !ok {
		addIssue(issues, path, "Expected boolean, received %s", typeName(v))
		return nil
	}
	return b
}

// ArraySchema is a JSON array of items of one schema.
type ArraySchema struct {
	item     Schema
	min, max int // max 0 = unlimited
	unique   bool
}

// Array returns an array schema with items checked by item.
func Array(item Schema) *ArraySchema { return &ArraySchema{item: item} }

// Min requires at least n items.
func (s *ArraySchema) Min(n int) *ArraySchema { c := *s; c.min = n; return &c }

// Max allows at most n items.
func (s *ArraySchema) Max(n int) *ArraySchema { c := *s; c.max = n; return &c }

// Unique refuses repeated scalar items.
func (s *ArraySchema) Unique() *ArraySchema { c := *s; c.unique = true; return &c }

func (s *ArraySchema) check(v any, path []any, issues *[]Issue) any {
	arr, ok := v.([]any)
	if !ok {
		addIssue(issues, path, "Expected array, received %s", typeName(v))
		return nil
	}
	if len(arr) < s.min {
		addIssue(issues, path, "Must have at least %d items", s.min)
	}
	if s.max > 0 && len(arr) > s.max {
		addIssue(issues, path, "Must have at most %d items", s.max)
		return nil
	}
	out := make([]any, len(arr))
	seen := map[any]bool{}
	for i, item := range arr {
		p := append(append([]any{}, path...), i)
		out[i] = s.item.check(item, p, issues)
		if s.unique {
			switch item.(type) {
			case string, bool, json.Number:
				if seen[item] {
					addIssue(issues, p, "Duplicate item")
				}
				seen[item] = true
			}
		}
	}
	return out
}

type nullable struct{ inner Schema }

// Nullable accepts null as well as what s accepts.
func Nullable(s Schema) Schema { return nullable{inner: s} }

func (n nullable) check(v any, path []any, issues *[]Issue) any {
	if v == nil {
		return nil
	}
	return n.inner.check(v, path, issues)
}
