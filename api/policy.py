"""The `AnomalyPolicy` custom resource: what an SRE declares.

A policy names one workload in its own namespace, the Prometheus queries (signals) that say
whether it is healthy, how the detectors judge them, and the playbook to run when an anomaly
is confirmed. Everything the operator does starts from a validated `PolicySpec`.
"""

from __future__ import annotations

import enum
from typing import Annotated, Self

from pydantic import Field, ValidationInfo, field_validator, model_validator

from homeostat.api.base import DNS_LABEL_PATTERN, WireModel
from homeostat.api.durations import Duration, parse_duration
from homeostat.detectors.base import Direction as Direction  # which way a signal is bad: the detectors' own

SIGNAL_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$"


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFULSET = "StatefulSet"


class SignalRole(enum.StrEnum):
    """What a signal's anomaly means: a symptom is a problem; a context signal only explains one."""

    SYMPTOM = "symptom"  # latency, errors: an anomaly opens an incident
    CONTEXT = "context"  # load, traffic: judged and shown, routes steps (`when`), never opens an incident alone


class Absent(enum.StrEnum):
    """What a query that returns no series at all means for a signal."""

    NODATA = "nodata"  # nothing is known: no verdict, no action (the default)
    ZERO = "zero"  # the measured thing did not happen: one series of value 0 (a 5xx counter on a healthy service)


class Sensitivity(enum.StrEnum):
    """How readily the detector alarms; `medium` suits most latency and error signals."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Action(enum.StrEnum):
    RESTART = "restart"
    SCALE_OUT = "scale-out"
    ROLLBACK = "rollback"
    DELETE_POD = "delete-pod"
    NOTIFY = "notify"


class PartialResponsePolicy(enum.StrEnum):
    """What a partial answer (Thanos' or Prometheus' warnings, VictoriaMetrics' isPartial) is."""

    NODATA = "nodata"  # no data: never anomalous, never acted on
    ACCEPT = "accept"  # judged as if complete


class WebhookFormat(enum.StrEnum):
    JSON = "json"
    SLACK = "slack"


class TargetRef(WireModel):
    """The workload that the policy watches and heals, always in the policy's own namespace."""

    kind: WorkloadKind = Field(description="Deployment or StatefulSet.")
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_LABEL_PATTERN)] = Field(
        description="Name of the workload in the policy's namespace."
    )


class SecretKeyRef(WireModel):
    """A key in a Secret in the policy's namespace: credentials never live in the policy."""

    name: Annotated[str, Field(min_length=1, max_length=253)]
    key: Annotated[str, Field(min_length=1, max_length=253)]


class PrometheusSpec(WireModel):
    """Where to query. Without `url`, the operator's `--prometheus-url` is used."""

    url: Annotated[str | None, Field(pattern=r"^https?://")] = Field(
        default=None, description="Base URL of the Prometheus HTTP API, e.g. http://prometheus:9090."
    )
    timeout: Duration = Field(default="10s", description="Timeout of one query.")
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token sent with every query."
    )
    partial_response: PartialResponsePolicy = Field(
        default=PartialResponsePolicy.NODATA,
        description="nodata: an answer that says it is partial (isPartial, or warnings other than PromQL's "
                    "info and warning annotations) is no data, never acted on. accept: judge it as complete.",
    )


class DetectorSpec(WireModel):
    """Which detector judges the signal's series, and how readily it alarms."""

    name: Annotated[str, Field(min_length=1, max_length=63)] = Field(
        default="default", description="Detector from the registry (`homeostat eval` lists them)."
    )
    sensitivity: Sensitivity = Field(default=Sensitivity.MEDIUM)


