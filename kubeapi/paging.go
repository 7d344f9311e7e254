package kubeapi

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// Lists paginate with limit and continue, as kube-apiserver's do. A page is
// read from the current state, not from a snapshot: an object that changed
// between two pages shows as it is when its page is read. Every page
// carries the first page's resourceVersion, so a watch started from it
// (what informers do) sees every change made since, none skipped.

// continueToken is what a continue value holds (base64url of its JSON).
type continueToken struct {
	Version int `json:"v"`
	// RV is the first page's resourceVersion, a number (ResourceVersion).
	RV string `json:"rv"`
	// After is the namespace/name of the last object of the previous
	// page.
	After string `json:"after"`
}

// page is one page of a list and what a client needs to ask for the next.
type page struct {
	items     []objects.Object
	rv        objects.ResourceVersion
	continues string
	remaining *int64
}

// listPage reads the page of res's list that the request asks for
// (limit, continue) from the object layer, which decodes only that page.
// remainingItemCount is set, as kube-apiserver sets it, only without
// selectors.
func listPage(r *http.Request, c objects.Collection, namespace string, ls labels.Selector, fs fields.Selector) (page, error) {
	q := r.URL.Query()
	limit, err := queryInt(q, "limit")
	if err != nil {
		return page{}, err
	}
	var tok continueToken
	if c := q.Get("continue"); c != "" {
		if tok, err = parseContinue(c); err != nil {
			return page{}, err
		}
	}
	n := int64(0)
	if limit != nil && *limit > 0 {
		n = *limit
	}
	l, left, err := c.ListPage(namespace, ls, fs, tok.After, n)
	if err != nil {
		return page{}, err
	}
	pg := page{items: l.Items, rv: l.ResourceVersion}
	if rv := objects.MustParseResourceVersion(tok.RV); rv.Replica == l.ResourceVersion.Replica && !rv.IsZero() {
		// A page continued on another node carries that node's current
		// resourceVersion: the first page's means nothing here.
		pg.rv = rv
	}
	if n == 0 || left == 0 || len(l.Items) == 0 {
		return pg, nil
	}
	raw, _ := json.Marshal(continueToken{Version: 2, RV: pg.rv.String(), After: itemKey(l.Items[len(l.Items)-1])})
	pg.continues = base64.RawURLEncoding.EncodeToString(raw)
	if ls.Empty() && fs.Empty() {
		pg.remaining = &left
	}
	return pg, nil
}

func itemKey(o objects.Object) string { return o.GetNamespace() + "/" + o.GetName() }

func parseContinue(c string) (continueToken, error) {
	var tok continueToken
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err == nil {
		err = json.Unmarshal(raw, &tok)
	}
	if err == nil && tok.Version != 2 {
		err = fmt.Errorf("unknown version %d", tok.Version)
	}
	if err != nil {
		return continueToken{}, apierrors.NewBadRequest(fmt.Sprintf("continue key is not valid: %v (pass the metadata.continue of the previous page unchanged)", err))
	}
	return tok, nil
}
