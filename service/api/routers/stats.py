"""`/stats/*`: aggregate outcome statistics for the research portal (seed study analyses).

Every endpoint: bearer JWT with the researcher scope (`api/auth.py`); the cohort is the stored
latest assessment of every patient, filtered by the query (`CohortFilter`); what is shown follows
the caller's minimum cell size and, for every role but the trusted analyst, the cell-key
perturbation (`analytics/privacy.py`, docs/privacy/disclosure-control.md): each patient's record
key is an HMAC of the FHIR id under the deployment's patient-key salt; every query is written to the audit log
(principal = token subject; the endpoint, its parameters and the cohort filter; never a patient
identifier). Results are cached per endpoint + parameters + cohort filter + minimum cell size +
data version, where the data version is the store's version counter (`AssessmentRepository.version`:
every write of assessments increases it, so any new or re-assessed patient changes it). A refused analysis is 422
`/problems/analysis-refused`.

Decision (API overhead <= 1.2x the analysis itself): a query costs ONE worker-thread hop
(`anyio.to_thread.run_sync`): table check, cache, filter and fit, rendering and the audit write
run there in sequence; the dependencies (token check, cohort filter, runtime) are `async def`, as
they do no I/O, so FastAPI does not send each to the thread pool. Every hop is two cross-thread
wake-ups, which on a loaded machine cost more than the work they carry.
"""

from __future__ import annotations

import csv
import io
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import fields
from datetime import date
from typing import Annotated, Any, Literal, TypeVar

import anyio.to_thread
import orjson
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import StringConstraints

from service.adapters.persistence.audit import SqlAuditLog
from service.analytics import reports
from service.analytics.cohort import CATEGORICAL, GROUPS, CohortFilter, analysis_table, apply_filter
from service.analytics.privacy import PORTAL_PERTURBATION, CellKeyPerturbation, record_key
from service.api.auth import Principal, ResearcherDep, StatsConfig, stats_config
from service.api.problems import PROBLEM_RESPONSES, _doc
from service.api.schemas.stats import (
    BaselineOut,
    CohortOut,
    ContinuousOut,
    CoxOut,
    PredictorOut,
    ResponseOut,
    SurvivalOut,
)
from service.application.errors import ApplicationError, InvalidInput, NotConfigured
from service.bootstrap import Container

