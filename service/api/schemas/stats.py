"""Schemas of the research-portal statistics (`/stats/*`): our snake_case JSON contract.

Every count is an integer or `null` when suppressed (fewer than `threshold` patients, or
derivable from other shown counts). Durations are whole days from the start of the checkpoint
inhibitor. Built from the `service.analytics.reports` dataclasses with `from_attributes`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    # extra="forbid": the API writes these documents straight from the analytics dataclasses
    # (pydantic-core serialisation, no second validation); tests validate every answer against
    # these models, so a field added on one side only fails there.
    model_config = ConfigDict(from_attributes=True, extra="forbid")


class CohortOut(_Out):
    filter: dict[str, object] = Field(description="The cohort filter as applied (canonical form)")
    data_version: str = Field(description="Version of the assessment data the result was computed on")
    threshold: int = Field(description="Minimum cell size applied to this response (by role)")
    cached: bool


class CountOut(_Out):
    label: str
    count: int | None


class ProportionOut(_Out):
    name: str
    numerator: int | None
    denominator: int | None
    estimate: float | None
    ci_low: float | None = Field(description="Exact (Clopper-Pearson) 95% CI")
    ci_high: float | None


class RefusalOut(_Out):
    subject: str
    reason: str


class ResponseReportOut(_Out):
    threshold: int
    n: int | None
    rates: list[ProportionOut]
    bor: list[CountOut] = Field(description="RECIST 1.1 best overall response (confirmed unless asked)")
    first_evaluation: list[CountOut] = Field(description="RECIST 1.1 response at the first evaluation")
    groups: list[CountOut]
    dr_by_first_evaluation: list[ProportionOut]
    dr_by_tumour_group: list[ProportionOut]
    dr_by_timepoint: list[CountOut]
    dr_by_trigger: list[CountOut]
    suppressed: int


class ResponseOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: ResponseReportOut


class BaselineRowOut(_Out):
    variable: str
    label: str
    category: str
    total: int | None
    counts: list[int | None] = Field(description="One count per group, in the order of `groups`")
    total_percent: float | None
    percents: list[float | None] = Field(description="Percent of each group's patients (1 decimal)")


class BaselineTestOut(_Out):
    variable: str
    test: str | None
    p: float | None
    refused: str | None


class BaselineReportOut(_Out):
    threshold: int
    groups: list[str]
    group_sizes: list[int]
    n: int
    rows: list[BaselineRowOut]
    tests: list[BaselineTestOut]
    refused: list[RefusalOut]
    suppressed: int


class BaselineOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: BaselineReportOut


class DistributionOut(_Out):
    group: str
    n: int
    median: float | None
    q1: float | None
    q3: float | None


class TestOut(_Out):
    test: str
    statistic: float | None
    p: float


class ComparisonOut(_Out):
    variable: str
    group_a: str
    group_b: str
    test: TestOut


class ContinuousReportOut(_Out):
    threshold: int
    distributions: dict[str, list[DistributionOut]]
    comparisons: list[ComparisonOut]
    refused: list[RefusalOut]


class ContinuousOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: ContinuousReportOut


class CurvePointOut(_Out):
    day: int
    survival: float
    ci_low: float
    ci_high: float


class CurveOut(_Out):
    group: str
    n: int
    events: int | None
    median_days: float | None
    median_ci_low: float | None
    median_ci_high: float | None
    points: list[CurvePointOut]
    cut_at_day: int | None = Field(description="First day with fewer than `threshold` at risk (curve stops)")


class RiskRowOut(_Out):
    group: str
    day: int
    at_risk: int
    survival: float
    ci_low: float
    ci_high: float


class LogRankOut(_Out):
    groups: list[str]
    statistic: float
    df: int
    p: float


class SurvivalReportOut(_Out):
    threshold: int
    endpoint: str
    by: str | None
    curves: list[CurveOut]
    risk_table: list[RiskRowOut]
    overall: LogRankOut | None
    pairwise: list[LogRankOut]
    refused: list[RefusalOut]
    warnings: list[str]


class SurvivalOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: SurvivalReportOut


class CoxTermOut(_Out):
    name: str
    coef: float | None
    se: float | None
    hr: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    ph_p: float | None = Field(description="Grambsch-Therneau proportional-hazards test (rank time)")
    estimable: bool = Field(
        description="False when the likelihood has no finite maximum (a level without events)"
    )


class CoxModelOut(_Out):
    n: int
    events: int
    terms: list[CoxTermOut]
    log_likelihood: float
    lr_statistic: float
    lr_p: float
    ph_global_p: float | None
    iterations: int
    converged: bool
    warnings: list[str]


class CoxReportOut(_Out):
    threshold: int
    endpoint: str
    covariates: list[str]
    univariable: list[CoxModelOut]
    multivariable: CoxModelOut | None


class CoxOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: CoxReportOut


class OddsRatioOut(_Out):
    term: str
    odds_ratio: float | None
    ci_low: float | None
    ci_high: float | None
    p: float | None
    estimable: bool


class LogisticModelOut(_Out):
    outcome: str
    n: int
    events: int
    terms: list[OddsRatioOut]
    warnings: list[str]


class PredictorAnalysisOut(_Out):
    outcome: str
    linearity: dict[str, float | None] = Field(description="Box-Tidwell p per continuous predictor")
    binarised: dict[str, float] = Field(description="Predictors binarised at this median")
    univariable: list[LogisticModelOut]
    multivariable: LogisticModelOut | None
    skipped: dict[str, str] = Field(description="Predictors left out, with the reason")


class PredictorOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    cohort: CohortOut
    report: PredictorAnalysisOut
