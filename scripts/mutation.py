"""Mutation testing of the pure rules (`service/domain/`) against their unit tests.

Why our own script: the rules are small pure modules and the tests fast, so the cost is in starting
Python and pytest once per mutant. This script imports pytest and the test libraries once, then forks
one child per mutant (no new interpreter); the child loads the mutated module from memory through an
import hook and runs only the tests that executed the mutated lines in a baseline run, with `-x`.

Mutations (on the AST; the mutated module is compiled from `ast.unparse`):
- comparisons flipped at the boundary: < <=, > >=, == !=, is / is not, in / not in;
- numeric constants +1 and -1 (ints, floats, and `Decimal("...")` literals by one unit in the last place);
- `and` <-> `or`, `not x` -> `x`, `a + b` <-> `a - b`;
- branches: an `if` condition replaced by True and by False; `return value` -> `return None`.

A mutant is *killed* when a selected test fails (or collection fails, or it runs past the timeout),
*survives* when they all pass, and is *not covered* when no test executed its lines (also a survivor).
Survivors listed in the equivalent-mutants file (one per line, `key  # reason`) are left out of the
score. Usage and the recorded scores: docs/testing.md.

    uv run --frozen python scripts/mutation.py                       # all of service/domain/
    uv run --frozen python scripts/mutation.py service/domain/lesions.py --jobs 2
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.abc
import importlib.util
import json
import os
import signal
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TARGET = "service/domain"
DEFAULT_TESTS = "tests/unit/domain"
DEFAULT_EQUIVALENTS = "tests/mutation/equivalent.txt"

_FLIPPED_COMPARISONS: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass(frozen=True, slots=True)
class Mutant:
    """One change to one module; `key` is stable across edits elsewhere in the file."""

    path: str  # relative to the repository root
    module: str
    ordinal: int  # position among the module's mutation sites (to rebuild the mutant)
    first_line: int
    last_line: int
    key: str


@dataclass(frozen=True, slots=True)
class Outcome:
    mutant: Mutant
    status: str  # killed | survived | not-covered | timeout
    seconds: float


@dataclass(slots=True)
class _Site:
    node: ast.AST
    qualname: str
    description: str
    apply: Any  # callable(node) -> None, changes the node in place
    lines: tuple[int, int]  # first and last line of what changes (an `if`'s condition, not its body)


def _describe(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _decimal_neighbours(text: str) -> list[str]:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return []
    step = Decimal(1).scaleb(value.as_tuple().exponent)  # type: ignore[arg-type]
    return [str(value + step), str(value - step)]


class _SiteFinder(ast.NodeVisitor):
    """Every mutation site of a module, in a fixed order (the same on every parse)."""

    def __init__(self) -> None:
        self.sites: list[_Site] = []
        self._scope: list[str] = []
        self._in_annotation = 0

    @property
    def _qualname(self) -> str:
        return ".".join(self._scope) or "<module>"

    def _add(self, node: ast.AST, description: str, apply: Any, span: ast.AST | None = None) -> None:
        shown = span or node
        first = getattr(shown, "lineno", 0)
        lines = (first, getattr(shown, "end_lineno", None) or first)
        self.sites.append(_Site(node, self._qualname, description, apply, lines))

    def _visit_scope(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._scope.append(node.name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        if isinstance(node, ast.ClassDef):
            for base in node.bases:
                self.visit(base)
        else:
            for default in [*node.args.defaults, *node.args.kw_defaults]:
                if default is not None:
                    self.visit(default)
        for statement in body:
            self.visit(statement)
        self._scope.pop()

    visit_FunctionDef = _visit_scope
    visit_AsyncFunctionDef = _visit_scope
    visit_ClassDef = _visit_scope

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def visit_Compare(self, node: ast.Compare) -> None:
        for position, op in enumerate(node.ops):
            flipped = _FLIPPED_COMPARISONS.get(type(op))
            if flipped is None:
                continue
            before = _describe(node)

            def apply(n: ast.Compare, position: int = position, flipped: type[ast.cmpop] = flipped) -> None:
                n.ops[position] = flipped()

            mutated = copy.deepcopy(node)
            apply(mutated)
            self._add(node, f"`{before}` -> `{_describe(mutated)}`", apply)
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other: type[ast.boolop] = ast.Or if isinstance(node.op, ast.And) else ast.And
        word = "or" if other is ast.Or else "and"

        def apply(n: ast.BoolOp, other: type[ast.boolop] = other) -> None:
            n.op = other()

        self._add(node, f"`{_describe(node)}`: {'and' if word == 'or' else 'or'} -> {word}", apply)
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):

            def apply(n: ast.UnaryOp) -> None:
                n.op = ast.UAdd()  # replaced by its operand before unparsing (_DropUnaryPlus)
                n._mutant = True  # type: ignore[attr-defined]

            self._add(node, f"`{_describe(node)}` -> drop `not`", apply)
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        swaps: dict[type[ast.operator], type[ast.operator]] = {ast.Add: ast.Sub, ast.Sub: ast.Add}
        other = swaps.get(type(node.op))
        if other is not None:

            def apply(n: ast.BinOp, other: type[ast.operator] = other) -> None:
                n.op = other()

            mutated = copy.deepcopy(node)
            apply(mutated)
            self._add(node, f"`{_describe(node)}` -> `{_describe(mutated)}`", apply)
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        for delta in (1, -1):

            def apply(n: ast.Constant, delta: int = delta) -> None:
                n.value = n.value + delta

            self._add(node, f"constant {value!r} -> {value + delta!r}", apply)

    def visit_Call(self, node: ast.Call) -> None:
        is_decimal = isinstance(node.func, ast.Name) and node.func.id == "Decimal"
        if is_decimal and len(node.args) == 1 and isinstance(node.args[0], ast.Constant):
            literal = node.args[0].value
            if isinstance(literal, str):
                for neighbour in _decimal_neighbours(literal):

                    def apply(n: ast.Call, neighbour: str = neighbour) -> None:
                        n.args[0] = ast.Constant(neighbour)

                    self._add(node, f"`Decimal({literal!r})` -> `Decimal({neighbour!r})`", apply)
                return
        self.generic_visit(node)

    def visit_If(self, node: ast.If) -> None:
        condition = _describe(node.test)
        for forced in (True, False):

            def apply(n: ast.If, forced: bool = forced) -> None:
                n.test = ast.Constant(forced)

            self._add(node, f"`if {condition}` -> `if {forced}`", apply, node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node: ast.IfExp) -> None:
        condition = _describe(node.test)
        for forced in (True, False):

            def apply(n: ast.IfExp, forced: bool = forced) -> None:
                n.test = ast.Constant(forced)

            self._add(node, f"`... if {condition} else ...` -> `if {forced}`", apply, node.test)
        self.generic_visit(node)

    def visit_Return(self, node: ast.Return) -> None:
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):

            def apply(n: ast.Return) -> None:
                n.value = ast.Constant(None)

            self._add(node, f"`return {_describe(node.value)}` -> `return None`", apply)
        self.generic_visit(node)

    def visit_Expr(self, node: ast.Expr) -> None:
        if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            return  # a docstring or a bare string
        self.generic_visit(node)


class _DropUnaryPlus(ast.NodeTransformer):
    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        return node.operand if isinstance(node.op, ast.UAdd) and getattr(node, "_mutant", False) else node


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _sites(tree: ast.Module) -> list[_Site]:
    finder = _SiteFinder()
    finder.visit(tree)
    return finder.sites


_SOURCES: dict[str, str] = {}  # read once: the files may be edited while a run goes on


def _source(relative: str) -> str:
    if relative not in _SOURCES:
        _SOURCES[relative] = (ROOT / relative).read_text()
    return _SOURCES[relative]


def mutants_of(path: Path) -> list[Mutant]:
    relative = str(path.relative_to(ROOT))
    tree = ast.parse(_source(relative), filename=relative)
    result: list[Mutant] = []
    seen: dict[str, int] = defaultdict(int)
    for ordinal, site in enumerate(_sites(tree)):
        base = f"{relative}::{site.qualname}: {site.description}"
        seen[base] += 1
        key = base if seen[base] == 1 else f"{base} #{seen[base]}"
        first, last = site.lines
        result.append(Mutant(relative, _module_name(path), ordinal, first, last, key))
    return result


def mutated_source(mutant: Mutant) -> str:
    """The mutant's module text: the site re-found on a fresh parse, changed, unparsed."""
    tree = ast.parse(_source(mutant.path), filename=mutant.path)
    site = _sites(tree)[mutant.ordinal]
    site.apply(site.node)
    return ast.unparse(ast.fix_missing_locations(_DropUnaryPlus().visit(tree)))


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module from source text in memory (the child process only)."""

    def __init__(self, module: str, path: str, source: str) -> None:
        self.module, self.path, self.source = module, path, source

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.module:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=str(ROOT / self.path))

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        module.__file__ = str(ROOT / self.path)
        exec(compile(self.source, str(ROOT / self.path), "exec"), module.__dict__)  # noqa: S102


def _quiet() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def _pytest_args(tests: list[str]) -> list[str]:
    """Plain pytest, stopping at the first failure. Without third-party plugins (none of the domain
    tests needs one) and without assertion rewriting: loading and rewriting them was two thirds of
    a child's time, and a failing plain `assert` kills a mutant all the same."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return ["-p", "no:cacheprovider", "--assert=plain", "-q", "-x", "--no-header", "-o", "addopts=", *tests]


