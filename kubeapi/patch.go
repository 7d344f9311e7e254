package kubeapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// maxPatchRetries bounds how often a patch is re-applied when the object
// changed between read and write (and the patch named no resourceVersion).
// kube-apiserver's GuaranteedUpdate retries such conflicts without bound;
// each one is another writer's success, so this covers a hundred writers of
// one object on one node at once (five gave 44 of 100 concurrent
// `kubectl label`s a 409).
const maxPatchRetries = 100

// applyPatch applies a patch of the Content-Type's kind to cur. schema is a
// typed object of the patched kind, used by strategic merge patches.
func applyPatch(gr schema.GroupResource, contentType string, cur, patch []byte, dataStruct any) ([]byte, error) {
	var out []byte
	var err error
	switch types.PatchType(mediaType(contentType)) {
	case types.JSONPatchType:
		var p jsonpatch.Patch
		p, err = jsonpatch.DecodePatch(patch)
		if err == nil {
			out, err = p.Apply(cur)
		}
	case types.MergePatchType:
		out, err = jsonpatch.MergePatch(cur, patch)
	case types.StrategicMergePatchType:
		if _, custom := dataStruct.(*unstructured.Unstructured); custom {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, "",
				"strategic merge patch is not supported for custom resources: use application/merge-patch+json, application/json-patch+json or application/apply-patch+yaml", 0, false)
		}
		out, err = strategicpatch.StrategicMergePatch(cur, patch, dataStruct)
	case types.ApplyYAMLPatchType, types.ApplyCBORPatchType:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, "",
			"server-side apply of a subresource is not supported by Mycel yet: apply the object itself", 0, false)
	default:
		return nil, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", gr, "",
			fmt.Sprintf("unsupported patch type %q: use application/strategic-merge-patch+json, application/merge-patch+json or application/json-patch+json", mediaType(contentType)), 0, false)
	}
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the patch could not be applied: %v", err))
	}
	return out, nil
}

func (s *Server) servePatch(w http.ResponseWriter, r *http.Request, req *request) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if isApply(r) && req.sub == "" {
		return s.serveApply(w, r, req, body)
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.objs.In(req.res).Get(req.namespace, req.name)
		if err != nil {
			return err
		}
		curRV := cur.GetResourceVersion()
		curJSON, err := json.Marshal(cur)
		if err != nil {
			return apierrors.NewInternalError(err)
		}
		patched, err := applyPatch(req.res.GroupResource(), r.Header.Get("Content-Type"), curJSON, body, req.res.New())
		if err != nil {
			return err
		}
		pinned := pinnedVersion(body, patched, curRV)
		if attempt == 0 && pinned != "" && s.awaitPinned(r, req, pinned) {
			continue // the version the patch pins arrived (or not): patch what is here now
		}
		obj, err := s.replace(w, r, req, patched, "application/json", pinned != "")
		// Retry on conflict only if the patch itself did not pin the version.
		if err != nil && apierrors.IsConflict(err) && obj != nil && obj.GetResourceVersion() == curRV && attempt < maxPatchRetries {
			continue
		}
		if err != nil {
			return err
		}
		s.writeJSON(w, http.StatusOK, obj)
		return nil
	}
}

// pinnedVersion is the resourceVersion a patch pins, or "": that of the
// patched document (metadata.resourceVersion) if the patch set it (a
// merge patch naming one) or changed it from the one it was applied to
// (cur).
func pinnedVersion(patch, patched []byte, cur string) string {
	var m struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if json.Unmarshal(patched, &m) != nil || m.Metadata.ResourceVersion == "" {
		return ""
	}
	if rv := m.Metadata.ResourceVersion; rv != cur {
		return rv
	}
	m.Metadata.ResourceVersion = ""
	if json.Unmarshal(patch, &m) == nil && m.Metadata.ResourceVersion != "" { // a JSON patch is an array: no
		return m.Metadata.ResourceVersion
	}
	return ""
}

// awaitPinned waits for the version of req's object that a patch pins when
// it was read on another node and has not arrived here yet
// (objects.Collection.Await); it reports whether it waited.
func (s *Server) awaitPinned(r *http.Request, req *request, pinned string) bool {
	rv, err := objects.ParseResourceVersion(pinned)
	return err == nil && s.objs.In(req.res).Await(r.Context(), req.namespace, req.name, rv)
}
