"""An emulated Kubernetes API server for the tests, the demo and the benchmarks.

``EmulatedCluster`` serves the Kubernetes REST API over real HTTP on 127.0.0.1 from a background
thread, with a kubeconfig pointing at it, so the operator, the official client, Kopf and kubectl
talk to it exactly as to a cluster. It is built on KMock (``kmock.KubernetesEmulator``: its
aiohttp handler, request parsing and log, DSL reactions and discovery registry) with the object
semantics KMock 0.8 lacks (see docs/emulator.md for the full picture):

* discovery of built-ins and CRDs (scope, kinds, short names, categories, status/scale);
* uid, global resourceVersion, generation, creationTimestamp, generateName; typed lists;
  201/404/405/409/410/415/422 ``Status`` errors worded like kube-apiserver's;
* watches resumable from a resourceVersion, 410 Gone (as an ERROR event), timeoutSeconds,
  bookmarks, selector-aware ADDED/DELETED transitions;
* label and field selectors, limit/continue;
* merge, JSON and strategic-merge patches; status and scale subresources; optimistic
  concurrency on PUT and PATCH;
* CRD structural schemas: pruning, defaulting, validation with field paths;
* finalizers, ownerReference garbage collection, namespace termination;
* Deployment/ReplicaSet/StatefulSet controllers and a fake kubelet; kubectl tables.

Where it is NOT faithful (each is a deliberate simplification):

* No authentication, authorization (RBAC), admission webhooks, audit, API priority/fairness.
  ``cluster.requests`` records every request (verb, path, ``user_agent``...) so tests can check
  what RBAC would have to allow.
* No server-side apply (``application/apply-patch+yaml`` is 415), no ``managedFields``, no
  OpenAPI documents (``/openapi/v2|v3`` are 404: use ``kubectl apply --validate=false``),
  no protobuf or CBOR bodies (415: ``kubectl create deployment NAME`` sends protobuf, use
  ``kubectl create -f``); Tables are not served on watches (``kubectl get -w``).
* Lists always read the latest state (``resourceVersion``/``resourceVersionMatch`` on lists are
  ignored); watches with a resourceVersion newer than the server's start from now instead of
  waiting; ``sendInitialEvents`` is not supported; a watch lasts until ``timeoutSeconds`` (no
  server-side random 30-60 minute cap); history for resuming keeps the last ``watch_history``
  changes (all resources together), older ones are 410.
* Strategic merge patch uses a table of list-merge keys by field name (containers by name,
  container ports by containerPort, conditions by type, ...), not the Go struct tags; CRs answer
  415 to it, as real servers do.
* Schema: no ``format`` checks, no CEL (``x-kubernetes-validations``), no list-type/map-keys
  uniqueness, no ratcheting, no conversion webhooks (all served versions share one storage and
  are just relabelled); maxLength counts characters, not bytes.
* Built-ins: only a few fields are defaulted and validated (names, workload selectors, Deployment,
  Pod, Service, Namespace basics); other kinds are stored as sent. core/v1 and events.k8s.io/v1
  Events are separate stores (no field conversion between them) and never expire.
* Deletion: no graceful termination (Pods go at once), ``Foreground`` propagation behaves as
  ``Background``, garbage collection happens synchronously inside the owner's deletion and only
  then (dependents of owners that never existed are kept), namespaces have no ``finalize``.
* Controllers: the new ReplicaSet of a rollout gets all replicas at once and the old ones scale to
  0 once it is ready (no maxSurge/maxUnavailable steps, no progressDeadline); no DaemonSet, Job,
  HPA, Service endpoints or scheduling; Pods are Ready after ``pod_ready_delay`` and never fail.
"""

from homeostat.lab.kube.cluster import EmulatedCluster

__all__ = ["EmulatedCluster"]
