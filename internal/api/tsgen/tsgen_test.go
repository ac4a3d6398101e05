package tsgen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The committed TypeScript types are what the generator writes from
// internal/api today: a change to a wire type without regenerating fails
// here.
func TestCommittedTypesAreCurrent(t *testing.T) {
	want, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "..", "web", "src", "api", "types.gen.ts")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v (run `go generate ./internal/api/...`)", path, err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s is stale: run `go generate ./internal/api/...` (make generate) and commit it", path)
	}
	for _, name := range []string{"export interface Tunnel {", "export interface Error {", `export type AccessMode = "authenticated" | "restricted" | "public";`} {
		if !strings.Contains(string(want), name) {
			t.Errorf("generated types lack %q", name)
		}
	}
}

func TestMapping(t *testing.T) {
	out, err := Generate(filepath.Join("testdata", "ok"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`export type Color = "red" | "blue";`,
		`export const ColorValues: readonly Color[] = [Red, Blue];`,
		"/** warm */\nexport const Red = \"red\" satisfies Color;",
		"export const Limit = 5;",
		"/** Thing is a thing. */\nexport interface Thing {",
		"  name: string;\n",
		"  maybe: string | null;\n",
		"  absent?: number;\n",
		"  tags?: string[];\n",
		"  color: Color;\n",
		"  extra: unknown;\n",
		"  labels: Record<string, number>;\n",
		"  path: unknown[];\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	for _, not := range []string{"Hidden", "hidden", "private"} {
		if strings.Contains(s, not) {
			t.Errorf("output has %q", not)
		}
	}
	// The list of values comes after the constants it names (a const used
	// before its declaration throws at module load).
	if strings.Index(s, "ColorValues") < strings.Index(s, "export const Blue") {
		t.Error("ColorValues precedes the constants")
	}
}

func TestRefusesWhatItCannotMap(t *testing.T) {
	if _, err := Generate(filepath.Join("testdata", "embedded")); err == nil || !strings.Contains(err.Error(), "embedded") {
		t.Fatalf("embedded field: %v", err)
	}
}
