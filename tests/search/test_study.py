"""The Optuna study: seeding, persistence, resume after an interrupt, mismatched studies."""

from __future__ import annotations

import optuna
import pytest
from search_fixtures import SMALL_SPACE, problem, tiny_shape

from autoquant.errors import UserError
from autoquant.search.dp import exact_front
from autoquant.costs import Budgets
from autoquant.search.study import SearchStudy, decode_choice, encode_choice, open_search_study
from autoquant.space import parse_space

BIG = Budgets(10**12)


def _open(tmp_path, p, name: str = "s", **kw) -> SearchStudy:
    return SearchStudy(name, f"sqlite:///{tmp_path / 'study.db'}", p, BIG, model_fingerprint="fp", seed=0, **kw)


def test_choice_codes_roundtrip() -> None:
    assert decode_choice(encode_choice([0, 3, 11, 35])) == [0, 3, 11, 35]


def test_seeds_run_first_and_only_once(tmp_path) -> None:
    p = problem(tiny_shape())
    front = exact_front(p)
    study = _open(tmp_path, p)
    n = study.seed(front, dp_points=6)
    assert n >= 4  # the uniform plans of the space plus DP points
    study.run(n)
    records = study.trials()
    assert len(records) == n and all(r.seed in ("uniform", "dp") for r in records)
    dp_codes = {encode_choice(front.choices[i].tolist()) for i in front.spread(6)}
    assert dp_codes <= {encode_choice(r.choice) for r in records}
    again = _open(tmp_path, p)
    assert again.seed(front) == 0  # a resumed study is not seeded twice


def test_interrupted_study_resumes_with_its_trials(tmp_path) -> None:
    p = problem(tiny_shape())
    study = _open(tmp_path, p, flush_every=7)
    seen = 0

    def stop_after_20() -> None:
        nonlocal seen
        seen += 1
        if seen == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        study.run(100, on_trial=stop_after_20)
    first = study.trials()
    assert len(first) == 20  # flushed on the way out, not only every 7

    resumed = _open(tmp_path, p)
    assert resumed.loaded == 20
    resumed.run(15)
    after = resumed.trials()
    assert len(after) == 35
    assert [(r.number, r.choice) for r in after[:20]] == [(r.number, r.choice) for r in first]
    assert len(resumed.working.trials) == 35  # the sampler sees the earlier trials too


def test_a_study_resumed_after_many_generations_still_samples(tmp_path) -> None:
    # Stored trials from a run that reached NSGA-II generation 5000 (~100k trials): the working
    # study must not rebuild 5000 generations of parents by recursion (it overflowed the stack
    # after ~10 resumed 1000-trial searches), and the first parents come from the whole history.
    p = problem(tiny_shape())
    first = _open(tmp_path, p)
    first.run(30)
    key = optuna.samplers.NSGAIISampler._get_generation_key()
    first.persistent.add_trials([  # the same plans again, stored as a late generation (as earlier versions did)
        optuna.trial.create_trial(values=t.values, user_attrs={**t.user_attrs, "uid": t.user_attrs["uid"] + "-late"},
                                  system_attrs={key: 5000})
        for t in first.persistent.get_trials(deepcopy=False)
    ])
    resumed = _open(tmp_path, p)
    assert resumed.loaded == 60
    resumed.run(50)
    assert len(resumed.trials()) == 110
    assert {t.system_attrs[key] for t in resumed.working.trials[:60]} == {0}  # loaded: generation 0
    assert max(t.system_attrs[key] for t in resumed.working.trials) >= 2


def test_two_workers_share_one_study(tmp_path) -> None:
    p = problem(tiny_shape())
    a, b = _open(tmp_path, p, flush_every=5), _open(tmp_path, p, flush_every=5)
    a.run(10)
    b.run(10)
    assert len(b.trials()) == 20
    assert len(b.working.trials) == 20  # b pulled a's trials at its flushes


def test_study_refuses_another_setup(tmp_path) -> None:
    _open(tmp_path, problem(tiny_shape())).run(2)
    other = parse_space({**SMALL_SPACE, "name": "other", "formats": {"default": ["fp16", "int8-pc-sym"]}})
    with pytest.raises(UserError, match="made for another setup.*space"):
        _open(tmp_path, problem(tiny_shape(), other))
    with pytest.raises(UserError, match="context"):
        _open(tmp_path, problem(tiny_shape(), context=512))


