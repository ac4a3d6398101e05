package panel

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/portlama/portlama/internal/validate"
)

var testSchema = Object(
	Required("port", Integer().Min(1024).Max(65535)),
	Optional("enabled", Bool()),
	Optional("name", String().Min(1).Max(10).Pattern(`^[a-z]+$`)),
	Optional("mode", String().OneOf("public", "restricted")),
	Optional("users", Array(String().Check(validate.Username)).Max(3).Unique()),
	Optional("ratio", Number().Min(0).Max(1)),
	Optional("host", Nullable(String().Check(validate.TargetHost))),
)

func validateJSON(t *testing.T, s Schema, body string) (any, []Issue) {
	t.Helper()
	v, err := ParseJSON([]byte(body))
	if err != nil {
		t.Fatalf("parse %s: %v", body, err)
	}
	return Validate(s, v)
}

func TestSchemaNoCoercion(t *testing.T) {
	cases := []struct {
		body string
		path string // expected single issue path, "" = valid
	}{
		{`{"port":8080}`, ""},
		{`{"port":8080.0}`, `[port]`}, // no coercion: a fraction is not an integer, even .0
		{`{"port":8.08e3}`, `[port]`},
		{`{"port":1e4}`, `[port]`},
		{`{"port":8080E0}`, `[port]`},
		{`{"port":"8080"}`, `[port]`},
		{`{"port":8080.5}`, `[port]`},
		{`{"port":1e400}`, `[port]`},
		{`{"port":80}`, `[port]`},
		{`{"port":65536}`, `[port]`},
		{`{"port":null}`, `[port]`},
		{`{"port":true}`, `[port]`},
		{`{}`, `[port]`},
		{`{"port":8080,"enabled":"true"}`, `[enabled]`},
		{`{"port":8080,"enabled":1}`, `[enabled]`},
		{`{"port":8080,"enabled":false}`, ""},
		{`{"port":8080,"name":""}`, `[name]`},
		{`{"port":8080,"name":"abcdefghijk"}`, `[name]`},
		{`{"port":8080,"name":"ABC"}`, `[name]`},
		{`{"port":8080,"name":123}`, `[name]`},
		{`{"port":8080,"mode":"private"}`, `[mode]`},
		{`{"port":8080,"users":"alice"}`, `[users]`},
		{`{"port":8080,"users":["alice","Bob"]}`, `[users 1]`},
		{`{"port":8080,"users":["alice","alice"]}`, `[users 1]`},
		{`{"port":8080,"users":["a1","b1","c1","d1"]}`, `[users]`},
		{`{"port":8080,"ratio":"0.5"}`, `[ratio]`},
		{`{"port":8080,"ratio":1.5}`, `[ratio]`},
		{`{"port":8080,"ratio":0.5}`, ""},
		{`{"port":8080,"host":null}`, ""},
		{`{"port":8080,"host":"a b"}`, `[host]`},
		{`{"port":8080,"unknown":{"deep":[1,2]}}`, ""},
		{`[]`, `[]`},
	}
	for _, tc := range cases {
		_, issues := validateJSON(t, testSchema, tc.body)
		got := ""
		if len(issues) == 1 {
			got = fmt.Sprint(issues[0].Path)
		} else if len(issues) > 1 {
			got = fmt.Sprint(issues)
		}
		if got != tc.path {
			t.Errorf("%s: issues %v, want path %s", tc.body, issues, tc.path)
		}
	}
}

func TestSchemaCleanedValue(t *testing.T) {
	out, issues := validateJSON(t, testSchema, `{"port":8080,"unknown":1,"enabled":true}`)
	if len(issues) != 0 {
		t.Fatal(issues)
	}
	data, _ := json.Marshal(out)
	if string(data) != `{"enabled":true,"port":8080}` {
		t.Fatalf("cleaned %s", data)
	}
	var typed struct {
		Port    int   `json:"port"`
		Enabled *bool `json:"enabled"`
	}
	c := &Ctx{body: out}
	if err := c.Decode(&typed); err != nil || typed.Port != 8080 || typed.Enabled == nil || !*typed.Enabled {
		t.Fatalf("decode %+v %v", typed, err)
	}
}

func TestValidationErrorBody(t *testing.T) {
	e := ValidationError(Issue{Path: []any{"users", 2}, Message: "bad"})
	data, _ := json.Marshal(e)
	if string(data) != `{"details":{"issues":[{"path":["users",2],"message":"bad"}]},"error":"Validation failed"}` {
		t.Fatalf("%s", data)
	}
}

func FuzzValidateBody(f *testing.F) {
	for _, s := range []string{`{"port":8080}`, `{"port":"8080"}`, `{"port":8080.5,"users":["a","a"]}`, `[1,{"x":null}]`, `{"port":1e999}`, `{"host":null,"ratio":-0}`, `"x"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseJSON(data)
		if err != nil {
			return
		}
		out, issues := Validate(testSchema, v)
		for _, is := range issues {
			if is.Message == "" || is.Path == nil {
				t.Fatalf("bad issue %+v", is)
			}
		}
		if len(issues) > 0 {
			return
		}
		// A valid body: cleaned value has only declared keys and a port in range.
		m := out.(map[string]any)
		for k := range m {
			switch k {
			case "port", "enabled", "name", "mode", "users", "ratio", "host":
			default:
				t.Fatalf("undeclared key %q kept", k)
			}
		}
		p, ok := m["port"].(int64)
		if !ok || p < 1024 || p > 65535 {
			t.Fatalf("port %v accepted", m["port"])
		}
		if _, err := json.Marshal(out); err != nil {
			t.Fatalf("cleaned value does not encode: %v", err)
		}
	})
}
