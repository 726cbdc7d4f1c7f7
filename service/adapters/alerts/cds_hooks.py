"""CDS Hooks 2.0 (https://cds-hooks.hl7.org/2.0/): the `atypical-response` patient-view service.

Discovery (`GET {base}/cds-services`) lists one service, id `atypical-response`, hook
`patient-view`, with prefetch templates for the Patient and our AtypicalResponse Observations.
A call answers `{"cards": [...]}`: one `warning` card per alerted finding kind (DR, PsPD; the
first finding of each, as for alerts), or no cards.

Where the finding comes from: the database's latest assessment of `context.patientId`; when the
service has never assessed that patient, the prefetched AtypicalResponse Observations (key
`atypicalResponses`, a searchset Bundle). Prefetch carries no lesion measurements, so such a
card lists lesion references only.

Trusting the CDS client (spec "Trusting CDS Clients"): every service call must carry
``Authorization: Bearer <JWT>``. The JWT is verified against an issuer allow-list from settings,
each issuer with its own keys (an inline JWKS, a PEM public key, or a JWKS URL fetched and
cached; the token's `jku` header is never followed). Required claims `iss`, `aud`, `exp`,
`iat`, `jti`; `aud` (string or array) must contain the URL of the service endpoint called; only
asymmetric algorithms are accepted (RS/PS/ES*, EdDSA): `none` and HMAC are rejected, as the spec
requires. A `jti` seen before (until its `exp`) is a replay and is rejected. The service's
verifier records used tokens in the database (`ReplayLedger`, the `cds_token_uses` table), so the
check holds across replicas; a verifier without a ledger (tools, tests) remembers them in its own
memory. The discovery endpoint carries no patient data and is answered without a token.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import anyio.to_thread
import jwt
from jwt import PyJWK, PyJWKClient, PyJWKSet

from service.adapters.fhir import codes
from service.application.alerts import (
    ALERTED_KINDS,
    KIND_DISPLAY,
    NEXT_STEP_TEXT,
    REASSESS_WEEKS,
    SOURCE_DR,
    SOURCE_PSPD,
)
from service.application.errors import ApplicationError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "SERVICE_ID",
    "CdsAuthRejected",
    "CdsJwtVerifier",
    "atypical_cards",
    "discovery",
    "findings_from_document",
    "findings_from_prefetch",
]

SERVICE_ID: Final = "atypical-response"
HOOK: Final = "patient-view"
PREFETCH_PATIENT: Final = "patient"
PREFETCH_ATYPICAL: Final = "atypicalResponses"
ALLOWED_ALGORITHMS: Final = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
REQUIRED_CLAIMS: Final = ("iss", "aud", "exp", "iat", "jti")
SUMMARY_MAX: Final = 139  # "<140-character summary"


class CdsAuthRejected(ApplicationError):
    """The CDS client's JWT is missing or not acceptable (answered 401)."""

    problem_type = "/problems/cds-unauthorized"
    title = "CDS client not trusted"
    status = 401


class CdsRequestInvalid(ApplicationError):
    problem_type = "/problems/cds-request-invalid"
    title = "Invalid CDS Hooks request"
    status = 400


# --- discovery -----------------------------------------------------------------------------------
def discovery() -> dict[str, Any]:
    atypical_query = (
        "Observation?patient={{context.patientId}}"
        f"&code={codes.CS_ONCORESPONSE}|{codes.CODE_ATYPICAL_RESPONSE}"
    )
    return {
        "services": [
            {
                "hook": HOOK,
                "id": SERVICE_ID,
                "title": "Atypical response to immunotherapy",
                "description": (
                    "Warns when the patient's imaging shows a dissociated response (DR) or "
                    "pseudoprogression (PsPD) under immune checkpoint inhibitors, with the "
                    "lesions that grow and shrink and the suggested next step."
                ),
                "prefetch": {
                    PREFETCH_PATIENT: "Patient/{{context.patientId}}",
                    PREFETCH_ATYPICAL: atypical_query,
                },
            }
        ]
    }


