"""A full disk, for real: a file-size limit (RLIMIT_FSIZE) on a child process makes its writes
fail with EFBIG. Every result file is then the old one or the new one, never half of one,
no temporary file is left behind, and the error is one line."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import textwrap

import pytest

LIMIT = 4096  # bytes: any file a write would grow past this fails


def _limited():
    resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, LIMIT))


def _child(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          preexec_fn=_limited, timeout=120)


def _only(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.mark.parametrize("kind", ["json", "png"])
def test_full_disk_keeps_the_old_file(tmp_path, kind):
    target = tmp_path / f"result.{kind}"
    old = b'{"old": true}\n' if kind == "json" else b"\x89PNG old"
    target.write_bytes(old)
    write = {
        "json": f"write_json({str(target)!r}, {{'x': 'y' * 100000}})",
        "png": f"""
            import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt, numpy as np
            fig = plt.figure(figsize=(12, 12)); plt.imshow(np.random.rand(400, 400))
            write_atomic({str(target)!r}, lambda tmp: fig.savefig(tmp, dpi=100))""",
    }[kind]
    r = _child(f"""
        import sys
        from autoquant.errors import OutputError
        from autoquant.jsonfile import write_atomic, write_json
        try:
{textwrap.indent(textwrap.dedent(write), ' ' * 12)}
        except OutputError as e:
            print(e, file=sys.stderr); sys.exit(e.exit_code)
        """)
    assert r.returncode == 1, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and str(target) in r.stderr and "unchanged" in r.stderr
    assert target.read_bytes() == old  # the old file, whole
    assert _only(tmp_path) == [target.name]  # no temporary file left


def test_full_disk_mid_append_tears_one_line_which_is_skipped(tmp_path):
    from autoquant.sensitivity.cache import CacheKey, ProfileCache
    from autoquant.sensitivity.proxy import ProxyParts

    key = CacheKey("m", "c", 1024, 256, "1")
    cache = ProfileCache(key, tmp_path)
    cache.add_proxies("l0", {("int8-pc-sym", "rtn"): ProxyParts(1.0, 2.0, 3.0)}, {})
    size = cache.path.stat().st_size
    r = _child(f"""
        import sys
        from autoquant.errors import OutputError
        from autoquant.sensitivity.cache import CacheKey, ProfileCache
        from autoquant.sensitivity.proxy import ProxyParts
        cache = ProfileCache(CacheKey("m", "c", 1024, 256, "1"), {str(tmp_path)!r})
        try:
            cache.add_proxies("l1", {{(f"int4-g{{g}}-asym", "rtn"): ProxyParts(1.0, 2.0, 3.0) for g in range(400)}}, {{"rtn": 1.0}})
        except OutputError as e:
            print(e, file=sys.stderr); sys.exit(e.exit_code)
        """)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and "results finished before are kept" in r.stderr
    assert size < cache.path.stat().st_size <= LIMIT  # part of the line made it: a torn line
    again = ProfileCache(key, tmp_path)  # skips the torn line (one warning), keeps every whole one
    kept = set(again.proxies())
    assert ("l0", "int8-pc-sym", "rtn") in kept and len(kept) < 401
    again.add_proxies("l2", {("int8-pc-sym", "rtn"): ProxyParts(1.0, 2.0, 3.0)}, {})  # appends after the torn line
    assert set(ProfileCache(key, tmp_path).proxies()) == kept | {("l2", "int8-pc-sym", "rtn")}


@pytest.mark.ray
def test_cli_profile_on_a_full_disk(profiled_env, tmp_path):
    env = profiled_env
    out = tmp_path / "run"
    args = ("profile", "--model", str(env.model), "--workers", "1", "--out", str(out), "--no-progress")
    first = env.run(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"sensitivity.json", "sensitivity.png"}
    r = env.run(*args, preexec_fn=_limited)  # everything is cached: only the two outputs are written
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "sensitivity" in r.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    json.loads((out / "sensitivity.json").read_text())
