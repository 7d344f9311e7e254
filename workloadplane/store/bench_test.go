package store

import (
	"fmt"
	"path/filepath"
	"testing"
)

func BenchmarkPut(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Node: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	value := []byte(`{"kind":"Pod","metadata":{"name":"x"}}`)
	i := 0
	for b.Loop() {
		if _, err := s.Put(fmt.Sprintf("pods/ns/p%d", i%1000), value, Precondition{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkList1000(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "db"), Options{Node: "n1"})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 1000 {
		s.Put(fmt.Sprintf("pods/ns/p%d", i), []byte(`{"kind":"Pod"}`), Precondition{})
	}
	for b.Loop() {
		if recs, _, err := s.List("pods/ns/"); err != nil || len(recs) != 1000 {
			b.Fatal(len(recs), err)
		}
	}
}