router = APIRouter(prefix="/stats", tags=["stats"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _doc("A parameter cannot be used (e.g. an unknown column to split by)"),
    401: _doc("No valid bearer token"),
    403: _doc("The token lacks the researcher scope"),
    422: _doc("Invalid parameters, or the analysis is refused for privacy (groups too small)"),
    503: PROBLEM_RESPONSES[503],
}
Endpoint = Literal["pfs", "ipfs", "os"]
T = TypeVar("T")


class AnalysisRefused(ApplicationError):
    problem_type = "/problems/analysis-refused"
    title = "Analysis refused"
    status = 422


# -- runtime state: cache, audit ------------------------------------------------------------------


class StatsRuntime:
    """Per-app state of the portal: the analysis table of the current data version and an LRU of
    results. Lives on `app.state.stats_runtime` (created on first use).

    The data version is looked up at most every `version_ttl_s` seconds (one row, constant
    time): a sync becomes visible to the portal within that delay. Used from worker threads: the
    table and the LRU have locks."""

    def __init__(self, container: Container, config: StatsConfig) -> None:
        if container.store is None:
            raise NotConfigured("The assessment store is not started")
        self.store = container.store
        self.record_key_secret = container.key_salt
        self.audit = SqlAuditLog(container.store.repository.engine)
        self.entries = config.cache_entries
        self.version_ttl_s = config.data_version_ttl_s
        self.results: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self.table: tuple[str, pd.DataFrame] | None = None
        self._checked_at = -math.inf
        self._table_lock = threading.Lock()
        self._results_lock = threading.Lock()

    def _version(self) -> str:
        return f"v{self.store.repository.version()}"

    def load(self) -> tuple[str, pd.DataFrame]:
        """The analysis table and its data version (blocking: call from a worker thread)."""
        table = self.table
        if table is not None and time.monotonic() - self._checked_at < self.version_ttl_s:
            return table
        with self._table_lock:
            now = time.monotonic()
            if self.table is not None and now - self._checked_at < self.version_ttl_s:
                return self.table  # another thread checked while this one waited
            version = self._version()
            if self.table is None or self.table[0] != version:
                stored = list(self.store.repository.all_latest())
                frame = analysis_table(s.result for s in stored)
                frame["record_key"] = pd.array(
                    [record_key(s.fhir_patient_id, self.record_key_secret) for s in stored], dtype="int64"
                )
                self.table = (version, frame)
            self._checked_at = now
            return self.table

    def get(self, key: tuple[str, ...]) -> Any:
        with self._results_lock:
            if key in self.results:
                self.results.move_to_end(key)
                return self.results[key]
            return None

    def put(self, key: tuple[str, ...], value: Any) -> None:
        with self._results_lock:
            self.results[key] = value
            self.results.move_to_end(key)
            while len(self.results) > self.entries:
                self.results.popitem(last=False)


async def get_runtime(request: Request) -> StatsRuntime:
    runtime = getattr(request.app.state, "stats_runtime", None)
    if not isinstance(runtime, StatsRuntime):
        runtime = StatsRuntime(request.app.state.container, stats_config(request))
        request.app.state.stats_runtime = runtime
    return runtime


RuntimeDep = Annotated[StatsRuntime, Depends(get_runtime)]


# -- the cohort filter ----------------------------------------------------------------------------


# The cohort query parameters, parsed by hand from the query string (decision: FastAPI
# re-inspects the annotation of every declared query parameter on every request, about 40 us
# each: for these twelve, a quarter of what the API added to a 9 ms analysis).
# The same rules as declared parameters would give: repeatable lists (values OR-ed; order and
# repeats do not matter), enumerated values checked, dates as YYYY-MM-DD, the last value of a
# repeated date wins; a bad value is a 422 /problems/request-validation naming the parameter.
# They are documented in OpenAPI from the same table (`COHORT_PARAMETERS`).
# (query name, CohortFilter field, allowed values or None for free text, description)
_COHORT_LISTS: tuple[tuple[str, str, tuple[str, ...] | None, str | None], ...] = (
    ("tumour_group", "tumour_group", None, "NSCLC, SCLC, GC, HCC, Others"),
    ("line", "line_band", ("first", "later"), "Line of the ICI treatment"),
    ("ici_class", "ici_class", ("PD-1", "PD-L1"), None),
    ("strategy", "strategy", ("monotherapy", "combination"), None),
    ("sex", "sex", None, None),
    ("age_band", "age_band", ("<60", ">=60"), "Age at the start of the ICI"),
    ("ecog_band", "ecog_band", ("0-1", ">=2"), None),
    ("response_group", "group", ("DR", "PsPD", "CR-PR", "SD", "PD"), None),
    ("institution", "institution", None, None),
)
_COHORT_DATES: tuple[tuple[str, str], ...] = (
    ("start_from", "Treatment start on or after (YYYY-MM-DD)"),
    ("start_to", "Treatment start on or before (YYYY-MM-DD)"),
    ("as_of", "Censor every endpoint at this date (YYYY-MM-DD)"),
)


#: Longest value of a free-text parameter (a tumour group, an institution, a column name).
MAX_TEXT = 100


def _list_parameter(name: str, allowed: tuple[str, ...] | None, description: str | None) -> dict[str, Any]:
    items: dict[str, Any] = (
        {"type": "string", "maxLength": MAX_TEXT}
        if allowed is None
        else {"type": "string", "enum": list(allowed)}
    )
    parameter: dict[str, Any] = {
        "name": name,
        "in": "query",
        "required": False,
        "style": "form",
        "explode": True,
        "schema": {"type": "array", "items": items},
    }
    if description:
        parameter["description"] = description
    return parameter


COHORT_PARAMETERS: list[dict[str, Any]] = [
    *(_list_parameter(name, allowed, text) for name, _, allowed, text in _COHORT_LISTS),
    *(
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": {"type": "string", "format": "date"},
            "description": text,
        }
        for name, text in _COHORT_DATES
    ),
]