# --- baseline: which tests execute which lines -------------------------------------------------


# Lines run outside any test (module bodies, tables built at import): every test may depend on them.
_OUTSIDE_TESTS = "<outside tests>"


class _LineRecorder:
    """A pytest plugin: for every test, the lines of the target files it executed (sys.settrace)."""

    def __init__(self, files: set[str]) -> None:
        self.files = files
        self.current: str | None = _OUTSIDE_TESTS  # imports and collection come first
        self.lines: dict[str, set[str]] = defaultdict(set)  # "path:line" -> test node ids
        self.failed: list[str] = []
        self.seconds: dict[str, float] = defaultdict(float)  # test node id -> run time

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and self.current is not None:
            self.lines[f"{frame.f_code.co_filename}:{frame.f_lineno}"].add(self.current)
        return self._local

    def _global(self, frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename in self.files:
            if self.current is not None:
                self.lines[f"{frame.f_code.co_filename}:{frame.f_lineno}"].add(self.current)
            return self._local
        return None

    def pytest_runtest_protocol(self, item: Any, nextitem: Any) -> None:
        self.current = item.nodeid

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.seconds[report.nodeid] += report.duration
        if report.failed:
            self.failed.append(report.nodeid)
        if report.when == "teardown":
            self.current = _OUTSIDE_TESTS


def _baseline(files: list[Path], tests: list[str], out: Path) -> None:
    """In a child process: run every test once, record the lines each executed, write JSON."""
    import pytest

    recorder = _LineRecorder({str(f) for f in files})
    _quiet()
    sys.settrace(recorder._global)  # from the first import on (conftest files import the rules)
    code = pytest.main([*_pytest_args(tests)[: -len(tests)], *tests], plugins=[recorder])
    third_party = sorted(name for name in sys.modules if name.partition(".")[0] not in _OWN_PACKAGES)
    lines = {k: sorted(v) for k, v in recorder.lines.items()}
    out.write_text(
        json.dumps(
            {
                "exit": int(code),
                "failed": recorder.failed,
                "lines": lines,
                "modules": third_party,
                "seconds": recorder.seconds,
            }
        )
    )


_OWN_PACKAGES = {"service", "tests", "conftest", "__main__", "mutation"}


def _preload(modules: list[str]) -> None:
    """Import in the parent what the tests import from other packages, so that no child does it
    again (the modules of this repository are left for each child: they may depend on the mutant)."""
    for name in modules:
        if name.startswith("_pytest.assertion.rewrite"):
            continue
        try:
            importlib.import_module(name)
        except Exception:  # noqa: S112  (an optional or platform module: the child imports it if needed)
            continue


# --- running mutants -----------------------------------------------------------------------------


def _run_child(mutant: Mutant, tests: list[str]) -> None:
    import pytest

    sys.meta_path.insert(0, _MutantFinder(mutant.module, mutant.path, mutated_source(mutant)))
    _quiet()
    code = pytest.main(_pytest_args(tests))
    os._exit(int(code))


@dataclass(slots=True)
class _Running:
    mutant: Mutant
    started: float
    selected: int


@dataclass(slots=True)
class _Pool:
    jobs: int
    timeout: float
    running: dict[int, _Running] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def submit(self, mutant: Mutant, tests: list[str]) -> None:
        while len(self.running) >= self.jobs:
            self._reap(block=True)
        pid = os.fork()
        if pid == 0:
            try:
                _run_child(mutant, tests)
            finally:
                os._exit(3)
        self.running[pid] = _Running(mutant, time.monotonic(), len(tests))

    def drain(self) -> None:
        while self.running:
            self._reap(block=True)

    def _reap(self, block: bool) -> None:
        while True:
            for pid, job in list(self.running.items()):
                if time.monotonic() - job.started > self.timeout:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    self._done(pid, "timeout")
                    return
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                code = os.waitstatus_to_exitcode(status)
                self._done(pid, "survived" if code == 0 else "killed")
                return
            if not block:
                return
            time.sleep(0.02)

    def _done(self, pid: int, status: str) -> None:
        job = self.running.pop(pid)
        self.outcomes.append(Outcome(job.mutant, status, time.monotonic() - job.started))
        mark = {"killed": ".", "timeout": "T", "survived": "S"}[status]
        _say(mark, end="", flush=True)


def _covering_tests(mutant: Mutant, lines: dict[str, list[str]], order: list[str]) -> list[str]:
    absolute = str(ROOT / mutant.path)
    hit: set[str] = set()
    for line in range(mutant.first_line, mutant.last_line + 1):
        hit.update(lines.get(f"{absolute}:{line}", ()))
    if _OUTSIDE_TESTS in hit:
        return order
    return [test for test in order if test in hit]  # the fastest first: most mutants die early (-x)


def _read_equivalents(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    result: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, reason = line.partition("  # ")
        result[key.strip()] = reason.strip()
    return result


def _python_files(targets: list[str]) -> list[Path]:
    files: list[Path] = []
    for target in targets:
        path = (ROOT / target).resolve()
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return [f for f in files if f.name != "__init__.py"]


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=[DEFAULT_TARGET], help="modules or packages to mutate")
    parser.add_argument("--tests", nargs="+", default=[DEFAULT_TESTS], help="test files or directories")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at the same time (default 2)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds per mutant before it counts as killed"
    )
    parser.add_argument("--equivalents", default=DEFAULT_EQUIVALENTS, help="file of equivalent mutants")
    parser.add_argument("--every", type=int, default=1, help="run every N-th mutant only (a quick sample)")
    parser.add_argument("--json", help="also write every outcome to this file")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    return parser.parse_args(argv)


