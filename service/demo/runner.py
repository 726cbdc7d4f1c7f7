"""`oncoresponse demo`: the whole path on the embedded default (SQLite) against a real FHIR server.

1. install (once) and start sekmet-fhir on 127.0.0.1;
2. generate the synthetic cohort and load it (one transaction Bundle of PUTs per patient);
3. sync: pull every patient back over FHIR search, assess, write Observations back
   (conditional creates), record the run in SQLite;
4. `--once`: sync again and check that nothing new was created, check that the server holds
   our ResponseGroup Observation for every patient;
5. `--scenario dr` (the default): the live moment (service/demo/live_dr.py): a new scan for one
   patient reaches the service through its FHIR Subscription and the alert arrives (Communication,
   Flag, CDS Hooks card), timed; `--once` fails when any of it is missing;
6. `--once` stops and exits (non-zero on failure); otherwise the API serves until Ctrl-C, with its
   own FHIR Subscription, so that scans posted meanwhile are re-assessed live.
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx
import orjson
from pydantic import AnyHttpUrl, SecretStr
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from service.adapters.fhir import codes
from service.adapters.persistence.database import migrate
from service.application.clock import today
from service.bootstrap import Container
from service.config import Settings
from service.demo import sekmet
from service.demo.portal import demo_portal_issuer
from service.phases import PhaseTimer
from service.synthetic import Cohort, mixed_cohort, nsclc_cohort, pan_tumour_cohort

console = Console(stderr=True)
# sekmet-fhir's own virtual environment, shared by the demo and the tests (relative to the checkout).
SEKMET_ROOT = Path("var")


SCENARIOS = ("dr", "none")  # dr: the live alert after the sync (service/demo/live_dr.py)


class DemoFailed(RuntimeError):
    pass


def make_cohort(name: str, *, seed: int = 2024, n: int = 50) -> Cohort:
    if name == "pan-tumour":
        return pan_tumour_cohort(seed)
    if name == "nsclc":
        return nsclc_cohort(seed)
    if name == "mixed":
        return mixed_cohort(n, seed)
    raise DemoFailed(f"unknown cohort {name!r} (pan-tumour, nsclc or mixed)")


def transaction_bundle(resources: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """PUT every resource at its own id: loading twice changes nothing."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"{r['resourceType']}/{r['id']}",
                "resource": r,
                "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
            }
            for r in resources
        ],
    }


