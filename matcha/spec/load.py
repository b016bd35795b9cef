"""Parse → validate → plan. ``load_plan`` is the one entry point; it raises :class:`PipelineError`
with every problem found, each located in its file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matcha.connectors.base import CONNECTORS, Publisher
from matcha.errors import ConfigIssue, PipelineError
from matcha.models.base import PROVIDERS, Provider
from matcha.spec import graph
from matcha.spec.conditions import ConditionError, compile_condition
from matcha.spec.connections import Connection, available, load_connection, read_config_text
from matcha.spec.envrefs import EnvRefs
from matcha.spec.loops import check_loops, unroll
from matcha.spec.models import PipelineSpec, StepSpec
from matcha.spec.validate import validate_model
from matcha.spec.yamlload import Located, load_located
from matcha.steps.base import STEPS, LoadContext, StaticIssue, Step

Record = dict[str, Any]

#: Step ids the graph uses itself: ``source`` names the source in ``needs``; ``__...`` is internal.
RESERVED_IDS = ("source",)

# Always defined, so model steps work with zero configuration on a fresh machine (offline bundles).
# A pipeline replaces one by defining a model with the same name.
DEFAULT_MODELS: dict[str, dict[str, Any]] = {
    "default-embedder": {"provider": "onnx"},  # USE multilingual v3: French and English, offline
    "default-generator": {"provider": "llamacpp"},
}


@dataclass
class PlannedStep:
    index: int
    step: Step
    needs: list[str]  # resolved; graph.SOURCE for the source
    when: Callable[[Record], bool] | None

    @property
    def id(self) -> str:
        return self.step.id


@dataclass
class Plan:
    """A validated pipeline, ready to be compiled into a LangGraph graph."""

    spec: PipelineSpec
    file: str
    text: str
    base_dir: Path
    steps: dict[str, PlannedStep]
    models: dict[str, Any]  # name -> validated provider config
    connections: dict[str, Connection] = field(default_factory=dict)

    def needs_map(self) -> dict[str, list[str]]:
        return {sid: ps.needs for sid, ps in self.steps.items()}

    def used_models(self) -> list[str]:
        """Models named by steps, plus every model the file defines."""
        names = {n for ps in self.steps.values() for n in ps.step.model_names()} | set(self.spec.models)
        return sorted(names)

    def upstream(self, step_id: str) -> set[str]:
        return graph.upstream(self.needs_map(), step_id)

    def order(self) -> list[str]:
        """Step ids in an execution order (every step after the steps it needs; file order otherwise)."""
        needs = self.needs_map()
        done: list[str] = []
        placed: set[str] = {graph.SOURCE}
        while len(done) < len(needs):
            for sid, deps in needs.items():
                if sid not in placed and all(d in placed for d in deps):
                    done.append(sid)
                    placed.add(sid)
                    break
        return done

    def lineage(self, step_id: str) -> list[str]:
        """The source and every step upstream of ``step_id``, in execution order: a record as it
        reaches the step is the merge of what each of them wrote."""
        up = self.upstream(step_id)
        return [graph.SOURCE, *(s for s in self.order() if s in up)]

    def build_model(self, name: str) -> Provider:
        cfg = self.models[name]
        cls = PROVIDERS.get(cfg.provider)
        assert cls is not None
        return cls(name, cfg)


def find_project_root(pipeline_path: Path) -> Path:
    """The nearest ancestor of the pipeline holding ``connectors/`` (else the pipeline's parent's parent
    for files under ``pipelines/``, else the pipeline's own folder)."""
    start = pipeline_path.resolve().parent
    for d in [start, *start.parents]:
        if (d / "connectors").is_dir():
            return d
    return start.parent if start.name == "pipelines" else start


class _Builder:
    def __init__(self, located: Located, base_dir: Path, env: EnvRefs):
        self.located = located
        self.base_dir = base_dir
        self.env = env
        self.issues: list[ConfigIssue] = []
        self.bad_models: set[str] = set()  # defined but invalid: already reported
        self.model_origin: dict[str, tuple[Located, tuple[str | int, ...]]] = {}  # where each model is defined

    def issue(self, path: tuple[str | int, ...], message: str, hint: str = "") -> None:
        self.issues.append(self.located.issue(path, message, hint))

    def fail_if_issues(self) -> None:
        if self.issues:
            raise PipelineError(self.issues)

    def spec(self) -> PipelineSpec:
        if not isinstance(self.located.data, dict):
            self.issue((), "a pipeline file must be a mapping with `name:` and `steps:`",
                       "See docs/pipeline-reference.md for the format")
            self.fail_if_issues()
        data = self.env.resolve(self.located, self.issues)
        spec, more = validate_model(PipelineSpec, data, self.located)
        self.issues += self.env.keep(more)
        self.fail_if_issues()
        return spec  # type: ignore[no-any-return]

    def models(self, spec: PipelineSpec) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, raw in DEFAULT_MODELS.items():
            cls = PROVIDERS.get(raw["provider"])
            if cls is not None:
                out[name] = cls.Config.model_validate(raw)
        shared = self.base_dir / "models.yaml"
        if shared.is_file():
            try:
                out.update(self._model_entries(load_located(read_config_text(shared), str(shared))))
            except PipelineError as exc:
                self.issues += exc.issues
        out.update(self._model_entries(self.located, spec.models))
        return out

    def _model_entries(self, located: Located, entries: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``models:`` entries of the pipeline or of the shared ``models.yaml``."""
        if entries is None:
            data = self.env.resolve(located, self.issues)
            entries = data.get("models") if isinstance(data, dict) else None
            if not isinstance(entries, dict):
                self.issues.append(located.issue((), "a shared models file holds a `models:` mapping",
                                                 "Write models: {name: {provider: ..., model: ...}}"))
                return {}
        out: dict[str, Any] = {}
        for name, raw in entries.items():
            path: tuple[str | int, ...] = ("models", name)
            provider = raw.get("provider") if isinstance(raw, dict) else None
            cls = PROVIDERS.get(provider) if isinstance(provider, str) and provider else None
            if cls is None:
                what = ("the field 'provider' is missing" if provider in (None, "")
                        else f"unknown model provider '{provider}'" if isinstance(provider, str)
                        else "'provider' must be the name of a model provider")
                hint = PROVIDERS.unknown_hint(provider if isinstance(provider, str) else "")
                self.issues.append(located.issue((*path, "provider"), what, hint))
                self.bad_models.add(name)
                continue
            cfg, more = validate_model(cls.Config, raw, located, path)
            more = self.env.keep(more)
            self.issues += more
            if cfg is None and not more:  # only fields whose variable is missing were wrong (inspection)
                cfg = cls.Config.model_construct(**raw)
            if cfg is not None:
                out[name] = cfg
                self.model_origin[name] = (located, path)
            else:
                self.bad_models.add(name)
        return out

    def model_secrets(self, used: set[str], models: dict[str, Any]) -> None:
        """A model's ``api_key_env`` names a variable that must be set to run: say so now, not mid-run."""
        if not self.env.require:
            return
        import os

        for name in sorted(used & set(self.model_origin)):
            var = getattr(models[name], "api_key_env", None)
            if var and not os.environ.get(var):
                located, path = self.model_origin[name]
                self.issues.append(located.issue(
                    (*path, "api_key_env"), f"environment variable {var} (the API key of model '{name}') is not set",
                    f"Export it before running (export {var}=...), or remove `api_key_env` if the server needs "
                    "no key"))

    def connection(self, name: str, path: tuple[str | int, ...], role: str,
                   cache: dict[str, Connection]) -> Connection | None:
        if name in cache:
            conn = cache[name]
        else:
            if name not in available(self.base_dir):
                names = ", ".join(available(self.base_dir)) or "none"
                self.issue(path, f"unknown connector '{name}'",
                           f"Define it in {self.base_dir / 'connectors' / (name + '.yaml')} "
                           f"(defined connectors: {names})")
                return None
            try:
                conn = load_connection(self.base_dir, name, self.env)
            except PipelineError as exc:
                self.issues += exc.issues
                return None
            cache[name] = conn
        if conn.cls.role != role:
            kinds = ", ".join(k for k in CONNECTORS.names() if getattr(CONNECTORS.get(k), "role", None) == role)
            self.issue(path, f"connector '{name}' is a {conn.cls.role} ({conn.config.kind}), not a {role}",
                       f"Name a {role} connection here (kinds: {kinds or 'none'})")
            return None
        return conn

    def step(self, i: int, s: StepSpec, models: dict[str, Any], conns: dict[str, Connection]) -> Step | None:
        cls = STEPS.get(s.type)
        if cls is None:
            self.issue(("steps", i, "type"), f"unknown step type '{s.type}'", STEPS.unknown_hint(s.type))
            return None
        cfg, more = validate_model(cls.Config, s.with_, self.located, ("steps", i, "with"))
        more = self.env.keep(more)
        self.issues += more
        if cfg is None and not more:  # only fields whose variable is missing were wrong (inspection)
            cfg = cls.Config.model_construct(**s.with_)
        if cfg is None:
            return None
        ok = True
        for fld, kind in cls.references.items():
            ref = getattr(cfg, fld, None)
            if ref is None:
                continue
            path = ("steps", i, "with", fld)
            kind, _, role = kind.partition(":")  # "models:embed", "connectors:source": this field's own need
            if kind == "models":
                ok &= self._model_ref(path, str(ref), models, cls, role or cls.model_capability)
            elif self.connection(str(ref), path, role or cls.connector_role or "publisher", conns) is None:
                ok = False
        self._no_env_in_templates(i, cls)
        step = cls(s, cfg)
        # the step's own checks run even when a reference is wrong: every problem in one pass
        ctx = LoadContext(base_dir=self.base_dir, models=models, connectors={n: c.config for n, c in conns.items()})
        try:
            found = step.check(ctx)
        except (SyntaxError, UnicodeError, OSError, ValueError, RecursionError) as exc:
            # e.g. a script file that does not parse: a user mistake, never a traceback
            found = [StaticIssue((), f"cannot check this step's files: {type(exc).__name__}: {str(exc)[:200]}",
                                 "Fix the file this step points to")]
        for si in found:
            self.issue(("steps", i, "with", *si.path), si.message, si.hint)
        return step

    def _no_env_in_templates(self, i: int, cls: type[Step]) -> None:
        raw = self.located.data["steps"][i].get("with") if isinstance(self.located.data, dict) else None
        for fld in cls.templated if isinstance(raw, dict) else ():
            for path, text in _strings(raw.get(fld), ("steps", i, "with", fld)):  # type: ignore[union-attr]
                if "${env:" in text:
                    self.issue(path, "a template cannot use ${env:...}: what it renders is stored and published, "
                               "and a secret changed by the template could not be masked",
                               "Put secrets in model or connection settings (api_key_env, secret_env, headers); "
                               "write other values into the template as text")

    def _model_ref(self, path: tuple[str | int, ...], ref: str, models: dict[str, Any], cls: type[Step],
                   need: str | None) -> bool:
        if ref not in models:
            if ref not in self.bad_models:
                names = ", ".join(models) or "none"
                self.issue(path, f"unknown model '{ref}'",
                           f"Define it under `models:` (defined models: {names})")
            return False
        provider = PROVIDERS.get(models[ref].provider)
        if need and provider and need not in provider.capabilities:
            self.issue(path, f"model '{ref}' (provider {models[ref].provider}) cannot {need}",
                       f"Name a model whose provider supports '{need}'")
            return False
        return True

    def needs(self, spec: PipelineSpec, steps: dict[str, Step]) -> dict[str, list[str]]:
        first_index: dict[str, int] = {}
        for i, s in enumerate(spec.steps):
            if s.id in RESERVED_IDS or s.id.startswith("__"):
                self.issue(("steps", i, "id"), f"the step id '{s.id}' is reserved",
                           "Choose another id: `source` names the pipeline's source in `needs`, and ids "
                           "starting with '__' are internal")
            elif s.id in first_index:
                line, _ = self.located.where(("steps", first_index[s.id], "id"))
                self.issue(("steps", i, "id"), f"duplicate step id '{s.id}' (first used on line {line})",
                           "Give every step a unique id")
            else:
                first_index[s.id] = i
        needs: dict[str, list[str]] = {}
        prev = graph.SOURCE
        for i, s in enumerate(spec.steps):
            deps = s.needs if s.needs is not None else [prev]
            resolved: list[str] = []
            listed: set[str] = set()
            for j, dep in enumerate(deps):
                if dep in listed:
                    self.issue(("steps", i, "needs", j), f"'{dep}' is listed twice in needs",
                               "List each step once")
                elif dep in ("source", graph.SOURCE):
                    resolved.append(graph.SOURCE)
                elif dep not in first_index:
                    self.issue(("steps", i, "needs", j) if s.needs is not None else ("steps", i),
                               f"unknown step '{dep}' in needs",
                               f"Use one of: source, {', '.join(first_index)}")
                else:
                    resolved.append(dep)
                listed.add(dep)
            needs.setdefault(s.id, resolved or [graph.SOURCE])
            prev = s.id
        cycle = graph.find_cycle({k: [d for d in v if d != graph.SOURCE] for k, v in needs.items()})
        if cycle:
            i = first_index[cycle[0]]
            self.issue(("steps", i, "needs"), f"the steps form a cycle: {' → '.join(cycle)}",
                       "Remove one of these `needs` so data flows one way")
        return needs

    def gate(self, spec: PipelineSpec, needs: dict[str, list[str]], steps: dict[str, Step]) -> None:
        publishers = {sid for sid, st in steps.items() if st.publishes}
        approvals = {sid for sid, st in steps.items() if st.approves}
        path = graph.ungated_path(needs, publishers, approvals)
        if path:
            i = next(i for i, s in enumerate(spec.steps) if s.id == path[-1])
            self.issue(("steps", i), f"publish step '{path[-1]}' can be reached without human approval: "
                       f"{' → '.join(path)}",
                       "Add an `approval` step on this path and make the publish step need it "
                       "(every path to a publish step must pass an approval)")


def _strings(value: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string inside ``value`` with its path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [x for k, v in value.items() for x in _strings(v, (*path, k))]
    if isinstance(value, list):
        return [x for j, v in enumerate(value) for x in _strings(v, (*path, j))]
    return []


def _reviewed(b: _Builder, spec: PipelineSpec, needs: dict[str, list[str]], steps: dict[str, Step],
              conns: dict[str, Connection]) -> None:
    """A publisher may send only fields a reviewer saw: each field it names must be shown by every
    approval step upstream of the publish step (its text field or its ``context``)."""
    for i, s in enumerate(spec.steps):
        st = steps.get(s.id)
        if st is None or not st.publishes:
            continue
        approvals = [steps[a] for a in graph.upstream(needs, s.id) if a in steps and steps[a].approves]
        shown = [set(f) for a in approvals if (f := a.reviewed_fields()) is not None]
        if not shown:
            continue
        seen = set.intersection(*shown)
        for fld, kind in st.references.items():
            conn = conns.get(str(getattr(st.config, fld, ""))) if kind.startswith("connectors") else None
            if conn is None or not issubclass(conn.cls, Publisher):
                continue
            for name in conn.cls.published_fields(conn.config):
                if name not in seen:
                    b.issue(("steps", i, "with", fld),
                            f"connector '{conn.name}' publishes the field '{name}', which the reviewer does not see",
                            f"Add '{name}' to the approval step's `context` (so it is reviewed), or remove it from "
                            f"`fields` in connectors/{conn.name}.yaml")


def _defaults_from_upstream(b: _Builder, spec: PipelineSpec, needs: dict[str, list[str]],
                            steps: dict[str, Step]) -> None:
    """Fill the ``wants`` fields a step left unset from the nearest upstream step that produces the kind
    (``embed`` then ``cluster`` works with no other setting)."""
    for i, s in enumerate(spec.steps):
        st = steps.get(s.id)
        if st is None:
            continue
        for fname, kind in st.wants.items():
            if getattr(st.config, fname, None) is not None:
                continue
            found = graph.nearest(needs, s.id, lambda sid, kind=kind: steps[sid].produces == kind)  # type: ignore[misc]
            if found is None:
                makers = sorted(n for n in STEPS.names() if (c := STEPS.get(n)) is not None and c.produces == kind)
                b.issue(("steps", i, "with", fname), f"no step upstream of '{s.id}' makes {kind} for `{fname}`",
                        f"Add a step that does ({', '.join(makers) or 'none known'}) before it, "
                        f"or set `with: {{{fname}: ...}}`")
            else:
                setattr(st.config, fname, steps[found].provides(kind))


def _side_inputs(b: _Builder, spec: PipelineSpec, needs: dict[str, list[str]], steps: dict[str, Step]) -> None:
    """The steps a step reads besides its input (a voice profile...) must be upstream of it."""
    for i, s in enumerate(spec.steps):
        st = steps.get(s.id)
        for ref in st.side_inputs() if st is not None else []:
            if ref not in steps:
                b.issue(("steps", i, "with"), f"'{ref}' is not a step of this pipeline",
                        f"Name a step defined above '{s.id}' (steps: {', '.join(steps)})")
            elif ref not in graph.upstream(needs, s.id):
                b.issue(("steps", i, "with"), f"step '{ref}' is not upstream of '{s.id}': its result is not ready "
                        "when this step runs", f"Make '{s.id}' (or a step before it) need '{ref}'")


def load_plan(text: str, file: str, base_dir: Path, *, require_env: bool = True) -> Plan:
    """Parse, validate and plan a pipeline. Raises :class:`PipelineError` listing every problem.

    ``require_env=False`` is for inspecting a run whose variables are not all set in this process
    (``runs show``, ``runs export``): missing variables are then not problems.
    """
    try:
        return _load_plan(text, file, base_dir, EnvRefs(require_env))
    except PipelineError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise PipelineError.single(file, f"this file is too deeply nested or too large to check ({type(exc).__name__})",
                                   "Simplify it", line=1, col=1) from exc
    except Exception as exc:
        # A file that breaks a check is a bug in Matcha, but the user still gets a located message, not a traceback.
        raise PipelineError.single(
            file, f"internal error while checking this file: {type(exc).__name__}: {str(exc)[:200]}",
            "This is a bug in Matcha: please report it with the file (run with --log-level debug for details)",
            line=1, col=1) from exc


def _load_plan(text: str, file: str, base_dir: Path, env: EnvRefs) -> Plan:
    located = load_located(text, file)
    b = _Builder(located, base_dir, env)
    spec = b.spec()
    models = b.models(spec)
    conns: dict[str, Connection] = {}
    if spec.source is not None:
        b.connection(spec.source.connector, ("source", "connector"), "source", conns)
    steps: dict[str, Step] = {}
    conditions: dict[str, Callable[[Record], bool] | None] = {}
    for i, s in enumerate(spec.steps):
        st = b.step(i, s, models, conns)
        if st is not None and s.id not in steps:
            steps[s.id] = st
        conditions[s.id] = None
        if s.when is not None:
            try:
                conditions[s.id] = compile_condition(s.when)
            except ConditionError as exc:
                b.issue(("steps", i, "when"), str(exc),
                        "Write a condition such as \"label == 'negative'\" or "
                        "\"score >= 0.5 and lang in ['fr', 'en']\"")
    b.model_secrets({n for st in steps.values() for n in st.model_names()} | set(spec.models), models)
    needs = b.needs(spec, steps)
    b.fail_if_issues()
    _defaults_from_upstream(b, spec, needs, steps)
    b.fail_if_issues()
    b.gate(spec, needs, steps)
    _reviewed(b, spec, needs, steps, conns)
    b.fail_if_issues()
    _side_inputs(b, spec, needs, steps)
    loops = check_loops(spec, needs, steps, b.issue)
    b.fail_if_issues()
    planned = {s.id: PlannedStep(i, steps[s.id], needs[s.id], conditions[s.id]) for i, s in enumerate(spec.steps)}
    planned = unroll(spec, planned, loops)
    return Plan(spec=spec, file=file, text=text, base_dir=base_dir, steps=planned, models=models, connections=conns)
