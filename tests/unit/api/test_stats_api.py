"""`/stats/*`: bearer JWT with scopes, audit, cache, suppression through HTTP, CSV and plots."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from pydantic import BaseModel, SecretStr, TypeAdapter

from service.adapters.persistence.audit import AuditLogRepository
from service.adapters.persistence.database import migrate
from service.analytics import reports
from service.analytics.cohort import CohortFilter, apply_filter
from service.analytics.privacy import PORTAL_PERTURBATION
from service.api.app import create_app
from service.api.auth import StatsConfig
from service.api.schemas.stats import (
    BaselineOut,
    ContinuousOut,
    CoxOut,
    PredictorOut,
    ResponseOut,
    SurvivalOut,
)
from service.bootstrap import Container
from service.config import Settings
from service.domain.model import ClinicalProfile, IciClass, TumourType
from service.domain.results import (
    BestResponse,
    Criterion,
    Endpoints,
    PatientAssessment,
    Response,
    ResponseGroup,
    RuleTrace,
    TimepointResult,
)
from tests.unit.api.jwts import public_pem, signed_jwt

ISSUER = "https://idp.example.org"
AUDIENCE = "oncoresponse-stats"


RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def token(
    scope: str = "stats.read",
    *,
    key: Any = RSA_KEY,
    algorithm: str = "RS256",
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    expires_in: timedelta = timedelta(minutes=5),
    subject: str = "researcher-7",
) -> str:
    return signed_jwt(
        key, algorithm, subject=subject, issuer=issuer, audience=audience, scope=scope, expires_in=expires_in
    )


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def assessment(
    pid: str,
    group: ResponseGroup,
    first: Response,
    *,
    os_days: int,
    os_event: bool,
    sex: str = "male",
) -> PatientAssessment:
    start = date(2021, 3, 1)
    trace = RuleTrace("test")
    tp = TimepointResult(
        1, start + timedelta(days=56), None, None, False, first, first, None, None, None, None, None, (trace,)
    )
    bor = {ResponseGroup.CR_PR: Response.PR, ResponseGroup.PD: Response.PD}.get(group, Response.SD)
    best = BestResponse(Criterion.RECIST11, bor, False, start, start + timedelta(days=300), None, trace)
    return PatientAssessment(
        patient_id=pid,
        treatment_start=start,
        baseline_date=start,
        timepoints=(tp,),
        immune_timepoints=(),
        lesions=(),
        best_response=best,
        best_response_confirmed=best,
        immune_best_response=None,
        atypical=(),
        response_group=group,
        endpoints=Endpoints(os_days, os_event, os_days, os_event, os_days, os_event, None),
        auto_selected_targets=(),
        issues=(),
        traces=(trace,),
        profile=ClinicalProfile(
            sex=sex,
            birth_date=date(1945 + sum(map(ord, pid)) % 30, 5, 5),
            tumour_type=TumourType.NSCLC,
            ici_class=IciClass.PD1,
            combination=True,
            line_of_therapy=1,
            ecog=1,
        ),
    )


def cohort() -> list[PatientAssessment]:
    """40 SD, 20 PD (12 female, 8 male) and 5 CR/PR patients."""
    out = [
        assessment(f"sd-{i}", ResponseGroup.SD, Response.SD, os_days=60 + 7 * i, os_event=i % 2 == 0)
        for i in range(40)
    ]
    out += [
        assessment(
            f"pd-{i}",
            ResponseGroup.PD,
            Response.PD,
            os_days=40 + 5 * i,
            os_event=True,
            sex="female" if i < 12 else "male",
        )
        for i in range(20)
    ]
    out += [
        assessment(f"pr-{i}", ResponseGroup.CR_PR, Response.PR, os_days=500, os_event=False) for i in range(5)
    ]
    return out


@dataclass
class Portal:
    http: httpx.AsyncClient
    app: FastAPI
    box: Container
    audit: Callable[[], list[Any]]


@pytest.fixture
async def portal(app_settings: Settings) -> AsyncIterator[Portal]:
    migrate(app_settings.database_url)
    async with Container(app_settings) as box:
        app = create_app(app_settings, container=box)
        app.state.stats_config = StatsConfig(
            jwt_public_key_pem=public_pem(RSA_KEY), jwt_issuer=ISSUER, data_version_ttl_s=0
        )
        assert box.store is not None
        await box.store.record(cohort(), run_id="run-1")
        audit = AuditLogRepository(box.store.repository.engine)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield Portal(http, app, box, lambda: audit.recent())


# -- authentication and scopes (RFC 6750, RFC 8725) ---------------------------------------------


async def test_no_token_is_401_problem(portal: Portal) -> None:
    r = await portal.http.get("/stats/response")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/not-authenticated"
    # RFC 6750 section 3: a 401 names the scheme the resource server expects
    assert r.headers["www-authenticate"].startswith("Bearer")


async def test_portal_settings_come_from_oncoresponse_stats_variables(app_settings: Settings) -> None:
    settings = app_settings.model_copy(
        update={
            "stats_jwt_public_key": SecretStr(public_pem(EC_KEY)),
            "stats_jwt_issuer": ISSUER,
            "stats_min_cell_count": 5,
        }
    )
    config = create_app(settings).state.stats_config
    assert config.jwt_issuer == ISSUER
    assert config.min_cell_count == 5
    assert config.jwt_public_key_pem == public_pem(EC_KEY)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_hmac_token_signed_with_the_public_key_is_refused(portal: Portal) -> None:
    # RFC 8725 section 2.1: algorithm confusion, the RSA public key (public!) used as an HMAC secret.
    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800, "scope": "stats.read"}
    signing_input = (
        f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}"
    )
    signature = hmac.new(public_pem(RSA_KEY).encode(), signing_input.encode(), hashlib.sha256).digest()
    r = await portal.http.get("/stats/response", headers=bearer(f"{signing_input}.{_b64(signature)}"))
    assert r.status_code == 401


async def test_unsigned_alg_none_token_is_refused(portal: Portal) -> None:
    # RFC 7519 section 6: an unsecured JWT (alg "none", empty signature).
    claims = {"sub": "x", "iss": ISSUER, "aud": AUDIENCE, "exp": 4102444800, "scope": "stats.read"}
    unsigned = (
        f"{_b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{_b64(json.dumps(claims).encode())}."
    )
    r = await portal.http.get("/stats/response", headers=bearer(unsigned))
    assert r.status_code == 401


@pytest.mark.parametrize(
    "kwargs",
    [
        {"issuer": "https://evil.example.org"},
        {"audience": "another-service"},
        {"expires_in": timedelta(minutes=-5)},
        {"key": rsa.generate_private_key(public_exponent=65537, key_size=2048)},  # not the configured key
    ],
)
async def test_wrong_issuer_audience_expiry_or_key_is_401(portal: Portal, kwargs: dict[str, Any]) -> None:
    r = await portal.http.get("/stats/response", headers=bearer(token(**kwargs)))
    assert r.status_code == 401


async def test_token_without_researcher_scope_is_403(portal: Portal) -> None:
    r = await portal.http.get("/stats/response", headers=bearer(token("openid profile")))
    assert r.status_code == 403
    assert r.json()["type"] == "/problems/insufficient-scope"


async def test_es256_key_is_accepted_when_configured(portal: Portal) -> None:
    portal.app.state.stats_config = StatsConfig(jwt_public_key_pem=public_pem(EC_KEY), jwt_issuer=ISSUER)
    r = await portal.http.get("/stats/response", headers=bearer(token(key=EC_KEY, algorithm="ES256")))
    assert r.status_code == 200
    rs = await portal.http.get("/stats/response", headers=bearer(token()))  # RS256 no longer matches
    assert rs.status_code == 401


async def test_a_verified_token_is_remembered_until_it_expires(
    portal: Portal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # RFC 7519 section 4.1.4: a token MUST NOT be accepted on or after its "exp" (plus a small leeway).
    value = token(expires_in=timedelta(minutes=2))
    decoded: list[str] = []
    real_decode = jwt.decode

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        decoded.append(args[0])
        return real_decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    for _ in range(3):
        assert (await portal.http.get("/stats/response", headers=bearer(value))).status_code == 200
    assert decoded == [value]  # the signature was checked once
    expires = real_decode(value, options={"verify_signature": False})["exp"]
    leeway = portal.app.state.stats_config.jwt_leeway_s
    with time_machine.travel(
        datetime.fromtimestamp(expires + leeway, tz=ZoneInfo("Europe/Paris")), tick=False
    ):
        late = await portal.http.get("/stats/response", headers=bearer(value))
    assert late.status_code == 401
    assert late.json()["detail"] == "The bearer token has expired"


async def test_portal_without_a_configured_key_is_closed(portal: Portal) -> None:
    portal.app.state.stats_config = StatsConfig()
    r = await portal.http.get("/stats/response", headers=bearer(token()))
    assert r.status_code == 503


# -- audit, cache, suppression ------------------------------------------------------------------


async def test_every_query_is_audited_with_researcher_and_no_patient_identifier(portal: Portal) -> None:
    r = await portal.http.get("/stats/response?sex=female", headers=bearer(token()))
    assert r.status_code == 200
    refused = await portal.http.get("/stats/cox?covariate=group", headers=bearer(token()))
    assert refused.status_code == 422
    entries = portal.audit()
    assert [e.action for e in entries[:2]] == ["stats.cox", "stats.response"]
    assert {e.principal for e in entries[:2]} == {"researcher-7"}
    assert entries[0].detail["outcome"] == "refused"
    assert '"sex":["female"]' in entries[1].detail["cohort"]
    text = repr([e.detail for e in entries])
    assert not any(pid in text for pid in ("sd-0", "pd-1", "pr-2"))


TRUSTED = "stats.read stats.trusted-analyst"


async def test_results_are_cached_per_filter_and_data_version(portal: Portal) -> None:
    first = (await portal.http.get("/stats/survival", headers=bearer(token(TRUSTED)))).json()
    again = (await portal.http.get("/stats/survival", headers=bearer(token(TRUSTED)))).json()
    assert (first["cohort"]["cached"], again["cohort"]["cached"]) == (False, True)
    other = (await portal.http.get("/stats/survival?sex=male", headers=bearer(token(TRUSTED)))).json()
    assert other["cohort"]["cached"] is False
    assert portal.box.store is not None
    await portal.box.store.record(
        [assessment("sd-new", ResponseGroup.SD, Response.SD, os_days=90, os_event=True)], run_id="run-2"
    )
    fresh = (await portal.http.get("/stats/survival", headers=bearer(token(TRUSTED)))).json()
    assert fresh["cohort"]["cached"] is False
    assert fresh["cohort"]["data_version"] != first["cohort"]["data_version"]
    sd = next(c for c in fresh["report"]["curves"] if c["group"] == "SD")
    assert sd["n"] == 41


async def test_small_group_suppressed_for_researchers_and_shown_to_approved_study(portal: Portal) -> None:
    # 5 CR/PR patients: a count of 1-10, never shown to the researcher role.
    r = (await portal.http.get("/stats/response", headers=bearer(token()))).json()["report"]
    groups = {g["label"]: g["count"] for g in r["groups"]}
    assert groups["CR-PR"] is None
    assert abs(groups["SD"] - 40) <= 3  # 40 SD patients, perturbed by at most 3 (cell-key table)
    approved = (
        await portal.http.get("/stats/response", headers=bearer(token("stats.read stats.approved-study")))
    ).json()
    shown_cr_pr = {g["label"]: g["count"] for g in approved["report"]["groups"]}["CR-PR"]
    assert 2 <= shown_cr_pr <= 8  # shown to an approved study, still perturbed
    assert approved["cohort"]["threshold"] == 1
    trusted = (await portal.http.get("/stats/response", headers=bearer(token(TRUSTED)))).json()
    assert {g["label"]: g["count"] for g in trusted["report"]["groups"]}["CR-PR"] == 5
    assert trusted["cohort"]["threshold"] == 1


async def test_survival_refuses_small_groups_with_a_reason(portal: Portal) -> None:
    r = (await portal.http.get("/stats/survival?endpoint=os", headers=bearer(token()))).json()["report"]
    assert {c["group"] for c in r["curves"]} == {"SD", "PD"}
    assert r["refused"][0]["subject"] == "CR-PR"
    pd_curve = next(c for c in r["curves"] if c["group"] == "PD")
    # 20 PD deaths on days 40, 45, ...: fewer than 11 at risk from the 11th death (day 90) on;
    # a researcher sees the cut on the weekly grid (day 91 = week 13).
    assert pd_curve["cut_at_day"] == 91
    assert all(p["day"] < 90 for p in pd_curve["points"])


async def test_cox_refusal_is_problem_json(portal: Portal) -> None:
    r = await portal.http.get("/stats/cox?covariate=group&endpoint=os", headers=bearer(token()))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/analysis-refused"
    assert "CR-PR" in r.json()["detail"]


async def test_cox_over_http_gives_hazard_ratios(portal: Portal) -> None:
    r = await portal.http.get(
        "/stats/cox?covariate=group&covariate=sex&endpoint=os&response_group=SD&response_group=PD&reference=group:SD",
        headers=bearer(token()),
    )
    assert r.status_code == 200
    model = r.json()["report"]["multivariable"]
    terms = {t["name"]: t for t in model["terms"]}
    assert terms["group=PD"]["hr"] > 1  # every PD patient dies by day 135, half the SD patients live on


async def test_baseline_csv_has_counts_and_blank_suppressed_cells(portal: Portal) -> None:
    r = await portal.http.get(
        "/stats/baseline?format=csv&response_group=SD&response_group=PD", headers=bearer(token())
    )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    # Groups outside the cohort filter have no patients: they are refused, not shown as columns.
    assert lines[0] == "variable,label,category,all,all_pct,SD,SD_pct,PD,PD_pct"
    sex = {line.split(",")[2]: line.split(",")[3:] for line in lines if line.startswith("sex,")}
    # SD: 40 male, 0 female; PD: 8 male (a small count, blank) and 12 female. The zero is shown;
    # the PD cells are both blank (PD's size, 20, is shown: 12 would give 8 away).
    assert sex["female"][2:4] == ["0", "0.0"]
    assert sex["male"][4:6] == ["", ""]
    assert sex["female"][4:6] == ["", ""]


async def test_plot_png_and_svg(portal: Portal) -> None:
    png = await portal.http.get("/stats/survival/plot?format=png", headers=bearer(token()))
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    assert png.content[:8] == b"\x89PNG\r\n\x1a\n"
    svg = await portal.http.get("/stats/survival/plot?format=svg", headers=bearer(token()))
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in svg.content


async def test_invalid_split_column_is_422(portal: Portal) -> None:
    r = await portal.http.get("/stats/survival?by=patient_id", headers=bearer(token()))
    assert r.status_code in (400, 422)
    assert r.headers["content-type"] == "application/problem+json"


def test_stats_operation_ids_follow_the_tag_name_convention(app_settings: Settings) -> None:
    doc = create_app(app_settings).openapi()
    ids = [
        op["operationId"]
        for path, ops in doc["paths"].items()
        if path.startswith("/stats")
        for op in ops.values()
    ]
    assert ids
    assert all(i.startswith("stats-") for i in ids)


@pytest.mark.parametrize(
    ("url", "model"),
    [
        ("/stats/response", ResponseOut),
        ("/stats/baseline", BaselineOut),
        ("/stats/continuous", ContinuousOut),
        ("/stats/survival?endpoint=pfs&by=sex", SurvivalOut),
        ("/stats/cox?covariate=group&covariate=sex&covariate=age_years&endpoint=os", CoxOut),
        ("/stats/predictors?outcome=DR", PredictorOut),
        ("/stats/subgroups/local-treatment?finding=PD", SurvivalOut),
    ],
)
async def test_every_answer_matches_its_documented_schema(
    portal: Portal, url: str, model: type[BaseModel]
) -> None:
    """The router writes JSON straight from the analytics dataclasses; the OpenAPI models (extra
    fields forbidden) must describe exactly what is sent."""
    assert portal.box.store is not None
    dr = [
        assessment(f"dr-{i}", ResponseGroup.DR, Response.SD, os_days=300 + i, os_event=i % 3 == 0)
        for i in range(12)
    ]
    await portal.box.store.record(dr, run_id="run-dr")
    r = await portal.http.get(url, headers=bearer(token("stats.read stats.approved-study")))
    assert r.status_code == 200, r.text
    model.model_validate(r.json())


async def test_survival_body_equals_the_pydantic_rendering_of_the_report(portal: Portal) -> None:
    """The router writes JSON with orjson; pydantic-core's rendering of the same report is the
    reference (same keys, numbers, nulls and order of items)."""
    r = await portal.http.get("/stats/survival?sex=female&sex=male", headers=bearer(token()))
    assert r.status_code == 200, r.text
    _, table = portal.app.state.stats_runtime.table
    cohort = CohortFilter(sex=("female", "male"))
    report = reports.survival_report(
        apply_filter(table, cohort), "os", r.json()["cohort"]["threshold"], perturbation=PORTAL_PERTURBATION
    )
    assert report.curves
    assert r.json()["report"] == json.loads(TypeAdapter(reports.SurvivalReport).dump_json(report))


async def test_predictors_without_any_dr_patient_are_refused(portal: Portal) -> None:
    r = await portal.http.get(
        "/stats/predictors?outcome=DR", headers=bearer(token("stats.read stats.approved-study"))
    )
    assert r.status_code == 422
    assert r.json()["detail"] == "DR has no patients in this cohort"


async def test_cohort_parameters_repeat_and_are_ored_like_declared_query_lists(portal: Portal) -> None:
    """The cohort part of the query string is parsed by hand (routers/stats.py, a speed
    decision); it must behave as FastAPI's declared `list[Literal[...]]` parameters did."""
    both = await portal.http.get(
        "/stats/survival?response_group=SD&response_group=PD&response_group=SD&start_to=2030-01-01",
        headers=bearer(token()),
    )
    assert both.status_code == 200, both.text
    body = both.json()
    assert body["cohort"]["filter"]["group"] == ["PD", "SD"]
    assert body["cohort"]["filter"]["start_to"] == "2030-01-01"
    assert {c["group"] for c in body["report"]["curves"]} == {"SD", "PD"}
    reordered = await portal.http.get(
        "/stats/survival?start_to=2030-01-01&response_group=PD&response_group=SD", headers=bearer(token())
    )
    assert reordered.json()["cohort"]["cached"] is True  # the same cohort, whatever the order
    only_sd = (await portal.http.get("/stats/survival?response_group=SD", headers=bearer(token()))).json()
    assert {c["group"] for c in only_sd["report"]["curves"]} == {"SD"}


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("response_group=progression", "response_group"),
        ("line=second", "line"),
        ("age_band=%3E60", "age_band"),
        ("start_from=2024-1-5", "start_from"),
        ("as_of=yesterday", "as_of"),
    ],
)
async def test_bad_cohort_parameter_is_422_problem_naming_it(portal: Portal, query: str, name: str) -> None:
    r = await portal.http.get(f"/stats/response?{query}", headers=bearer(token()))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["type"] == "/problems/request-validation"
    assert problem["errors"][0]["loc"] == ["query", name]
    assert portal.audit() == []  # refused before any query ran: nothing to audit


def test_every_cohort_endpoint_documents_the_cohort_parameters(app_settings: Settings) -> None:
    doc = create_app(app_settings).openapi()
    cohort = {"tumour_group", "line", "ici_class", "strategy", "sex", "age_band", "ecog_band"}
    cohort |= {"response_group", "institution", "start_from", "start_to", "as_of"}
    for path, ops in doc["paths"].items():
        if path.startswith("/stats"):
            names = [p["name"] for p in ops["get"]["parameters"]]
            assert cohort <= set(names), path
            assert len(names) == len(set(names)), path
    line = next(p for p in doc["paths"]["/stats/response"]["get"]["parameters"] if p["name"] == "line")
    assert line["schema"] == {"type": "array", "items": {"type": "string", "enum": ["first", "later"]}}
