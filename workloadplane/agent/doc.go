// Package agent is the node agent: it runs the pods bound to its node
// through a container Runtime, reports their status from what the runtime
// says, restarts exited containers per restartPolicy with exponential
// backoff, re-adopts its containers after a restart (by their labels), and
// removes containers no pod owns. It is Mycel's kubelet.
package agent
