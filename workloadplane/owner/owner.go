package owner

import (
	"crypto/sha256"
	"encoding/binary"
)

// Of is the member that owns key: the one with the highest rendezvous hash
// of (key, member). When a member goes, only the keys it owned move, each
// to the next-highest member; every node that sees the same members picks
// the same owner.
func Of(key string, members []string) string {
	var best string
	var bestScore uint64
	buf := make([]byte, 0, len(key)+1+64) // key, NUL, member: one buffer for every member
	buf = append(append(buf, key...), 0)
	for _, m := range members {
		h := sha256.Sum256(append(buf[:len(key)+1], m...))
		score := binary.BigEndian.Uint64(h[:8])
		if best == "" || score > bestScore || (score == bestScore && m > best) {
			best, bestScore = m, score
		}
	}
	return best
}