def _say(*parts: object, end: str = "\n", flush: bool = False) -> None:
    sys.stdout.write(" ".join(str(p) for p in parts) + end)
    if flush:
        sys.stdout.flush()


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    os.chdir(ROOT)
    os.environ["CI"] = "1"  # the derandomised Hypothesis profiles (tests/conftest.py)
    sys.path.insert(0, str(ROOT))
    files = _python_files(args.targets)
    mutants = [m for f in files for m in mutants_of(f)]
    mutants = mutants[:: args.every]
    if args.list:
        for m in mutants:
            _say(f"{m.path}:{m.first_line}  {m.key}")
        _say(f"{len(mutants)} mutants")
        return 0
    import hypothesis  # noqa: F401  (imported once, before forking)
    import pytest  # noqa: F401

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "baseline.json"
        pid = os.fork()
        if pid == 0:
            try:
                _baseline(files, args.tests, out)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        baseline = json.loads(out.read_text())
    if baseline["exit"] != 0:
        _say(f"the tests fail without mutation (pytest exit {baseline['exit']}): {baseline['failed'][:5]}")
        return 2
    _preload(baseline["modules"])
    lines: dict[str, list[str]] = baseline["lines"]
    seconds: dict[str, float] = baseline["seconds"]
    order = sorted(
        {t for ts in lines.values() for t in ts} - {_OUTSIDE_TESTS}, key=lambda t: (seconds.get(t, 0.0), t)
    )
    _say(f"baseline: {len(order)} tests in {time.monotonic() - started:.0f} s; {len(mutants)} mutants")
    pool = _Pool(args.jobs, args.timeout)
    not_covered: list[Outcome] = []
    for mutant in mutants:
        tests = _covering_tests(mutant, lines, order)
        if not tests:
            not_covered.append(Outcome(mutant, "not-covered", 0.0))
            _say("-", end="", flush=True)
            continue
        pool.submit(mutant, tests)
    pool.drain()
    _say()
    return _report([*pool.outcomes, *not_covered], _read_equivalents(ROOT / args.equivalents), args, started)