def _date(raw: str) -> date:
    if len(raw) != 10 or raw[4] != "-" or raw[7] != "-":
        raise ValueError("not YYYY-MM-DD")
    return date.fromisoformat(raw)


async def cohort_filter(request: Request) -> CohortFilter:
    """The cohort of a stats query, from its query string (see `_COHORT_LISTS`)."""
    query = request.query_params
    values: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, field_name, allowed, _ in _COHORT_LISTS:
        given = query.getlist(name)
        if not given:
            continue
        for long in (v for v in given if len(v) > MAX_TEXT):
            errors.append(
                {
                    "type": "string_too_long",
                    "loc": ("query", name),
                    "msg": f"String should have at most {MAX_TEXT} characters",
                    "input": long[:MAX_TEXT] + "...",
                }
            )
        if allowed is not None:
            for bad in (v for v in given if v not in allowed and len(v) <= MAX_TEXT):
                errors.append(
                    {
                        "type": "literal_error",
                        "loc": ("query", name),
                        "msg": "Input should be " + " or ".join(repr(a) for a in allowed),
                        "input": bad,
                    }
                )
        values[field_name] = tuple(sorted(set(given)))
    for name, _ in _COHORT_DATES:
        given = query.getlist(name)
        if not given:
            continue
        try:
            values[name] = _date(given[-1])
        except ValueError:
            errors.append(
                {
                    "type": "date_from_datetime_parsing",
                    "loc": ("query", name),
                    "msg": "Input should be a valid date in the format YYYY-MM-DD",
                    "input": given[-1],
                }
            )
    if errors:
        raise RequestValidationError(errors)
    return CohortFilter(**values)


CohortDep = Annotated[CohortFilter, Depends(cohort_filter)]


# -- running a query ------------------------------------------------------------------------------


async def _answer(
    name: str,
    params: dict[str, Any],
    cohort: CohortFilter,
    principal: Principal,
    runtime: StatsRuntime,
    compute: Callable[[pd.DataFrame, int, CellKeyPerturbation | None], T],
    render: Callable[[T, CohortOut], Response],
) -> Response:
    """Load, filter and compute (cached), render and audit, in one worker thread (module
    docstring). The audit entry is written whatever the outcome (refused and invalid queries too);
    an answer leaves only once it is recorded."""
    threshold = principal.threshold
    perturbation = None if principal.exact else PORTAL_PERTURBATION
    disclosure = "exact" if principal.exact else "cell-key"
    cohort_key = cohort.key()
    shown_filter = {
        f.name: (list(v) if isinstance(v := getattr(cohort, f.name), tuple) else v) for f in fields(cohort)
    }
    action = f"stats.{name}"
    record = runtime.audit.repository.record

    def work() -> Response:
        version, table = runtime.load()
        key = (name, repr(sorted(params.items())), cohort_key, str(threshold), disclosure, version)
        detail: dict[str, Any] = {
            "endpoint": name,
            "params": {
                k: v if isinstance(v, str | int | float | bool | None) else str(v) for k, v in params.items()
            },
            "cohort": cohort_key,
            "threshold": threshold,
            "disclosure": disclosure,
            "data_version": version,
        }
        cached: T | None = runtime.get(key)
        try:
            result = (
                compute(apply_filter(table, cohort), threshold, perturbation) if cached is None else cached
            )
        except reports.RefusedAnalysis as exc:
            record(principal.subject, action, {**detail, "outcome": "refused"})
            raise AnalysisRefused(str(exc)) from exc
        except ValueError as exc:
            record(principal.subject, action, {**detail, "outcome": "invalid"})
            raise InvalidInput(str(exc)) from exc
        if cached is None:
            runtime.put(key, result)
        meta = CohortOut(
            filter=shown_filter, data_version=version, threshold=threshold, cached=cached is not None
        )
        response = render(result, meta)
        record(principal.subject, action, {**detail, "outcome": "ok", "cached": cached is not None})
        return response

    return await anyio.to_thread.run_sync(work)