# --- findings --------------------------------------------------------------------------------------
def _first_of_each_kind(findings: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    firsts: list[dict[str, Any]] = []
    for kind in ALERTED_KINDS:
        mine = [f for f in findings if f.get("kind") == kind.value]
        if mine:
            firsts.append(min(mine, key=lambda f: (f.get("timepoint_index") or 0, str(f.get("date")))))
    return firsts


def findings_from_document(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Alerted findings of a stored assessment (`result_json`, see persistence.summary)."""
    lesions = [x for x in document.get("lesions", []) if isinstance(x, dict)]
    findings: list[dict[str, Any]] = []
    for f in document.get("atypical", []):
        if not isinstance(f, dict):
            continue
        day = f.get("timepoint_date")
        at_scan = {x.get("lesion_id"): x for x in lesions if x.get("timepoint_date") == day}

        def rows(ids: object, at_scan: dict[Any, dict[str, Any]] = at_scan) -> list[dict[str, Any]]:
            return [at_scan.get(i, {"lesion_id": i}) for i in (ids if isinstance(ids, list) else [])]

        findings.append(
            {
                "kind": f.get("kind"),
                "definition": f.get("definition"),
                "timepoint_index": f.get("timepoint_index"),
                "date": day,
                "trigger": f.get("trigger"),
                "growing": rows(f.get("growing_lesions")),
                "shrinking": rows(f.get("shrinking_lesions")),
            }
        )
    return _first_of_each_kind(findings)


def findings_from_prefetch(bundle: object) -> list[dict[str, Any]]:
    """Alerted findings from prefetched AtypicalResponse Observations (a searchset Bundle)."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        return []
    findings: list[dict[str, Any]] = []
    for entry in bundle.get("entry", []) or []:
        obs = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(obs, dict) or obs.get("resourceType") != "Observation":
            continue
        if obs.get("status") not in ("final", "amended", "corrected"):
            continue
        value = obs.get("valueCodeableConcept")
        kind = next(
            (
                c.get("code")
                for c in (value.get("coding", []) if isinstance(value, dict) else [])
                if isinstance(c, dict) and c.get("system") == codes.CS_ATYPICAL_RESPONSE
            ),
            None,
        )
        if kind is None:
            continue
        components: dict[str, Any] = {}
        for comp in obs.get("component", []) or []:
            code = next((c.get("code") for c in comp.get("code", {}).get("coding", [])), None)
            if code == codes.COMP_TIMEPOINT_INDEX:
                components["timepoint_index"] = comp.get("valueInteger")
            elif code in (codes.COMP_DR_TRIGGER, codes.COMP_DEFINITION):
                coding = comp.get("valueCodeableConcept", {}).get("coding", [{}])
                components[code] = coding[0].get("code") if coding else None
        members = [
            {"lesion_id": m.get("reference")}
            for m in obs.get("hasMember", []) or []
            if isinstance(m, dict) and m.get("reference")
        ]
        findings.append(
            {
                "kind": kind,
                "definition": components.get(codes.COMP_DEFINITION),
                "timepoint_index": components.get("timepoint_index"),
                "date": str(obs.get("effectiveDateTime", ""))[:10] or None,
                "trigger": components.get(codes.COMP_DR_TRIGGER),
                "growing": [],
                "shrinking": [],
                "members": members,
            }
        )
    return _first_of_each_kind(findings)


# --- cards ----------------------------------------------------------------------------------------
def _pct(value: object) -> str:
    return "" if value is None else f"{value} %"


def _table(finding: Mapping[str, Any]) -> list[str]:
    lines = ["| Lesion | Course | Diameter (mm) | From baseline | From nadir |", "|---|---|---|---|---|"]
    for label, rows in (("grows", finding["growing"]), ("shrinks", finding["shrinking"])):
        for row in rows:
            status = row.get("status")
            course = "new lesion" if status == "new" else label
            lines.append(
                f"| {row.get('lesion_id')} | {course} | {row.get('diameter_mm') or ''} | "
                f"{_pct(row.get('change_from_baseline_pct'))} | {_pct(row.get('change_from_nadir_pct'))} |"
            )
    return lines


def _card(
    finding: Mapping[str, Any],
    patient_id: str,
    *,
    source_url: str | None,
    lesion_table_url: str | None,
    smart_launch_url: str | None = None,
) -> dict[str, Any]:
    kind = str(finding["kind"])
    display = KIND_DISPLAY[kind]
    scan = f"scan {finding.get('timepoint_index') or '?'} ({finding.get('date') or 'date unknown'})"
    weeks = f"{REASSESS_WEEKS[0]}-{REASSESS_WEEKS[1]}"
    summary = f"{display} on immunotherapy at {scan}: reassess in {weeks} weeks before changing therapy"
    if len(summary) > SUMMARY_MAX:
        summary = summary[: SUMMARY_MAX - 1] + "…"
    detail = [
        f"**{display} ({kind})** under immune checkpoint inhibitor therapy at {scan}"
        + (f", definition `{finding['definition']}`" if finding.get("definition") else "")
        + (f", trigger `{finding['trigger']}`" if finding.get("trigger") else "")
        + ".",
        "",
    ]
    if finding["growing"] or finding["shrinking"]:
        detail += [*_table(finding), ""]
    elif finding.get("members"):
        detail += ["Lesion results: " + ", ".join(str(m["lesion_id"]) for m in finding["members"]), ""]
    detail += [
        f"**Suggested next step:** {NEXT_STEP_TEXT[kind]}",
        "",
        f"_Source: {SOURCE_DR if kind == 'DR' else SOURCE_PSPD}._",
    ]
    source: dict[str, Any] = {"label": "oncoresponse: atypical response to immunotherapy"}
    if source_url:
        source["url"] = source_url
    card: dict[str, Any] = {
        "uuid": str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"oncoresponse/{patient_id}/{kind}/{finding.get('date')}")
        ),
        "summary": summary,
        "indicator": "warning",
        "detail": "\n".join(detail),
        "source": source,
    }
    links = []
    if smart_launch_url:  # CDS Hooks 2.0 link type "smart": the EHR launches the app with iss + launch
        links.append({"label": "Open the lesion view", "url": smart_launch_url, "type": "smart"})
    if lesion_table_url:
        links.append({"label": "Lesion table", "url": lesion_table_url, "type": "absolute"})
    if links:
        card["links"] = links
    return card