def _report(
    outcomes: list[Outcome], equivalents: dict[str, str], args: argparse.Namespace, started: float
) -> int:
    outcomes.sort(key=lambda o: (o.mutant.path, o.mutant.ordinal))
    survivors = [o for o in outcomes if o.status in ("survived", "not-covered")]
    equivalent = [o for o in survivors if o.mutant.key in equivalents]
    open_survivors = [o for o in survivors if o.mutant.key not in equivalents]
    killed = len(outcomes) - len(survivors)
    scored = len(outcomes) - len(equivalent)
    by_file: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for o in outcomes:
        if o.mutant.key in equivalents and o.status in ("survived", "not-covered"):
            continue
        by_file[o.mutant.path][1] += 1
        if o.status in ("killed", "timeout"):
            by_file[o.mutant.path][0] += 1
    for path, (k, n) in sorted(by_file.items()):
        _say(f"  {path}: {k}/{n} killed ({100 * k / max(n, 1):.1f} %)")
    for o in open_survivors:
        _say(
            f"SURVIVED{' (not covered)' if o.status == 'not-covered' else ''}: {o.mutant.key}  [line {o.mutant.first_line}]"
        )
    stale = sorted(set(equivalents) - {o.mutant.key for o in equivalent})
    if args.every == 1 and stale:
        _say(f"{len(stale)} entries of {args.equivalents} match no surviving mutant (killed or gone):")
        for key in stale:
            _say(f"  {key}")
    score = 100 * killed / max(scored, 1)
    _say(
        f"mutants {len(outcomes)}, killed {killed}, survived {len(survivors)}"
        f" (equivalent {len(equivalent)}, open {len(open_survivors)});"
        f" score {score:.1f} % of non-equivalent; {time.monotonic() - started:.0f} s on {args.jobs} jobs"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                [{"key": o.mutant.key, "line": o.mutant.first_line, "status": o.status} for o in outcomes],
                indent=1,
            )
        )
    return 0 if not open_survivors else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
