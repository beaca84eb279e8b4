"""The Optuna study: storage, sampler, seeding, the trial loop, and what survives a crash.

One categorical parameter per searched tie group (the format string). Each trial is scored
from the precomputed problem (about a millisecond), with objectives

    (proxy KL, total memory bytes[, decode seconds])      all minimised

and the budgets as constraints (`Trial.set_constraint`): the sampler prefers feasible plans but
still learns from the rest. Before the first trial the study is seeded with the uniform plans
of the space and with exact DP solutions of the proxy spread over memory, so the front
starts at the optimum of the proxy and the sampler works on the latency trade-off and the gaps.

Two studies, one truth. Optuna's RDB storage writes one row per parameter through the ORM:
with ~120 tie groups that is ~120 ms a trial on SQLite, a hundred times the cost of scoring
it. So the sampler runs on an in-memory *working* study, and every `flush_every` trials (and
on exit, Ctrl-C included) the new trials are written to the *persistent* study in compact
form: values, constraints and the plan as one attribute (one base-36 digit per tie group,
decoded with the legend in the study's `autoquant_groups` attribute). Reopening a study loads
its trials back into a working study, so a rerun with the same name resumes with every
flushed trial; a hard kill loses at most the unflushed ones. Several workers may share one
storage (PostgreSQL, or SQLite for a few): each flush also pulls the trials others wrote.

Measured plans are stored as trials too (kind "measurement", the measurement in user
attributes), because finished Optuna trials are immutable.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import FrozenTrial, TrialState

from autoquant.costs import Budgets, PlanCosts
from autoquant.errors import UserError
from autoquant.search.dp import ProxyFront
from autoquant.search.objectives import SearchProblem
from autoquant.search.storage import open_storage

SAMPLERS = ("nsga2", "tpe", "random")
DEFAULT_SAMPLER = "nsga2"
POPULATION = 20  # measured: best unseeded hypervolume at 300 trials among 10/20/30/50 (see report)
DP_SEEDS = 32
FLUSH_EVERY = 50

_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_CONSTRAINTS = "constraints"
_KIND = "kind"  # "search" (sampled) or "measurement" (a measured front plan)
_STUDY_KEY = "autoquant_study"  # study user attr: what the study was made for
_GROUPS_KEY = "autoquant_groups"  # study user attr: legend of the plan codes
_SEEDED = "autoquant_seeded"
# The trial system attr NSGA-II groups its generations by. Optuna exposes its name only through
# this private class method (stable through 5.x; pyproject pins optuna < 6, and
# tests/search/test_study.py fails if resumed trials stop landing in generation 0).
_NSGA_GENERATION = optuna.samplers.NSGAIISampler._get_generation_key()

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- pieces ----------------------------------------------------------------------------
def problem_signature(problem: SearchProblem, model_fingerprint: str) -> dict[str, Any]:
    """What a study is bound to: the meaning of its plan codes changes with any of these."""
    space = json.dumps(problem.space.to_dict(), sort_keys=True)
    return {
        "model": problem.model_name,
        "model_fingerprint": model_fingerprint,
        "space": problem.space.name,
        "space_hash": hashlib.sha256(space.encode()).hexdigest()[:12],
        "batch": problem.batch,
        "context": problem.context,
        "objectives": 3 if problem.latency is not None else 2,
    }


def encode_choice(choice: Sequence[int]) -> str:
    return "".join(_DIGITS[c] for c in choice)


def decode_choice(code: str) -> list[int]:
    return [_DIGITS.index(ch) for ch in code]


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """NSGA-II by default, measured against TPE and random search (see the issue report):
    with seeds all reach the same front; unseeded, NSGA-II with a small population finds
    the best front in few trials, and at ~5 ms a trial it is 4x cheaper than multivariate TPE.
    """
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(population_size=POPULATION, seed=seed)
    if name == "tpe":
        return optuna.samplers.TPESampler(multivariate=True, seed=seed, n_startup_trials=POPULATION)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"unknown sampler {name!r}; accepted: {', '.join(SAMPLERS)}")


def default_storage(runs_dir: str | Path) -> str:
    return f"sqlite:///{Path(runs_dir) / 'study.db'}"


def objective_values(problem: SearchProblem, costs: PlanCosts) -> list[float]:
    values = [costs.proxy_kl, float(costs.memory_bytes)]
    if problem.latency is not None:
        values.append(costs.decode_s)
    return values


def setup_digest(problem: SearchProblem, model_fingerprint: str) -> str:
    """Six hex digits of everything a study is bound to: names a study for exactly this setup."""
    signature = json.dumps(problem_signature(problem, model_fingerprint), sort_keys=True)
    return hashlib.sha256(signature.encode()).hexdigest()[:6]


class OtherSetupError(UserError):
    """The named study exists and was made for another setup (model, space, batch, context)."""

    def __init__(self, name: str, differences: str) -> None:
        super().__init__(
            f"study {name!r} was made for another setup ({differences}); "
            "pass a new --study name, or the same model, space, batch and context to resume it"
        )
        self.differences = differences


def open_persistent(name: str, storage: str, problem: SearchProblem, model_fingerprint: str) -> optuna.Study:
    """The stored study, created or loaded; UserError for a bad URL, OtherSetupError for a study
    made for another setup.

    Needs only the problem's shape and space, so the CLI calls it before profiling too.
    """
    directions = ["minimize"] * (3 if problem.latency is not None else 2)
    study = _create(name, storage, directions)
    signature = problem_signature(problem, model_fingerprint)
    existing = study.user_attrs.get(_STUDY_KEY)
    if existing is None:
        study.set_user_attr(_STUDY_KEY, signature)
        study.set_user_attr(_GROUPS_KEY, [[g.label, [str(f) for f in g.choices]] for g in problem.groups])
    elif existing != signature:
        diff = [k for k in signature if existing.get(k) != signature[k]]
        raise OtherSetupError(name, ", ".join(f"{k}: {existing.get(k)!r} there, {signature[k]!r} now" for k in diff))
    return study


@dataclass(frozen=True)
class OpenedStudy:
    name: str
    storage: str
    note: str | None  # why the name is not the one asked for; None when it is


def open_search_study(requested: str | None, default: str, storage_for: Callable[[str], str],
                      problem: SearchProblem, model_fingerprint: str) -> OpenedStudy:
    """The study a search writes to, opened (checked) before minutes of profiling.

    A --study name is the user's: a study of that name made for another setup is an error. An
    unnamed search takes the readable default name; when that study holds another setup (an
    edited or upgraded space, other weights under the same path) the search must not fail nor
    overwrite it, so it takes the default name plus this setup's digest, and says so. The same
    setup maps to the same name again, so a rerun resumes it.
    """
    name = requested or default
    try:
        open_persistent(name, storage_for(name), problem, model_fingerprint)
        return OpenedStudy(name, storage_for(name), None)
    except OtherSetupError as e:
        if requested is not None:
            raise
        differences = e.differences
    own = f"{default}-{setup_digest(problem, model_fingerprint)}"
    open_persistent(own, storage_for(own), problem, model_fingerprint)
    note = (f"study {default!r} holds a search of another setup ({differences}), kept as it was; "
            f"this search is study {own!r} (pass --study to name it)")
    return OpenedStudy(own, storage_for(own), note)


def _create(name: str, storage: str, directions: list[str]) -> optuna.Study:
    try:
        return optuna.create_study(study_name=name, storage=open_storage(storage), directions=directions,
                                   load_if_exists=True)
    except ValueError as e:  # an existing study with other directions
        raise UserError(f"study {name!r} in {storage}: {e}") from None
    except ImportError as e:  # e.g. a PostgreSQL URL without its driver installed
        raise UserError(f"{{storage}} {storage}: {e}", params=("storage",)) from None
    except Exception as e:  # SQLAlchemy: unreachable server, malformed URL
        if type(e).__module__.startswith(("sqlalchemy", "optuna")):
            raise UserError(f"{{storage}} {storage}: {str(e).splitlines()[0]}", params=("storage",)) from None
        raise


@dataclass(frozen=True)
class TrialRecord:
    """A completed search trial as stored: its number in the persistent study and its plan."""

    number: int
    choice: list[int]
    seed: str | None  # "uniform" / "dp" for seeded trials


# ---- the study ---------------------------------------------------------------------------
class SearchStudy:
    """A persistent Optuna study with an in-memory working copy the sampler runs on."""

    def __init__(
        self,
        name: str,
        storage: str,
        problem: SearchProblem,
        budgets: Budgets,
        *,
        model_fingerprint: str,
        sampler: str = DEFAULT_SAMPLER,
        seed: int | None = None,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        self.name, self.storage, self.problem, self.budgets = name, storage, problem, budgets
        self.flush_every = flush_every
        self.sampler_name = sampler
        directions = ["minimize"] * (3 if problem.latency is not None else 2)
        self.persistent = open_persistent(name, storage, problem, model_fingerprint)
        self.working = optuna.create_study(directions=directions, sampler=make_sampler(sampler, seed))
        self._distributions = {
            g.label: CategoricalDistribution([str(f) for f in g.choices]) for g in problem.searched_groups
        }
        self._known: set[str] = set()  # uids present in the working study
        self._pending: list[FrozenTrial] = []  # finished in working, not yet flushed
        self._seeded_now: set[str] = set()
        self.loaded = self._pull()

    # ---- persistence ---------------------------------------------------------------------
    def _pull(self) -> int:
        """Copy persistent search trials not yet in the working study; returns how many."""
        new = []
        for t in self.persistent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            uid = t.user_attrs.get("uid")
            if t.user_attrs.get(_KIND) != "search" or uid in self._known:
                continue
            choice = decode_choice(t.user_attrs["plan"])
            costs = self.problem.costs(choice)  # re-scored: the budgets or table may have changed
            params = self.problem.params_of(choice)
            frozen = optuna.trial.create_trial(
                params=params,
                distributions={k: self._distributions[k] for k in params},
                values=objective_values(self.problem, costs),
                user_attrs={"uid": uid, "number": t.number},
                # Stored trials enter NSGA-II's generation 0 here, whatever generation the run that
                # made them reached: its first parents are then the elite of the whole history. A
                # stored generation number would make the sampler rebuild every earlier
                # generation's parents (its cache lives in the study it ran in) by recursion,
                # which overflows Python's stack after ~500 generations (~10k trials).
                system_attrs={_NSGA_GENERATION: 0},
            )
            for key, value in costs.violations(self.budgets).items():
                frozen.set_constraint(key, value)
            new.append(frozen)
            self._known.add(uid)
        if new:
            self.working.add_trials(new)
        return len(new)

    def flush(self) -> None:
        """Write finished working trials to the persistent study, then pull other workers' trials."""
        pending, self._pending = self._pending, []
        records = []
        for t in pending:
            choice = self.problem.choice_from_params(t.params)
            records.append(
                optuna.trial.create_trial(
                    values=t.values,
                    user_attrs={
                        _KIND: "search",
                        "uid": t.user_attrs["uid"],
                        "plan": encode_choice(choice),
                        _CONSTRAINTS: t.constraints,
                        **({"seed": t.user_attrs["seed"]} if "seed" in t.user_attrs else {}),
                    },
                )
            )
        if records:
            self.persistent.add_trials(records)
        # A seed set counts as done once one of its trials is stored (a crash before re-seeds).
        keys = {t.user_attrs["seed_key"] for t in pending if "seed_key" in t.user_attrs}
        done = list(self.persistent.user_attrs.get(_SEEDED, []))
        if keys - set(done):
            self.persistent.set_user_attr(_SEEDED, done + sorted(keys - set(done)))
        self._pull()

    # ---- seeding and the loop -----------------------------------------------------------------
    def seed(self, proxy_front: ProxyFront | None, dp_points: int = DP_SEEDS) -> int:
        """Enqueue the space's uniform plans and exact DP solutions, once per study and budget.

        DP points are spread over the part of the front within the memory budget, plus the
        exact proxy optimum at the budget and, with a quality budget, the least-memory plan
        meeting it: where the recommendation will come from. A resumed study with a new budget
        is seeded again for it. Returns the number enqueued (0 when seeded before).
        """
        key = f"memory={self.budgets.memory_bytes},kl={self.budgets.proxy_kl_limit()}"
        if key in self.persistent.user_attrs.get(_SEEDED, []) or key in self._seeded_now:
            return 0
        seeds: list[tuple[list[int], str]] = []
        if not self.persistent.user_attrs.get(_SEEDED):
            for fmt in self.problem.space.all_formats():
                choice = self.problem.uniform_choice(fmt)
                if choice is not None:
                    seeds.append((choice, "uniform"))
        if proxy_front is not None:
            def fits(i: int) -> bool:
                return self.problem.costs(proxy_front.choices[i].tolist()).memory_bytes <= self.budgets.memory_bytes

            last = proxy_front.last_within(fits)
            if last is not None:
                picks = proxy_front.spread(dp_points, upto=last) + [last]
                limit = self.budgets.proxy_kl_limit()
                if limit is not None:
                    meets = [i for i in range(last + 1) if proxy_front.kl[i] <= limit]
                    picks += meets[:1]
                seeds.extend((proxy_front.choices[i].tolist(), "dp") for i in picks)
        seen: set[str] = set()
        for choice, kind in seeds:
            code = encode_choice(choice)
            if code in seen:
                continue
            seen.add(code)
            self.working.enqueue_trial(self.problem.params_of(choice), user_attrs={"seed": kind, "seed_key": key})
        self._seeded_now.add(key)
        return len(seen)

    def run(self, n_trials: int, on_trial: Callable[[], None] | None = None) -> None:
        """Ask/tell `n_trials` proxy-scored trials; flushes every `flush_every` and on any exit."""
        try:
            for _ in range(n_trials):
                trial = self.working.ask(self._distributions)
                choice = self.problem.choice_from_params(trial.params)
                costs = self.problem.costs(choice)
                uid = uuid.uuid4().hex
                trial.set_user_attr("uid", uid)
                for key, value in costs.violations(self.budgets).items():
                    trial.set_constraint(key, value)
                self.working.tell(trial, objective_values(self.problem, costs))
                self._known.add(uid)
                self._pending.append(self.working.get_trials(deepcopy=False)[trial.number])
                if len(self._pending) >= self.flush_every:
                    self.flush()
                if on_trial is not None:
                    on_trial()
        finally:
            self.flush()

    # ---- reading back ----------------------------------------------------------------------------
    def trials(self) -> list[TrialRecord]:
        """Completed search trials of the persistent study (measurement records excluded)."""
        out = []
        for t in self.persistent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get(_KIND) == "search":
                out.append(TrialRecord(t.number, decode_choice(t.user_attrs["plan"]), t.user_attrs.get("seed")))
        return out

    def record_measurement(self, choice: Sequence[int], costs: PlanCosts, measured: dict, of_trial: int | None) -> None:
        """Store a measured plan as a trial: same plan and proxy values, the measurement in its
        user attributes (the trial it measures is finished, so immutable)."""
        self.persistent.add_trial(
            optuna.trial.create_trial(
                values=objective_values(self.problem, costs),
                user_attrs={
                    _KIND: "measurement",
                    "plan": encode_choice(choice),
                    "measured": measured,
                    "measures_trial": of_trial,
                },
            )
        )

    def measurements(self) -> dict[tuple[str, str, int], dict]:
        """Measurements so far keyed by (plan code, text fingerprint, requested eval tokens)."""
        out = {}
        for t in self.persistent.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if t.user_attrs.get(_KIND) == "measurement":
                m = t.user_attrs["measured"]
                out[(t.user_attrs["plan"], m["text_fingerprint"], m.get("eval_tokens"))] = m
        return out

    def baseline(self, label: str, text_fingerprint: str, eval_tokens: int) -> dict | None:
        return self.persistent.user_attrs.get(f"baseline:{label}:{text_fingerprint}:{eval_tokens}")

    def store_baseline(self, label: str, measured: dict) -> None:
        """Uniform baselines may lie outside the space, so they live on the study, not as trials."""
        key = f"baseline:{label}:{measured['text_fingerprint']}:{measured['eval_tokens']}"
        self.persistent.set_user_attr(key, measured)


def proxy_points(problem: SearchProblem, choices: list[list[int]]) -> np.ndarray:
    """(proxy KL, weight bytes) of each plan: the axes of the DP front and the hypervolume."""
    pts = [(problem.proxy_kl(c), float(problem.weight_bytes(c))) for c in choices]
    return np.asarray(pts, dtype=float).reshape(-1, 2)