async def load_patients(
    base_url: str,
    bundles: Sequence[dict[str, Any]],
    *,
    concurrency: int = 4,
    advance: Callable[[], None] | None = None,
) -> None:
    limiter = anyio.CapacityLimiter(concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:

        async def post(bundle: dict[str, Any]) -> None:
            async with limiter:
                response = await http.post(
                    base_url,
                    content=orjson.dumps(bundle),
                    headers={"Content-Type": "application/fhir+json", "Prefer": "return=minimal"},
                )
            if response.status_code >= 300:
                raise DemoFailed(f"loading a patient failed with HTTP {response.status_code}")
            if advance is not None:
                advance()

        async with anyio.create_task_group() as tg:
            for bundle in bundles:
                tg.start_soon(post, bundle)


async def count_response_groups(base_url: str) -> Counter[str]:
    """Read our ResponseGroup Observations back from the server (one per patient)."""
    found: Counter[str] = Counter()
    url: str | None = f"{base_url}/Observation"
    params: dict[str, str] | None = {
        "code": f"{codes.CS_ONCORESPONSE}|{codes.CODE_RESPONSE_GROUP}",
        "_count": "200",
    }
    async with httpx.AsyncClient(timeout=httpx.Timeout(60.0)) as http:
        while url:
            page = (await http.get(url, params=params)).json()
            params = None
            for entry in page.get("entry", []):
                resource = entry.get("resource", {})
                if resource.get("resourceType") == "Observation":
                    found[resource["valueCodeableConcept"]["coding"][0]["code"]] += 1
            url = next((link["url"] for link in page.get("link", []) if link.get("relation") == "next"), None)
    return found


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def run_demo(
    *,
    once: bool,
    cohort: str,
    limit: int | None,
    port: int,
    workdir: Path,
    scenario: str = "dr",
    sekmet_version: str = sekmet.DEFAULT_VERSION,
) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    db_path = workdir / "oncoresponse.db"
    if db_path.exists():
        db_path.unlink()
    console.print(
        "[bold]oncoresponse demo[/bold]: starting sekmet-fhir (installed once into its own venv)..."
    )
    timer = PhaseTimer()
    server = sekmet.start(SEKMET_ROOT / f"sekmet-{sekmet_version}", version=sekmet_version)
    timer.done("FHIR server start")
    try:
        _demo_path(
            server,
            once=once,
            cohort=cohort,
            limit=limit,
            port=port,
            db_path=db_path,
            timer=timer,
            scenario=scenario,
        )
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def _example_patients(patients: Sequence[Any]) -> dict[str, str]:
    """One patient per response group worth opening first: DR, PsPD, then a true PD."""
    examples: dict[str, str] = {}
    for group in ("DR", "PsPD", "PD"):
        found = next((p.patient_id for p in patients if p.truth.response_group == group), None)
        if found is not None:
            examples[group] = found
    return examples


def _demo_path(
    server: sekmet.SekmetServer,
    *,
    once: bool,
    cohort: str,
    limit: int | None,
    port: int,
    db_path: Path,
    timer: PhaseTimer,
    scenario: str,
) -> None:
    console.print(f"FHIR server: {server.base_url} (pid {server.pid})")
    generated = make_cohort(cohort)
    patients = generated.patients[:limit] if limit else generated.patients
    bundles = [transaction_bundle(p.resources) for p in patients]
    timer.done("generate")
    with _progress() as progress:
        task = progress.add_task("loading synthetic patients", total=len(bundles))
        anyio.run(lambda: load_patients(server.base_url, bundles, advance=lambda: progress.advance(task)))
    timer.done("load")

    portal = demo_portal_issuer(
        audience=Settings.model_fields["stats_jwt_audience"].default, scope="stats.read"
    )
    settings = Settings(
        environment="development",
        api_auth="off",  # a local demo on 127.0.0.1; deployments take tokens (service/api/security.py)
        fhir_base_url=server.base_url,
        database_url=f"sqlite:///{db_path}",
        log_level="warning",
        log_json=False,
        port=port,
        stats_jwt_public_key=SecretStr(portal.public_key_pem),
        stats_jwt_issuer=portal.issuer,
        smart_demo_launch=True,  # the patient view's EHR-launch simulator (docs/web/patient-view.md)
    )
    from service.observability import configure_logging

    configure_logging(settings.log_level, json=False)
    migrate(settings.database_url)

    async def sync_twice() -> tuple[Any, Any]:
        async with Container(settings) as box:
            sync = box.require_sync()
            with _progress() as progress:
                task = progress.add_task("assessing and writing back", total=len(patients))
                first = await sync(as_of=today(), progress=lambda n: progress.advance(task, n))
            timer.done("first sync")
            second = await sync(as_of=today()) if once else None
            if once:
                timer.done("second sync")
        return first, second

    first, second = anyio.run(sync_twice)
    console.print(
        f"sync: {first.patients_assessed}/{first.patients_seen} patients assessed, "
        f"{first.created} resources created, {len(first.issues)} data issue(s)"
    )
    groups = anyio.run(lambda: count_response_groups(server.base_url))
    timer.done("check")
    console.print(timer.line(), soft_wrap=True)
    truth = Counter(p.truth.response_group for p in patients)
    console.print(
        "response groups on the FHIR server: " + ", ".join(f"{k} {v}" for k, v in sorted(groups.items()))
    )
    console.print(
        "generated ground truth:            " + ", ".join(f"{k} {v}" for k, v in sorted(truth.items()))
    )

    live_problems = _live_dr_scenario(settings, db_path) if scenario == "dr" else []

    if once:
        console.print(
            f"second sync: {second.created} created, {second.unchanged} unchanged (idempotent writes)"
        )
        problems = []
        if first.patients_assessed != len(patients):
            problems.append(f"{len(patients) - first.patients_assessed} patient(s) not assessed")
        if sum(groups.values()) != len(patients):
            problems.append(f"{sum(groups.values())} ResponseGroup Observations for {len(patients)} patients")
        if second.created != 0:
            problems.append(f"the second sync created {second.created} resources")
        problems += anyio.run(lambda: _check_portal(settings, portal.token, len(patients)))
        problems += live_problems
        if problems:
            raise DemoFailed("; ".join(problems))
        console.print("[green]demo path complete[/green]")
        return

    import uvicorn

    from service.api.app import create_app

    console.print(
        "\n[bold]Open:[/bold]\n"
        + "".join(
            f"  patient view  http://127.0.0.1:{port}/smart/ehr?patient={patient_id}  ({group}, EHR launch)\n"
            for group, patient_id in _example_patients(patients).items()
        )
        + f"  patient view  http://127.0.0.1:{port}/app/patient/launch  (standalone launch, choose a patient)\n"
        f"  API docs      http://127.0.0.1:{port}/docs  (and /redoc)\n"
        f"  metrics       http://127.0.0.1:{port}/metrics\n"
        f"  portal        http://127.0.0.1:{port}/stats/response  (and /stats/survival, /stats/cox, ...)\n"
        f"  portal token  export TOKEN={portal.token}\n"
        f'                curl -s -H "Authorization: Bearer $TOKEN" http://127.0.0.1:{port}/stats/response\n'
        f"  FHIR server   {server.base_url}/Observation?code={codes.CS_ONCORESPONSE}|{codes.CODE_RESPONSE_GROUP}\n"
        f"  FHIR console  {server.base_url.removesuffix('/fhir')}/ui\n"
        f"  try           curl -s -X POST -H 'Content-Type: application/json' -d '{{}}' "
        f"http://127.0.0.1:{port}/sync\n"
        "The API registers its own FHIR Subscription: a scan posted to the FHIR server is re-assessed live.\n"
        "Ctrl-C stops the API and the FHIR server.",
        soft_wrap=True,
    )
    served = _subscribed(settings, port)
    uvicorn.run(create_app(served), host="127.0.0.1", port=port, log_config=None, log_level="warning")


def _subscribed(settings: Settings, port: int) -> Settings:
    """The served API registers its own Subscription at start: a scan posted later is re-assessed live."""
    return settings.model_copy(
        update={
            "subscription_endpoint": AnyHttpUrl(f"http://127.0.0.1:{port}/fhir/subscription-hook"),
            "subscription_hook_token": SecretStr(secrets.token_urlsafe(24)),
        }
    )


def _live_dr_scenario(settings: Settings, database: Path) -> list[str]:
    """Run the live DR scenario and print what arrived; the problems found (none when it worked)."""
    from service.demo.live_dr import LiveScenarioFailed, run_live_dr

    console.print(
        "live DR scenario: posting a new scan for one patient, the service is subscribed...", soft_wrap=True
    )
    try:
        outcome = anyio.run(lambda: run_live_dr(settings, database))
    except LiveScenarioFailed as exc:
        console.print(f"[yellow]live DR scenario failed: {exc}[/yellow]")
        return [f"live DR scenario: {exc}"]
    console.print(
        f"live DR alert: Communication and Flag for {outcome.patient_id} on the FHIR server "
        f"{outcome.alert_after_s:.1f} s after the scan was committed",
        soft_wrap=True,
    )
    if not outcome.card_summaries:
        return ["live DR scenario: the CDS Hooks atypical-response service returned no card"]
    for summary in outcome.card_summaries:
        console.print(f"CDS Hooks card: {summary}", soft_wrap=True)
    return []


async def _check_portal(settings: Settings, token: str, patients: int) -> list[str]:
    """The research portal answers the printed token with the cohort's response table."""
    from service.api.app import create_app

    async with Container(settings) as box:
        transport = httpx.ASGITransport(app=create_app(settings, container=box))
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as http:
            answer = await http.get("/stats/response", headers={"Authorization": f"Bearer {token}"})
    if answer.status_code != 200:
        return [f"the research portal answered {answer.status_code} to the demo token"]
    console.print(f"research portal: /stats/response answered for the cohort of {patients} patients")
    return []
