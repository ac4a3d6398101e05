package panel

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/api.md documents every route the panel registers (method and path,
// with :param for {param}) and names every type of internal/api.
func TestAPIDocsCoverRoutesAndTypes(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(doc)
	h := newHarness(t, "COMPLETED")
	param := regexp.MustCompile(`\{([a-z]+)(\.\.\.)?\}`)
	n := 0
	for path, methods := range h.srv.routes {
		for method := range methods {
			n++
			want := method + " " + param.ReplaceAllString(path, ":$1")
			if !strings.Contains(text, "`"+want+"`") {
				t.Errorf("docs/api.md does not document %s", want)
			}
		}
	}
	if n < 50 {
		t.Fatalf("only %d routes registered", n)
	}

	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, filepath.Join("..", "api"), func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, pkg := range pkgs {
		for _, f := range pkg.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.TYPE {
					continue
				}
				for _, s := range g.Specs {
					name := s.(*ast.TypeSpec).Name.Name
					if ast.IsExported(name) && !strings.Contains(text, "api."+name) {
						t.Errorf("docs/api.md does not name api.%s", name)
					}
				}
			}
		}
	}
}
