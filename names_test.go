package queues_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// maxExportedNames bounds the root package's API: what an application
// writes (config, service, tasks and options, worker, results, context
// helpers, errors). Store-facing names live in driver and queuestype,
// transport-facing ones in execution; put new names there, or in another
// subpackage, before raising this.
const maxExportedNames = 170

// TestExportedNames counts the exported top-level names of the package's
// non-test files (consts, vars, funcs, types, aliases included) plus the
// exported methods declared on its exported types (interface methods are not
// counted) and fails above maxExportedNames.
func TestExportedNames(t *testing.T) {
	names := exportedNames(t, ".")
	if len(names) > maxExportedNames {
		t.Fatalf("package queues exports %d names, more than %d; move what applications rarely use to a subpackage:\n%s",
			len(names), maxExportedNames, strings.Join(names, "\n"))
	}
	t.Logf("package queues exports %d names (at most %d)", len(names), maxExportedNames)
}

// exportedNames returns "file: kind name" for every counted name in dir, sorted.
func exportedNames(t *testing.T, dir string) []string {
	t.Helper()
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var files []*ast.File
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	var out []string
	add := func(f *ast.File, kind, name string) {
		out = append(out, filepath.Base(fset.Position(f.Pos()).Filename)+": "+kind+" "+name)
	}
	for _, f := range files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv == nil {
					add(f, "func", d.Name.Name)
					continue
				}
				if recv := receiverName(d.Recv.List[0].Type); ast.IsExported(recv) {
					add(f, "method", recv+"."+d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.ValueSpec:
						for _, id := range s.Names {
							if id.IsExported() {
								add(f, d.Tok.String(), id.Name)
							}
						}
					case *ast.TypeSpec:
						if s.Name.IsExported() {
							add(f, "type", s.Name.Name)
						}
					}
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// receiverName returns the type name of a method receiver (T, *T, T[P], *T[P]).
func receiverName(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	switch x := e.(type) {
	case *ast.IndexExpr:
		e = x.X
	case *ast.IndexListExpr:
		e = x.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}
