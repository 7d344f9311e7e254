package kubeapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// FuzzDecodeBody feeds arbitrary request bodies to the decoder every
// create, update and patch goes through: it must return an object or an API
// error, never panic.
func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"}}`), "application/json")
	f.Add([]byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"), "application/yaml")
	f.Add([]byte("k8s\x00\n\x0f\n\x02v1\x12\x03Pod"), "application/vnd.kubernetes.protobuf")
	f.Add([]byte(`{"kind":"Pod","spec":{"containers":[{"name":1}]}}`), "application/json")
	s := &Server{objs: objects.New(nil, objects.Config{})}
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		for _, res := range s.objs.Resources() {
			r := httptest.NewRequest(http.MethodPost, "/x?fieldValidation=Strict", strings.NewReader(""))
			obj, err := s.decodeBody(httptest.NewRecorder(), r, res, body, contentType)
			if err == nil && obj == nil {
				t.Fatal("no object and no error")
			}
		}
	})
}

// FuzzParsePath feeds arbitrary URL paths to the request router.
func FuzzParsePath(f *testing.F) {
	for _, p := range []string{"/api/v1/namespaces/default/pods/x/log", "/apis/apps/v1/deployments", "/api/v1/namespaces/x/status", "/apis/", "/api/v1/namespaces//pods//"} {
		f.Add(p)
	}
	s := &Server{objs: objects.New(nil, objects.Config{})}
	f.Fuzz(func(t *testing.T, path string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		req, err := s.parse(r, path)
		if err == nil && req.res == nil {
			t.Fatal("parsed without a resource")
		}
	})
}