def _json(meta: CohortOut, report: Any) -> Response:
    """`{"cohort": ..., "report": ...}` written by orjson straight from the analytics dataclass
    (no second validation: the documented models in `schemas/stats.py` have the same fields,
    which the API tests check, and the body equals pydantic's rendering, also tested). Non-finite
    floats become null. orjson, not pydantic-core: it writes a survival report (thousands of curve
    points, which are plain dataclasses for this reason) in about half the time."""
    body = orjson.dumps(
        {"cohort": meta.model_dump(mode="json"), "report": report}, option=orjson.OPT_SERIALIZE_NUMPY
    )
    return Response(body, media_type="application/json")


def _csv(header: Sequence[str], rows: Sequence[Sequence[Any]], filename: str) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


_CSV: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "JSON or CSV"}
}
Format = Literal["json", "csv"]
GroupsQuery = Annotated[
    list[Literal["DR", "PsPD", "CR-PR", "SD", "PD"]] | None,
    Query(description="Response groups to compare (default: all five)"),
]


# -- endpoints ------------------------------------------------------------------------------------


@router.get("/response", operation_id="stats-response", responses=_ERRORS, response_model=ResponseOut)
async def response_summary(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    basis: Annotated[
        Literal["confirmed", "unconfirmed"], Query(description="RECIST 1.1 best overall response basis")
    ] = "confirmed",
) -> Response:
    """ORR, DCR, DCB with exact 95% CIs; atypical, DR and PsPD rates; DR by first-evaluation
    category, tumour group, timepoint of detection and trigger (Guan 2024, Fig. 1)."""
    return await _answer(
        "response",
        {"basis": basis},
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.response_report(
            frame, t, confirmed=basis == "confirmed", perturbation=noise
        ),
        lambda report, meta: _json(meta, report),
    )


@router.get(
    "/baseline", operation_id="stats-baseline", responses={**_ERRORS, **_CSV}, response_model=BaselineOut
)
async def baseline(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    groups: GroupsQuery = None,
    format: Format = "json",
) -> Response:
    """Baseline characteristics by response group, n per category and Fisher's exact tests
    (Guan 2024, Table 1). CSV: one line per category with the counts (empty = suppressed)."""
    chosen = list(groups) if groups else list(GROUPS)

    def render(report: reports.BaselineReport, meta: CohortOut) -> Response:
        if format == "json":
            return _json(meta, report)
        header = ["variable", "label", "category", "all", "all_pct"]
        header += [h for g in report.groups for h in (g, f"{g}_pct")]
        rows = [
            [r.variable, r.label, r.category, r.total, r.total_percent]
            + [v for pair in zip(r.counts, r.percents, strict=True) for v in pair]
            for r in report.rows
        ]
        return _csv(header, rows, "baseline.csv")

    return await _answer(
        "baseline",
        {"groups": ",".join(chosen)},
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.baseline_report(frame, chosen, t, perturbation=noise),
        render,
    )


@router.get("/continuous", operation_id="stats-continuous", responses=_ERRORS, response_model=ContinuousOut)
async def continuous(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    groups: GroupsQuery = None,
    test: Literal["mann-whitney", "t-test"] = "mann-whitney",
) -> Response:
    """Pre-treatment NLR, dNLR, lymphocytes and LDH: median and quartiles per response group and
    pairwise Mann-Whitney U or Welch t-tests."""
    chosen = list(groups) if groups else list(GROUPS)
    return await _answer(
        "continuous",
        {"groups": ",".join(chosen), "test": test},
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.continuous_report(frame, chosen, t, test=test, perturbation=noise),
        lambda report, meta: _json(meta, report),
    )