def test_unnamed_search_of_another_setup_gets_its_own_study(tmp_path) -> None:
    """An upgraded or edited space must not stop `autoquant search` with the default name: the old
    study stays as it was, the new setup gets (and on a rerun resumes) a study of its own."""
    def storage_for(name: str) -> str:
        (tmp_path / name).mkdir(exist_ok=True)
        return f"sqlite:///{tmp_path / name / 'study.db'}"

    old, new = problem(tiny_shape()), problem(tiny_shape(), context=512)
    first = open_search_study(None, "default-b1", storage_for, old, "fp")
    assert (first.name, first.note) == ("default-b1", None)
    SearchStudy(first.name, first.storage, old, BIG, model_fingerprint="fp", seed=0).run(3)

    other = open_search_study(None, "default-b1", storage_for, new, "fp")
    assert other.name.startswith("default-b1-") and other.name != first.name
    assert "another setup (context: " in other.note and repr(other.name) in other.note
    assert open_search_study(None, "default-b1", storage_for, new, "fp").name == other.name  # resumable
    assert open_search_study(None, "default-b1", storage_for, old, "fp") == first  # the old one, untouched
    kept = optuna.load_study(study_name="default-b1", storage=first.storage)
    assert len(kept.trials) > 0 and kept.user_attrs["autoquant_study"]["context"] == old.context
    with pytest.raises(UserError, match="made for another setup"):  # a name the user chose is not renamed
        open_search_study("default-b1", "default-b1", storage_for, new, "fp")


def test_measurements_are_stored_as_trials(tmp_path) -> None:
    p = problem(tiny_shape())
    study = _open(tmp_path, p)
    study.run(3)
    rec = study.trials()[0]
    m = {"perplexity": 10.0, "kl": 0.01, "ppl_change": 0.02, "tokens": 100, "text": "t",
         "text_fingerprint": "abc", "seconds": 1.0, "eval_tokens": 100}
    study.record_measurement(rec.choice, p.costs(rec.choice), m, rec.number)
    reopened = _open(tmp_path, p)
    assert reopened.measurements()[(encode_choice(rec.choice), "abc", 100)] == m
    assert len(reopened.trials()) == 3  # measurement records are not search trials
    study.store_baseline("int8-pc-sym", m)
    assert reopened.baseline("int8-pc-sym", "abc", 100) == m


def test_bad_storage_url_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="^storage notadb://x") as e:
        SearchStudy("s", "notadb://x", problem(tiny_shape()), BIG, model_fingerprint="fp")
    assert e.value.for_cli().startswith("--storage notadb://x")


def test_unknown_sampler_is_a_user_error(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown sampler"):
        _open(tmp_path, problem(tiny_shape()), sampler="cmaes")


def test_a_new_budget_is_seeded_with_its_exact_optimum(tmp_path) -> None:
    p = problem(tiny_shape())
    front = exact_front(p)
    study = _open(tmp_path, p)
    study.run(study.seed(front, dp_points=4))
    # A tight budget between the smallest and the largest plan: the DP optimum under it is seeded.
    mid = p.costs(front.choices[len(front) // 2].tolist()).memory_bytes
    tight = SearchStudy("s", f"sqlite:///{tmp_path / 'study.db'}", p, Budgets(mid), model_fingerprint="fp")
    n = tight.seed(front, dp_points=4)
    assert n >= 1
    tight.run(n)
    best = front.last_within(lambda i: p.costs(front.choices[i].tolist()).memory_bytes <= mid)
    assert encode_choice(front.choices[best].tolist()) in {encode_choice(r.choice) for r in tight.trials()}
    assert tight.seed(front) == 0


def test_unusable_postgres_url_is_a_user_error() -> None:
    # Without the driver installed, or without a server listening: either way one clear line.
    with pytest.raises(UserError, match="^storage postgresql"):
        SearchStudy("s", "postgresql://nobody@127.0.0.1:1/none", problem(tiny_shape()), BIG, model_fingerprint="fp")
