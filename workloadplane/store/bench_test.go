package store

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"
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

func BenchmarkRecordVersion(b *testing.B) {
	t := Timestamp{Wall: time.Now().UnixNano(), Node: "12D3KooWEaBHtc5vjqw5kT1us1siyi4smMQzCvQHJQdeWMDGA65Z"}
	r := Record{Born: t, Stamp: t, StatusStamp: t, Fields: map[string]Timestamp{}}
	for i := range 20 {
		r.Fields[fmt.Sprintf(`f:metadata/f:labels/f:l%d`, i)] = t
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Version()
	}
}