class GuardSpec(WireModel):
    """Hard limits, such as an SLO, that are anomalous whatever the learned baseline says."""

    above: float | None = Field(default=None, description="A value above this is anomalous.")
    below: float | None = Field(default=None, description="A value below this is anomalous.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.above is not None and self.below is not None and self.below >= self.above:
            raise ValueError("guard.below must be lower than guard.above")
        return self

    def crossed(self, value: float) -> tuple[str, float] | None:
        """`(">", above)` or `("<", below)` when `value` is beyond this guard; None within it.

        The one rule for a guard, read by the judge (a breach is anomalous whatever the band)
        and by verification (a breach is never recovered); each words its own message.
        """
        if self.above is not None and value > self.above:
            return ">", self.above
        if self.below is not None and value < self.below:
            return "<", self.below
        return None


class Signal(WireModel):
    """One PromQL query. Each series it returns (e.g. `by (pod)`) gets its own detector."""

    name: Annotated[str, Field(min_length=1, max_length=63, pattern=SIGNAL_NAME_PATTERN)]
    query: Annotated[str, Field(min_length=1)] = Field(description="PromQL instant-vector expression.")
    direction: Direction = Field(default=Direction.UP, description="Which way is bad.")
    role: SignalRole = Field(
        default=SignalRole.SYMPTOM,
        description="symptom: a confirmed anomaly opens (or reopens) an incident. context: a cause such as load, "
                    "judged and shown, usable in steps' `when` and verified when involved, but never opening an "
                    "incident alone (a surge the service absorbs is not an incident).",
    )
    detector: DetectorSpec = Field(default_factory=DetectorSpec)
    min_change: Annotated[float, Field(ge=0.0, le=10.0)] = Field(
        default=0.0,
        description="Smallest relative change from the expected value that may count as anomalous "
                    "(0.25: a point within 25 % of expected is normal whatever the detector says). "
                    "A statistically unusual but operationally trivial move (p99 up 10 % on a quiet, "
                    "steady service) is then no incident. Guards are not affected. 0: off.",
    )
    guard: GuardSpec | None = None
    absent: Absent = Field(
        default=Absent.NODATA,
        description="An answer with no series: `nodata` (nothing is known; no verdict, no action) or `zero` (one "
                    "series of value 0: e.g. `sum(rate(x{code=~\"5..\"}[1m]))` on a service with no 5xx "
                    "series yet). Prometheus failing is no data either way. Use `zero` only where no series "
                    "really means none happened: a scrape target that is gone also answers with no series.",
    )


class Confirmation(WireModel):
    """An anomaly is confirmed when at least `k` of the last `n` evaluations were anomalous."""

    k: Annotated[int, Field(ge=1, le=100)] = 3
    n: Annotated[int, Field(ge=1, le=100)] = 5

    @model_validator(mode="after")
    def _k_within_n(self) -> Self:
        if self.k > self.n:
            raise ValueError(f"confirm.k ({self.k}) must not exceed confirm.n ({self.n})")
        return self


class StepCondition(WireModel):
    """Run a step only when these signals are anomalous and those are normal."""

    anomalous: list[str] = Field(default_factory=list, description="Signals that must be anomalous.")
    normal: list[str] = Field(default_factory=list, description="Signals that must be normal.")


class ScaleOutParams(WireModel):
    step: Annotated[int, Field(ge=1, le=100)] = Field(default=1, description="Replicas to add.")
    factor: Annotated[float | None, Field(gt=1.0, le=10.0)] = Field(
        default=None, description="Multiply replicas instead of adding `step`."
    )
    max: Annotated[int, Field(ge=1, le=1000)] = Field(default=10, description="Never scale above this.")
    scale_back: bool = Field(default=True, description="Return to the original size once resolved and quiet.")
    scale_back_after: Duration = Field(default="15m", description="Quiet period before scaling back.")


class RollbackParams(WireModel):
    within: Duration = Field(
        default="1h",
        description="Only roll back when the anomaly began within this time after the latest rollout.",
    )


class DeletePodParams(WireModel):
    max_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        default=0.25, description="Never delete more than this fraction of ready pods."
    )


class Webhook(WireModel):
    url_secret_ref: SecretKeyRef = Field(description="Secret key holding the webhook URL.")
    format: WebhookFormat = WebhookFormat.JSON


class NotifyParams(WireModel):
    webhooks: Annotated[list[Webhook], Field(min_length=1)]


_PARAMS_FIELD = {
    Action.SCALE_OUT: "scale_out",
    Action.ROLLBACK: "rollback",
    Action.DELETE_POD: "delete_pod",
    Action.NOTIFY: "notify",
}