ByQuery = Annotated[
    str,
    Query(
        max_length=MAX_TEXT,
        description="Analysis-table column to split by: group, response_class, or a covariate band",
    ),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT)]


def _check_by(by: str) -> None:
    if by not in CATEGORICAL:
        raise InvalidInput(f"cannot split by {by!r}; choose one of {', '.join(CATEGORICAL)}")


@router.get(
    "/survival", operation_id="stats-survival", responses={**_ERRORS, **_CSV}, response_model=SurvivalOut
)
async def survival(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    endpoint: Endpoint = "os",
    by: ByQuery = "group",
    level: Annotated[list[Text] | None, Query(description="Levels of `by` to include")] = None,
    format: Format = "json",
) -> Response:
    """Kaplan-Meier curves (median, 95% CI, survival table, numbers at risk) with overall and
    pairwise log-rank tests. `endpoint`: pfs (RECIST 1.1), ipfs (iRECIST) or os. CSV: the risk table."""
    _check_by(by)
    levels = sorted(set(level)) if level else None

    def render(report: reports.SurvivalReport, meta: CohortOut) -> Response:
        if format == "json":
            return _json(meta, report)
        header = ["group", "day", "at_risk", "survival", "ci_low", "ci_high"]
        rows = [[r.group, r.day, r.at_risk, r.survival, r.ci_low, r.ci_high] for r in report.risk_table]
        return _csv(header, rows, f"survival-{endpoint}.csv")

    return await _answer(
        "survival",
        {"endpoint": endpoint, "by": by, "levels": ",".join(levels or [])},
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.survival_report(
            frame, endpoint, t, by=by, groups=levels, perturbation=noise
        ),
        render,
    )


@router.get(
    "/survival/plot",
    operation_id="stats-survival-plot",
    responses={
        **_ERRORS,
        200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "Kaplan-Meier plot"},
    },
    response_class=Response,
)
async def survival_plot(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    endpoint: Endpoint = "os",
    by: ByQuery = "group",
    level: Annotated[list[Text] | None, Query()] = None,
    format: Literal["png", "svg"] = "png",
) -> Response:
    """The Kaplan-Meier plot of `/stats/survival` (same privacy cuts) with numbers at risk."""
    _check_by(by)
    levels = sorted(set(level)) if level else None
    from service.analytics.plots import km_plot

    def draw(frame: pd.DataFrame, threshold: int, noise: CellKeyPerturbation | None) -> bytes:
        report = reports.survival_report(frame, endpoint, threshold, by=by, groups=levels, perturbation=noise)
        return km_plot(report, image_format=format)

    media = "image/png" if format == "png" else "image/svg+xml"
    return await _answer(
        "survival-plot",
        {"endpoint": endpoint, "by": by, "levels": ",".join(levels or []), "format": format},
        cohort,
        principal,
        runtime,
        draw,
        lambda content, _: Response(content, media_type=media),
    )


@router.get("/cox", operation_id="stats-cox", responses=_ERRORS, response_model=CoxOut)
async def cox(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    covariate: Annotated[list[Text], Query(min_length=1, description="Analysis-table columns")],
    endpoint: Endpoint = "pfs",
    selection: Literal["all", "significant"] = "all",
    reference: Annotated[
        list[Text] | None, Query(description="Reference levels as column:level, e.g. group:PD")
    ] = None,
) -> Response:
    """Cox proportional hazards (Efron ties): univariable per covariate and multivariable, with
    hazard ratios, 95% CIs, p-values and Grambsch-Therneau proportional-hazards tests."""
    allowed = (
        *CATEGORICAL,
        "age_years",
        "ecog",
        "bmi",
        "line",
        "nlr_pre",
        "dnlr_pre",
        "lymphocytes_pre",
        "ldh_pre",
    )
    unknown = [c for c in covariate if c not in allowed]
    if unknown:
        raise InvalidInput(f"unknown covariates: {', '.join(unknown)}")
    references = dict(r.split(":", 1) for r in reference or () if ":" in r)
    covariates = list(dict.fromkeys(covariate))
    return await _answer(
        "cox",
        {
            "endpoint": endpoint,
            "covariates": ",".join(covariates),
            "selection": selection,
            "references": str(references),
        },
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.cox_report(
            frame, endpoint, covariates, t, references=references, selection=selection, perturbation=noise
        ),
        lambda report, meta: _json(meta, report),
    )


