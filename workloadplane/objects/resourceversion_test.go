package objects

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/resourceversion"
)

func TestResourceVersionRoundTrip(t *testing.T) {
	for _, rv := range []ResourceVersion{
		{},
		{Seq: 42},
		{Seq: 1, Replica: 1, Version: 1},
		{Seq: 123456, Replica: 999_999_999_999, Version: 1<<63 - 1},
		{Seq: 7, Replica: 31337},
	} {
		got, err := ParseResourceVersion(rv.String())
		if err != nil || got != rv {
			t.Errorf("%+v: %q parses as %+v, %v", rv, rv.String(), got, err)
		}
	}
	for _, s := range []string{"abc", "-1", "1e5", "12 3", "1" + "000000000000" + "0000000000000000001"} {
		if _, err := ParseResourceVersion(s); err == nil {
			t.Errorf("%q parsed", s)
		}
	}
}

// Resource versions of one node compare as integers in the order of its
// changes, as newer clients (k8s.io/apimachinery's CompareResourceVersion)
// expect.
func TestResourceVersionsOfOneNodeCompare(t *testing.T) {
	earlier := ResourceVersion{Seq: 9, Replica: 5, Version: 1<<63 - 1}
	for _, later := range []ResourceVersion{{Seq: 10, Replica: 5, Version: 1}, {Seq: 10, Replica: 5}, {Seq: 1000, Replica: 5, Version: 3}} {
		c, err := resourceversion.CompareResourceVersion(earlier.String(), later.String())
		if err != nil || c != -1 {
			t.Errorf("%s vs %s: %d, %v; want -1", earlier, later, c, err)
		}
	}
}