class Step(WireModel):
    """One remediation step; steps run in order until the signals recover."""

    action: Action
    when: StepCondition | None = None
    verify: Duration | None = Field(default=None, description="Overrides playbook.verify for this step.")
    scale_out: ScaleOutParams | None = None
    rollback: RollbackParams | None = None
    delete_pod: DeletePodParams | None = None
    notify: NotifyParams | None = None

    @model_validator(mode="after")
    def _params_match_action(self) -> Self:
        for action, field in _PARAMS_FIELD.items():
            if getattr(self, field) is not None and self.action != action:
                alias = self.model_fields[field].alias or field
                raise ValueError(f"`{alias}` is set but action is {self.action!r}; remove it or set action: {action}")
        if self.action == Action.NOTIFY and self.notify is None:
            raise ValueError("action notify needs `notify.webhooks`")
        return self


class Playbook(WireModel):
    """What to do about a confirmed anomaly, and the guardrails around doing it."""

    steps: list[Step] = Field(default_factory=list, description="Tried in order until the signals recover.")
    verify: Duration = Field(default="2m", description="How long to watch the signals after a step.")
    cooldown: Duration = Field(default="10m", description="Minimum time between two actions on the target.")
    max_actions_per_hour: Annotated[int, Field(ge=0, le=100)] = 3
    escalation_hold: Duration = Field(
        default="1h",
        description="After escalation, stop acting on the target for this long (or until the Incident "
        "is annotated homeostat.dev/cleared=true).",
    )
    reopen_window: Duration = Field(
        default="15m",
        description="An anomaly confirmed again this soon after resolution reopens the incident "
        "(and goes on with the next step) instead of opening a new one.",
    )
    no_data_timeout: Duration = Field(
        default="10m",
        description="An incident that has waited this long for data (a signal without data or verdict, in a "
                    "step's `when` or in verification) is escalated: a human must look.",
    )
    dry_run: bool = Field(default=False, description="Decide and record, but never change the workload.")
    suspend: bool = Field(default=False, description="Keep detecting, take no action.")


class PolicySpec(WireModel):
    """The `spec` of an AnomalyPolicy."""

    target: TargetRef
    prometheus: PrometheusSpec = Field(default_factory=PrometheusSpec)
    interval: Duration = Field(default="30s", description="How often the signals are evaluated.")
    lookback: Duration = Field(
        default="3h",
        description="History back-filled on start to warm the detectors (the default detector needs 288 points).",
    )
    evaluation_delay: Duration = Field(
        default="10s",
        description="Evaluate this far behind now, so an incomplete newest scrape is not taken for a drop.",
    )
    staleness: Duration = Field(
        default="2m", description="A series whose newest sample is older than this has no data."
    )
    series_ttl: Duration = Field(default="10m", description="Forget a series that has been gone this long.")
    max_series_per_signal: Annotated[int, Field(ge=1, le=10000)] = 1000
    signals: Annotated[list[Signal], Field(min_length=1, max_length=32)]
    confirm: Confirmation = Field(default_factory=Confirmation)
    playbook: Playbook = Field(default_factory=Playbook)

    @field_validator("interval")
    @classmethod
    def _interval_long_enough(cls, interval: str) -> str:
        if parse_duration(interval) < 1:
            raise ValueError(f"{interval!r} is too short; use at least 1s")
        return interval

    @field_validator("lookback")
    @classmethod
    def _lookback_covers_interval(cls, lookback: str, info: ValidationInfo) -> str:
        interval = info.data.get("interval")
        if interval is not None and parse_duration(lookback) < parse_duration(interval):
            raise ValueError(f"{lookback!r} must be at least the interval {interval!r}")
        return lookback

    @field_validator("signals")
    @classmethod
    def _unique_signal_names(cls, signals: list[Signal]) -> list[Signal]:
        names = [signal.name for signal in signals]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"signal names must be unique; rename the repeated ones: {', '.join(duplicates)}")
        return signals

    @field_validator("playbook")
    @classmethod
    def _steps_name_known_signals(cls, playbook: Playbook, info: ValidationInfo) -> Playbook:
        if "signals" not in info.data:
            return playbook  # the signals themselves are invalid; that error is reported already
        names = [signal.name for signal in info.data["signals"]]
        for index, step in enumerate(playbook.steps):
            if step.when is None:
                continue
            unknown = sorted(set(step.when.anomalous + step.when.normal) - set(names))
            if unknown:
                raise ValueError(f"steps[{index}].when names unknown signals {unknown}; known: {names}")
        return playbook

    @property
    def interval_seconds(self) -> float:
        return parse_duration(self.interval)