@router.get("/predictors", operation_id="stats-predictors", responses=_ERRORS, response_model=PredictorOut)
async def predictors(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    outcome: Literal["DR", "PsPD"] = "DR",
    selection: Literal["all", "significant"] = "all",
) -> Response:
    """Univariable and multivariable logistic regression of DR or PsPD on the baseline
    characteristics; continuous predictors failing Box-Tidwell are binarised at the median."""
    return await _answer(
        "predictors",
        {"outcome": outcome, "selection": selection},
        cohort,
        principal,
        runtime,
        lambda frame, t, noise: reports.predictor_report(
            frame, outcome, t, selection=selection, perturbation=noise
        ),
        lambda report, meta: _json(meta, report.analysis),
    )


@router.get(
    "/subgroups/local-treatment",
    operation_id="stats-local-treatment",
    responses=_ERRORS,
    response_model=SurvivalOut,
)
async def local_treatment(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    finding: Literal["DR", "PD"] = "DR",
    endpoint: Endpoint = "os",
) -> Response:
    """OS of DR (or true PD) patients with versus without a local treatment (radiotherapy,
    thermal ablation) after the finding (Guan 2024, Fig. 2e/2f)."""
    column = "local_treatment_after_dr" if finding == "DR" else "local_treatment_after_pd"

    def compute(
        frame: pd.DataFrame, threshold: int, noise: CellKeyPerturbation | None
    ) -> reports.SurvivalReport:
        subset = frame[frame["group"] == finding]
        return reports.survival_report(
            subset, endpoint, threshold, by=column, groups=["True", "False"], perturbation=noise
        )

    return await _answer(
        "local-treatment",
        {"finding": finding, "endpoint": endpoint},
        cohort,
        principal,
        runtime,
        compute,
        lambda report, meta: _json(meta, report),
    )


@router.get(
    "/subgroups/treatment-beyond-progression",
    operation_id="stats-treatment-beyond-progression",
    responses=_ERRORS,
    response_model=SurvivalOut,
)
async def treatment_beyond_progression(
    principal: ResearcherDep,
    runtime: RuntimeDep,
    cohort: CohortDep,
    endpoint: Endpoint = "os",
) -> Response:
    """OS of true PD patients (response group PD) treated beyond progression (an ICI dose after the
    first RECIST 1.1 PD) versus not (Guan 2024, Fig. 2g: median 7.9 versus 4.8 months, p=0.184)."""

    def compute(
        frame: pd.DataFrame, threshold: int, noise: CellKeyPerturbation | None
    ) -> reports.SurvivalReport:
        subset = frame[frame["group"] == "PD"]
        return reports.survival_report(
            subset,
            endpoint,
            threshold,
            by="treated_beyond_progression",
            groups=["True", "False"],
            perturbation=noise,
        )

    return await _answer(
        "treatment-beyond-progression",
        {"endpoint": endpoint},
        cohort,
        principal,
        runtime,
        compute,
        lambda report, meta: _json(meta, report),
    )


def _document_cohort_parameters() -> None:
    """Add the hand-parsed cohort parameters to the OpenAPI operation of every route taking a
    cohort (`cohort_filter`); run once at import, before the app includes the router."""
    for route in router.routes:
        if isinstance(route, APIRoute) and any(d.call is cohort_filter for d in route.dependant.dependencies):
            extra = dict(route.openapi_extra or {})
            extra["parameters"] = [*extra.get("parameters", []), *COHORT_PARAMETERS]
            route.openapi_extra = extra


_document_cohort_parameters()
