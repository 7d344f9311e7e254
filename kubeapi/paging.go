package kubeapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// Lists paginate with limit and continue, as kube-apiserver's do. A page is
// read from the current state, not from a snapshot: an object that changed
// between two pages shows as it is when its page is read. Every page
// carries the first page's resourceVersion, so a watch started from it
// (what informers do) sees every change made since, none skipped.

// continueToken is what a continue value holds (base64url of its JSON).
type continueToken struct {
	Version int    `json:"v"`
	RV      uint64 `json:"rv"`
	// After is the namespace/name of the last object of the previous
	// page.
	After string `json:"after"`
}

// page is one page of a list and what a client needs to ask for the next.
type page struct {
	items     []objects.Object
	rv        uint64
	continues string
	remaining *int64
}

// paginate cuts items (a list at rv) into the page the request asks for.
func paginate(r *http.Request, items []objects.Object, rv uint64) (page, error) {
	q := r.URL.Query()
	limit, err := queryInt(q, "limit")
	if err != nil {
		return page{}, err
	}
	sort.Slice(items, func(i, j int) bool { return itemKey(items[i]) < itemKey(items[j]) })
	start := 0
	if c := q.Get("continue"); c != "" {
		tok, err := parseContinue(c)
		if err != nil {
			return page{}, err
		}
		rv = tok.RV
		start = sort.Search(len(items), func(i int) bool { return itemKey(items[i]) > tok.After })
	}
	items = items[start:]
	if limit == nil || *limit <= 0 || int64(len(items)) <= *limit {
		return page{items: items, rv: rv}, nil
	}
	out := items[:*limit]
	raw, _ := json.Marshal(continueToken{Version: 1, RV: rv, After: itemKey(out[len(out)-1])})
	left := int64(len(items)) - *limit
	return page{items: out, rv: rv, continues: base64.RawURLEncoding.EncodeToString(raw), remaining: &left}, nil
}

func itemKey(o objects.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func parseContinue(c string) (continueToken, error) {
	var tok continueToken
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(raw, &tok)
	}
	if err == nil && tok.Version != 1 {
		err = fmt.Errorf("unknown version %d", tok.Version)
	}
	if err != nil {
		return continueToken{}, apierrors.NewBadRequest(fmt.Sprintf("continue key is not valid: %v (pass the metadata.continue of the previous page unchanged)", err))
	}
	return tok, nil
}
