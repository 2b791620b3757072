"""The life of one policy's monitor: validate, warm up, evaluate every interval, report.

`run_policy` is what the Kopf daemon runs for each AnomalyPolicy. It never raises for bad
input: an invalid spec, a rejected query, a missing target or an unreachable Prometheus each
become a condition and a Warning Event, and the loop goes on (other policies are unaffected).
A changed spec rebuilds the monitor from scratch; cancellation (policy deleted, operator
stopping) frees its state. The Kubernetes API failing or out of reach (an error answer, a
timeout, a refused or reset connection) is neither: the cycle logs and counts it
(`homeostat_kube_errors_total`), writes what it can, and the next interval tries again with
the same detectors (no restart, no second back-fill).

With leader election (`deps.leadership`), a standby replica runs the loop but waits before each
cycle until it leads: it evaluates nothing, writes no status and takes no action. A leader that
loses its Lease drops its monitor (the next leader back-fills its own) and waits again; a cycle
under way when leadership lapses writes nothing more, and an action about to start is not
started (the remediator's fence, `playbooks.remediator.Fence`): its intent is on the Incident,
and the next leader resumes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from homeostat.api.durations import parse_duration
from homeostat.api.policy import PolicySpec
from homeostat.api.status import PolicyStatus
from homeostat.operator.kube import KubeApi
from homeostat.operator.leadership import Leadership, LeadershipLost
from homeostat.operator.metrics import OperatorMetrics
from homeostat.operator.monitor import CycleResult, Feedback, PolicyMonitor
from homeostat.operator.policy_status import cycle_status, invalid_status
from homeostat.operator.prometheus import PrometheusSource, SourcePool
from homeostat.operator.settings import OperatorSettings
from homeostat.operator.settling import verify_shortfalls
from homeostat.operator.tenancy import namespace_problems
from homeostat.operator.validation import InvalidSpec, SpecProblem, validate_spec
from homeostat.playbooks.kube import KUBE_ERRORS, describe, error_reason
from homeostat.playbooks.remediator import Remediator
from homeostat.playbooks.runner import EmitEvent, PolicyInfo, TargetInfo, remediate

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Dependencies:
    """Everything a policy loop needs from outside, passed in rather than global."""

    settings: OperatorSettings
    metrics: OperatorMetrics
    kube: KubeApi
    sources: SourcePool = field(default_factory=SourcePool)
    remediation: Remediator | None = None  # None: detect and report only (no Incidents, no actions)
    leadership: Leadership | None = None  # None: no leader election, always act


def leading(deps: Dependencies) -> bool:
    """Whether this replica may write and act now (always, without leader election)."""
    return deps.leadership is None or deps.leadership.is_set()


@dataclass(frozen=True, kw_only=True)
class PolicyRef:
    namespace: str
    name: str
    uid: str | None = None  # owner of the policy's Incidents


class _Reporter:
    """Writes status and posts each distinct warning once, not every cycle."""

    def __init__(self, *, ref: PolicyRef, deps: Dependencies, emit: EmitEvent) -> None:
        self.ref = ref
        self.deps = deps
        self.emit = emit
        self.status = PolicyStatus()
        self._said: dict[str, str] = {}

    def warn_once(self, reason: str, message: str, *, identity: str | None = None) -> None:
        """Post a Warning unless the same one (by `identity`, default the message) is standing."""
        identity = message if identity is None else identity
        if self._said.get(reason) != identity:
            self._said[reason] = identity
            self.emit(type="Warning", reason=reason, message=message)

    def clear(self, reason: str, *, normal_reason: str | None = None, message: str = "") -> None:
        if reason in self._said:
            del self._said[reason]
            if normal_reason:
                self.emit(type="Normal", reason=normal_reason, message=message)

    async def write(self, status: PolicyStatus) -> bool:
        """Patch the status; False when it could not be written (the next cycle writes it whole)."""
        if not leading(self.deps):
            raise LeadershipLost("not leading: the status is not written")
        self.status = status
        body = status.model_dump(mode="json", by_alias=True)  # keep nulls: they clear old values
        try:
            await self.deps.kube.patch_policy_status(namespace=self.ref.namespace, name=self.ref.name, status=body)
        except KUBE_ERRORS as exc:
            if isinstance(exc, ApiException) and exc.status == 404:
                raise asyncio.CancelledError from exc  # the policy is gone; Kopf stops us too
            kube_error(self.deps, "status", exc)
            logger.warning("status of %s/%s not written: %s", self.ref.namespace, self.ref.name, describe(exc))
            return False
        return True


def kube_error(deps: Dependencies, call: str, exc: BaseException) -> None:
    """Count a failed Kubernetes call of a policy loop (`homeostat_kube_errors_total`)."""
    deps.metrics.kube_errors.labels(call, error_reason(exc)).inc()


async def _resolve_source(
    *, spec: PolicySpec, ref: PolicyRef, deps: Dependencies
) -> PrometheusSource:
    url = spec.prometheus.url or deps.settings.prometheus_url
    if not url:
        raise InvalidSpec([SpecProblem(
            "spec.prometheus.url",
            "is not set and the operator has no --prometheus-url; set one of them",
        )])
    hosts = deps.settings.host_allow_list
    if spec.prometheus.url and not hosts.permits(spec.prometheus.url):
        field, _, why = hosts.refusal(spec.prometheus.url, field="spec.prometheus.url").partition(": ")
        raise InvalidSpec([SpecProblem(field, why)])
    if deps.settings.require_namespace_matcher:
        problems = namespace_problems(spec, namespace=ref.namespace)
        if problems:
            raise InvalidSpec(problems)
    token = None
    secret_ref = spec.prometheus.bearer_token_secret_ref
    if secret_ref is not None:
        token = await deps.kube.read_secret_key(namespace=ref.namespace, name=secret_ref.name, key=secret_ref.key)
        if token is None:
            raise InvalidSpec([SpecProblem(
                "spec.prometheus.bearerTokenSecretRef",
                f"Secret {secret_ref.name!r} with key {secret_ref.key!r} not found in namespace "
                f"{ref.namespace!r}; create it or fix the reference",
            )])
    source: PrometheusSource = deps.sources.get(url=url, timeout=parse_duration(spec.prometheus.timeout),
                                                bearer_token=token)
    return source


async def _read_target(
    *, spec: PolicySpec, ref: PolicyRef, deps: Dependencies
) -> tuple[TargetInfo, str | None, bool]:
    """The target as the guardrails see it, the problem to report when it cannot be used, and
    whether the API server answered at all.

    A target that could not be read is not found, for the guardrails: no action this cycle."""
    try:
        meta = await deps.kube.read_target_metadata(namespace=ref.namespace, target=spec.target)
    except KUBE_ERRORS as exc:
        kube_error(deps, "target", exc)
        return TargetInfo(found=False), f"could not read spec.target: {describe(exc)}", isinstance(exc, ApiException)
    read_at = time.time()
    if meta is not None:
        return TargetInfo(found=True, uid=meta.get("uid"), annotations=meta.get("annotations") or {},
                          settled_at=read_at if meta.get("settled") else None), None, True
    return TargetInfo(found=False), (
        f"spec.target.name: {spec.target.kind} {spec.target.name!r} not found in namespace "
        f"{ref.namespace!r}; create it or fix the name"
    ), True


def _fingerprint(raw: Mapping[str, Any] | None) -> str:
    return json.dumps(raw, sort_keys=True, default=str)


async def run_policy(
    *,
    ref: PolicyRef,
    read_spec: Callable[[], tuple[Mapping[str, Any] | None, int | None]],
    wait_for_change: Callable[[float | None], Awaitable[bool]],
    deps: Dependencies,
    emit: EmitEvent,
) -> None:
    """Monitor one policy until cancelled.

    `read_spec` returns the current spec and generation (Kopf's live body); `wait_for_change`
    sleeps until the timeout or until the spec changes, returning True on a change.
    """
    reporter = _Reporter(ref=ref, deps=deps, emit=emit)
    monitor: PolicyMonitor | None = None
    feedback: Feedback | None = None
    fingerprint: str | None = None
    try:
        while True:
            if not leading(deps):
                deps.metrics.set_phase(namespace=ref.namespace, policy=ref.name, phase=None)
                if monitor is not None:  # a standby keeps no state: the next leader back-fills its own
                    _retire(monitor, deps)
                    monitor, feedback, fingerprint = None, None, None
                if deps.remediation is not None:
                    deps.remediation.slots.release_prefix(f"{ref.namespace}/{ref.name}/")
                assert deps.leadership is not None
                await deps.leadership.wait()
                reporter = _Reporter(ref=ref, deps=deps, emit=emit)  # warnings said afresh by the new leader
            raw, generation = read_spec()
            if _fingerprint(raw) != fingerprint:
                fingerprint = _fingerprint(raw)
                if monitor is not None:
                    _retire(monitor, deps)
                    monitor = None
                try:
                    spec = validate_spec(raw)
                    source = await _resolve_source(spec=spec, ref=ref, deps=deps)
                except KUBE_ERRORS as exc:  # the token Secret could not be read: not the spec's fault
                    kube_error(deps, "secret", exc)
                    logger.warning("%s/%s: bearer-token Secret not read (%s); trying again in %gs", ref.namespace,
                                   ref.name, describe(exc), spec.interval_seconds)
                    fingerprint = None
                    await wait_for_change(max(spec.interval_seconds, deps.settings.status_interval_floor))
                    continue
                except InvalidSpec as exc:
                    try:
                        await reporter.write(invalid_status(reporter.status, exc.problems, generation=generation))
                        deps.metrics.set_phase(namespace=ref.namespace, policy=ref.name, phase="Invalid")
                    except LeadershipLost:
                        fingerprint = None
                        continue
                    reporter.warn_once("InvalidSpec", str(exc))
                    deps.metrics.evaluations.labels(ref.namespace, ref.name, "invalid").inc()
                    await _wait_for_change_while_leading(wait_for_change, deps)
                    fingerprint = None if not leading(deps) else fingerprint
                    continue
                reporter.clear("InvalidSpec", normal_reason="SpecAccepted", message="the spec is valid again")
                monitor = PolicyMonitor(
                    namespace=ref.namespace, name=ref.name, spec=spec, source=source, metrics=deps.metrics
                )
                feedback = Feedback(monitor)
                learned = await monitor.backfill()
                emit(type="Normal", reason="MonitorStarted",
                     message=f"watching {len(spec.signals)} signals every {spec.interval}; "
                             f"back-filled {learned} points")
                if monitor.backfill_notes:  # learning from live data only, for those signals: say why
                    emit(type="Warning", reason="BackfillIncomplete", message="; ".join(
                        f"signal {name!r}: {note}" for name, note in monitor.backfill_notes.items()))
                schedule = time.monotonic()
            assert monitor is not None
            interval = max(monitor.spec.interval_seconds, deps.settings.status_interval_floor)
            deps.metrics.evaluation_lag.labels(ref.namespace, ref.name).set(max(0.0, time.monotonic() - schedule))
            try:
                await _one_cycle(monitor=monitor, ref=ref, deps=deps, reporter=reporter, generation=generation,
                                 feedback=feedback)
            except LeadershipLost as exc:
                logger.info("%s/%s: cycle dropped: %s", ref.namespace, ref.name, exc)
                continue
            except KUBE_ERRORS as exc:  # the calls above handle their own; this is the last line
                kube_error(deps, "cycle", exc)
                logger.warning("%s/%s: the Kubernetes API failed this cycle (%s); the detectors are kept, "
                               "next cycle in %gs", ref.namespace, ref.name, describe(exc), interval)
            schedule += interval
            if schedule < time.monotonic():  # fell behind (slow Prometheus): do not burst to catch up
                schedule = time.monotonic()
            await wait_for_change(max(0.0, schedule - time.monotonic()))
    finally:
        if monitor is not None:
            _retire(monitor, deps)
        deps.metrics.set_phase(namespace=ref.namespace, policy=ref.name, phase=None)
        if deps.remediation is not None:
            deps.remediation.slots.release_prefix(f"{ref.namespace}/{ref.name}/")


async def _wait_for_change_while_leading(
    wait_for_change: Callable[[float | None], Awaitable[bool]], deps: Dependencies
) -> None:
    """Wait for a spec change, or until leadership is lost (checked every second)."""
    if deps.leadership is None:
        await wait_for_change(None)
        return
    while leading(deps):
        if await wait_for_change(1.0):
            return


def _retire(monitor: PolicyMonitor, deps: Dependencies) -> None:
    """Free what a monitor holds outside itself: its metric series (sources are shared)."""
    deps.metrics.forget_policy(namespace=monitor.namespace, policy=monitor.name,
                               signals=[s.name for s in monitor.spec.signals])


async def _one_cycle(
    *, monitor: PolicyMonitor, ref: PolicyRef, deps: Dependencies, reporter: _Reporter, generation: int | None,
    feedback: Feedback | None = None,
) -> None:
    spec = monitor.spec
    target, target_problem, answered = await _read_target(spec=spec, ref=ref, deps=deps)
    result = await monitor.evaluate()
    query_problems = [
        SpecProblem(f"spec.signals[{index}].query", f"Prometheus rejected it: {error}; fix the PromQL")
        for index, error in result.rejected.items()
    ]
    shortfalls = verify_shortfalls(spec, monitor.settling)
    status = cycle_status(
        reporter.status, result, generation=generation,
        query_problems=query_problems, target_problem=target_problem, verify_shortfalls=shortfalls,
    )
    if not leading(deps):  # the evaluation took long and leadership lapsed meanwhile: write nothing
        raise LeadershipLost("leadership lapsed during the evaluation")
    if deps.remediation is not None and not answered:
        # The API server did not answer this cycle (timeout, connection refused or reset): reading the
        # Incidents would only wait out the store's retries, and no action could be taken anyway.
        logger.info("%s/%s: no remediation this cycle, the API server did not answer", ref.namespace, ref.name)
    elif deps.remediation is not None:
        # Decide on this evaluation only while it is the newest one: within an interval, or one
        # request timeout, of now (reading the Incidents or writing them may take that long).
        budget = max(spec.interval_seconds, deps.settings.status_interval_floor, deps.settings.kube_request_timeout)
        status.active_incident = await _remediate(monitor=monitor, ref=ref, deps=deps, reporter=reporter,
                                                  result=result, target=target, feedback=feedback,
                                                  previous=reporter.status.active_incident,
                                                  fresh_until=deps.remediation.clock() + budget)
    await reporter.write(status)
    deps.metrics.set_phase(namespace=ref.namespace, policy=ref.name, phase=str(status.phase))

    outcome = "rejected" if query_problems else "unavailable" if result.unavailable else "ok"
    deps.metrics.evaluations.labels(ref.namespace, ref.name, outcome).inc()
    if query_problems:
        reporter.warn_once("QueryRejected", "; ".join(str(p) for p in query_problems))
    else:
        reporter.clear("QueryRejected")
    if result.unavailable:
        reporter.warn_once("PrometheusUnavailable", result.unavailable)
    else:
        reporter.clear("PrometheusUnavailable", normal_reason="PrometheusReachable",
                       message="Prometheus answers again")
    if shortfalls:
        reporter.warn_once("VerifyExtended", "; ".join(shortfalls))
    else:
        reporter.clear("VerifyExtended")
    if target_problem:
        reporter.warn_once("TargetNotFound", target_problem)
    else:
        reporter.clear("TargetNotFound", normal_reason="TargetFound", message=f"{spec.target.kind} found")
    confirmed = result.confirmed
    if confirmed:
        details = []
        for name in confirmed:
            top = result.judgements[name].confirmed[0]
            verdict = top.last_verdict
            expected = f", expected {verdict.expected:.4g}" if verdict else ""
            labels = f" {dict(top.labels)}" if top.labels else ""
            details.append(f"{name}{labels} value {top.last_value:.4g}{expected}")
        reporter.warn_once("AnomalyConfirmed", "anomaly confirmed: " + "; ".join(details),
                           identity=",".join(sorted(confirmed)))
    else:
        reporter.clear("AnomalyConfirmed", normal_reason="AnomalyCleared", message="all signals back to normal")


async def _remediate(
    *, monitor: PolicyMonitor, ref: PolicyRef, deps: Dependencies, reporter: _Reporter, result: CycleResult,
    target: TargetInfo, feedback: Feedback | None, previous: str | None, fresh_until: float | None = None,
) -> str | None:
    """Run the incident runner on this cycle's observations; return the policy's open incident.

    The runner is called every cycle, with or without data: the state machine itself refuses to
    act, resolve or escalate without fresh data (Inconclusive), and Incidents annotated by humans
    (cleared, false-positive) are still handled while Prometheus is down.
    """
    assert deps.remediation is not None
    try:
        report = await remediate(
            policy=PolicyInfo(namespace=ref.namespace, name=ref.name, uid=ref.uid), spec=monitor.spec,
            obs=result.observations(), target=target, deps=deps.remediation, feedback=feedback,
            emit=reporter.emit, fresh_until=fresh_until,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # an API outage must not stop detection; the next cycle reads afresh
        outage = isinstance(exc, KUBE_ERRORS)
        if outage:
            kube_error(deps, "incidents", exc)
        logger.warning("remediation of %s/%s failed this cycle: %s", ref.namespace, ref.name,
                       describe(exc) if outage else exc, exc_info=not outage)
        reporter.warn_once("RemediationError", f"remediation failed this cycle, retried next: {exc}"[:1024],
                           identity=type(exc).__name__)
        return previous
    reporter.clear("RemediationError")
    return report.active_incident
