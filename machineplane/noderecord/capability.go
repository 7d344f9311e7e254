package noderecord

import (
	"crypto/sha256"
	"sort"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// CapabilityKey is the DHT provider key of a capability k=v:
// sha256("mycel/cap/v1/" + k + "=" + v) as a raw CIDv1.
func CapabilityKey(k, v string) cid.Cid {
	sum := sha256.Sum256([]byte("mycel/cap/v1/" + k + "=" + v))
	mh, err := multihash.Encode(sum[:], multihash.SHA2_256)
	if err != nil {
		panic(err) // a 32-byte SHA2-256 digest always encodes
	}
	return cid.NewCidV1(cid.Raw, mh)
}

// Capabilities lists the k=v pairs a record advertises: arch, os, region,
// zone, runtime (name/major.minor, as "podman/4.3" for a runtime version
// "podman/4.3.1", and the name alone), mycel version and labels.
func (r *Record) Capabilities() [][2]string {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	add("arch", r.Versions["arch"])
	add("os", r.Versions["os"])
	add("region", r.Region)
	add("zone", r.Zone)
	if name, version, ok := strings.Cut(r.Versions["runtime"], "/"); ok {
		if parts := strings.SplitN(version, ".", 3); len(parts) >= 2 {
			version = parts[0] + "." + parts[1]
		}
		add("runtime", name+"/"+version)
		add("runtime", name)
	} else {
		add("runtime", name)
	}
	add("mycel", r.Versions["mycel"])
	keys := make([]string, 0, len(r.Labels))
	for k := range r.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		add("label:"+k, r.Labels[k])
	}
	return out
}
