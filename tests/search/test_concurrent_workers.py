"""Three `autoquant search` processes on one study, through a real PostgreSQL server and
through Optuna's JournalStorage over one shared file: no trial lost or stored twice, and the
front of a final run is the front of every trial the workers stored.
"""

from __future__ import annotations

import json

import numpy as np
import optuna
import pytest
from cli_processes import SEARCH_ARGS
from optuna.trial import TrialState
from pg_server import postgres_bin, postgres_server

from autoquant.search.front import pareto_mask
from autoquant.search.storage import open_storage

pytestmark = pytest.mark.ray  # the shared profile is made by one Ray worker first

WORKERS = 3
TRIALS = 120  # per worker: two flushes mid-run, one at the end


@pytest.fixture(scope="module")
def postgres_url():
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (.ci/run installs it)")
    with postgres_server() as url:
        yield url


def _stored(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    s = optuna.load_study(study_name=study, storage=open_storage(storage))
    return [t for t in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("kind") == "search"]


def _workers_share_one_study(env, storage: str, tmp_path) -> None:
    study = "shared"
    procs = [env.start("search", "--model", str(env.model), *SEARCH_ARGS, "--json", "--storage", storage,
                       "--study", study, "--trials", str(TRIALS), "--seed", str(i),
                       "--runs-dir", str(tmp_path / f"runs{i}"))
             for i in range(WORKERS)]

    results = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0 and "Traceback" not in err, err[-3000:]
        results.append(json.loads(out))

    trials = _stored(storage, study)
    uids = [t.user_attrs["uid"] for t in trials]
    assert len(uids) == len(set(uids)), "a trial was stored twice"
    # Every worker's trials are there (its seeds count among its --trials).
    expected = WORKERS * TRIALS
    assert all(r["study"]["added"] >= TRIALS for r in results)
    assert len(trials) == expected, f"{expected - len(trials)} trials lost"

    final = env.search("--storage", storage, "--study", study, "--trials", "0", "--runs-dir", str(tmp_path / "final"))
    assert final["study"]["trials"] == expected and final["study"]["added"] == 0
    # The final front is the Pareto set of all stored trials (24 GB: all are within budget).
    values = np.array([t.values for t in trials])
    front = {tuple(np.round(v, 12)) for v in values[pareto_mask(values)]}
    got = {tuple(np.round([r["proxy_kl"], r["memory_bytes"], r["decode_s"]], 12)) for r in final["front"]}
    assert got == front


def test_three_workers_on_postgresql(profiled_env, postgres_url, tmp_path):
    _workers_share_one_study(profiled_env, postgres_url, tmp_path)


def test_three_workers_on_a_shared_journal_file(profiled_env, tmp_path):
    _workers_share_one_study(profiled_env, f"journal://{tmp_path / 'shared' / 'study.log'}", tmp_path)