def atypical_cards(
    findings: Sequence[Mapping[str, Any]],
    patient_id: str,
    *,
    source_url: str | None,
    lesion_table_url: str | None,
    smart_launch_url: str | None = None,
) -> list[dict[str, Any]]:
    return [
        _card(
            f,
            patient_id,
            source_url=source_url,
            lesion_table_url=lesion_table_url,
            smart_launch_url=smart_launch_url,
        )
        for f in findings
        if f.get("kind") in KIND_DISPLAY
    ]


# --- JWT ------------------------------------------------------------------------------------------
KeyLookup = Callable[[str, Mapping[str, Any]], Any]


def _key_source(spec: str) -> KeyLookup:
    """Turn one issuer's configured key material into `lookup(token, header) -> key`."""
    text = spec.strip()
    if text.startswith(("https://", "http://")):
        client = PyJWKClient(text, cache_keys=True, lifespan=3600, timeout=5)

        def from_url(token: str, header: Mapping[str, Any]) -> Any:
            return client.get_signing_key_from_jwt(token).key

        return from_url
    if text.startswith("{"):
        data = json.loads(text)
        keys = PyJWKSet.from_dict(data).keys if "keys" in data else [PyJWK.from_dict(data)]

        def from_jwks(token: str, header: Mapping[str, Any]) -> Any:
            kid = header.get("kid")
            matching = [k for k in keys if kid is not None and k.key_id == kid]
            if not matching and kid is None and len(keys) == 1:
                matching = keys
            if not matching:
                raise CdsAuthRejected("no key of the issuer matches the token's kid")
            return matching[0].key

        return from_jwks
    if "-----BEGIN" in text:
        return lambda token, header: text
    raise ValueError("issuer keys must be a JWKS URL, an inline JWKS/JWK JSON object or a PEM public key")


class ReplayLedger(Protocol):
    """Where used tokens are recorded (`persistence.replay.SqlReplayLedger`)."""

    async def first_use(self, issuer: str, jti: str, expires_at: datetime) -> bool:
        """Record the token; False if it was recorded before (a replay)."""
        ...


class CdsJwtVerifier:
    """Verifies CDS clients' bearer JWTs (module doc). `issuers`: issuer URI -> key material."""

    def __init__(
        self,
        issuers: Mapping[str, str],
        *,
        leeway_s: int = 30,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {iss: _key_source(spec) for iss, spec in issuers.items()}
        self._leeway_s = leeway_s
        self._clock = clock
        self._seen_jti: dict[str, float] = {}
        self._ledger: ReplayLedger | None = None

    def share_replay_ledger(self, ledger: ReplayLedger) -> None:
        """Check replays against `ledger` (shared by every replica) instead of this process's memory."""
        self._ledger = ledger

    @property
    def configured(self) -> bool:
        return bool(self._issuers)

    async def verify(self, authorization: str | None, *, audience: str) -> dict[str, Any]:
        if not self._issuers:
            raise CdsAuthRejected("no trusted CDS client is configured")
        if not authorization or not authorization.lower().startswith("bearer "):
            raise CdsAuthRejected("a Bearer JWT is required")
        token = authorization[7:].strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise CdsAuthRejected("the bearer token is not a JWT") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise CdsAuthRejected(f"JWT algorithm {alg!r} is not accepted (asymmetric signatures only)")
        issuer = unverified.get("iss")
        lookup = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if lookup is None:
            raise CdsAuthRejected("the JWT issuer is not trusted")
        try:
            key = await anyio.to_thread.run_sync(lookup, token, header)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer,
                leeway=self._leeway_s,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except CdsAuthRejected:
            raise
        except jwt.ExpiredSignatureError:
            raise CdsAuthRejected("the JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise CdsAuthRejected("the JWT audience is not this CDS service") from None
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise CdsAuthRejected(f"the JWT was rejected ({type(exc).__name__})") from None
        jti, exp = str(claims["jti"]), float(claims["exp"])
        if self._ledger is None:
            self._check_replay(jti, exp)
        else:
            # Kept until the token could no longer be accepted: its expiry plus the leeway.
            until = datetime.fromtimestamp(exp + self._leeway_s, UTC)
            if not await self._ledger.first_use(str(claims["iss"]), jti, until):
                raise CdsAuthRejected("the JWT was already used (jti replay)")
        return claims

    def _check_replay(self, jti: str, exp: float) -> None:
        now = self._clock()
        for old in [k for k, until in self._seen_jti.items() if until + self._leeway_s < now]:
            del self._seen_jti[old]
        if jti in self._seen_jti:
            raise CdsAuthRejected("the JWT was already used (jti replay)")
        self._seen_jti[jti] = exp
