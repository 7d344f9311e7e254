// Package sched places pods by negotiation between nodes, with no central
// scheduler.
//
// The owner of a pod's workload (workloadplane/owner) filters the fabric's
// nodes on what it can check itself (Ready, schedulable, nodeSelector,
// required node affinity, and the `mycel.io/requires` versions against the
// versions each node's signed record advertises), samples at most d of
// the survivors and sends each a signed Tender. Each candidate (a Bidder)
// evaluates the placement policy and its free resources and answers with a
// Bid (a score) or a Decline (reasons). The owner Awards the best bid; the
// winner reserves the pod's resources under a short lease and Confirms; the
// owner then binds the pod, and the winner's agent starts it. An award that
// is not confirmed in time moves on to the next bid; a lease that is never
// bound expires. Every placement costs at most 2d+2 messages however large
// the fabric is.
//
// Placer (owner side) and Bidder (candidate side) are deterministic: time
// comes from an injected clock and messages from a Transport. Scheduler runs
// them in a node; BusTransport carries their messages as signed envelopes
// over the bus. The wire format is in docs/protocols.md. schedsim, next to
// it, simulates placement at scale with the same parts.
package sched
