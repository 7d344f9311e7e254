package objects

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Chain maps the UID of each object that controls others (a ReplicaSet,
// say) to the UID of the object that controls it in turn (its Deployment).
type Chain map[types.UID]types.UID

// maxChain bounds how far WorkloadKey follows controllers (a cycle of
// ownerReferences, which only a user can write, must not hang it).
const maxChain = 16

// WorkloadKey is the key that decides obj's owner: the UID at the root of
// its chain of controllers. A Deployment, its ReplicaSets and their pods
// all have the Deployment's UID, so one workload has one owner; an object
// without a controller is its own key; a controller missing from c (gone)
// ends the chain with its UID.
func (c Chain) WorkloadKey(obj metav1.Object) types.UID {
	ref := metav1.GetControllerOf(obj)
	if ref == nil {
		return obj.GetUID()
	}
	key := ref.UID
	for range maxChain {
		up, ok := c[key]
		if !ok {
			break
		}
		key = up
	}
	return key
}

// Chain reads the current chain of controllers from every resource that
// controls others.
func (o *Objects) Chain(ctx context.Context) (Chain, error) {
	c := Chain{}
	for _, r := range o.reg.Load().all {
		if !r.controls {
			continue
		}
		res, err := o.In(r).List("", nil, nil)
		if err != nil {
			return nil, err
		}
		for _, obj := range res.Items {
			if ref := metav1.GetControllerOf(obj); ref != nil {
				c[obj.GetUID()] = ref.UID
			}
		}
	}
	return c, nil
}
