package migrations

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

func TestLoadSortsAndSkips(t *testing.T) {
	fsys := fstest.MapFS{
		"m/0002_b.sql":   {Data: []byte("B")},
		"m/0001_a.sql":   {Data: []byte("A")},
		"m/README.md":    {Data: []byte("x")},
		"m/dir/0003.sql": {Data: []byte("C")},
	}
	ms, err := Load(fsys, "m")
	if err != nil {
		t.Fatal(err)
	}
	if got := Versions(ms); !slices.Equal(got, []string{"0001_a", "0002_b"}) || ms[0].SQL != "A" {
		t.Fatalf("got %v %+v", got, ms)
	}
	if _, err := Load(fsys, "missing"); err == nil {
		t.Fatal("a missing directory must fail")
	}
}

func TestEmbeddedCheck(t *testing.T) {
	tooNew := errors.New("too new")
	e := Embedded{FS: fstest.MapFS{
		"m/0001_a.sql": {Data: []byte("A")},
		"m/0002_b.sql": {Data: []byte("B")},
	}, Dir: "m"}
	if got := e.Versions(); !slices.Equal(got, []string{"0001_a", "0002_b"}) {
		t.Fatalf("Versions %v", got)
	}
	ms, err := e.Check([]string{"0001_a"}, tooNew, "upgrade")
	if err != nil || len(ms) != 2 {
		t.Fatalf("known versions: %v, %v", ms, err)
	}
	_, err = e.Check([]string{"0001_a", "0003_c", "0004_d"}, tooNew, "upgrade it")
	if !errors.Is(err, tooNew) {
		t.Fatalf("unknown versions: %v", err)
	}
	for _, want := range []string{"0003_c, 0004_d", "latest known: 0002_b", "upgrade it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	missing := Embedded{FS: fstest.MapFS{}, Dir: "none"}
	if _, err := missing.Check(nil, tooNew, ""); err == nil || errors.Is(err, tooNew) {
		t.Fatalf("unreadable migrations: %v", err)
	}
	if got := missing.Versions(); len(got) != 0 {
		t.Fatalf("unreadable migrations list %v", got)
	}
}
