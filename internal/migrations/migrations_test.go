package migrations

import (
	"slices"
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
