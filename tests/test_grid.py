"""Grid files (drgrpo_cli.sweep.grid): the bundled grids, expansion, run-dir naming, errors, grid.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from drgrpo_cli.config import TrainConfig
from drgrpo_cli.sweep import grid as gridmod
from drgrpo_cli.sweep.ablate import ablate
from drgrpo_cli.sweep.grid import BUNDLED_GRIDS, GridError, load_grid, resolve_grid_path, slugify
from drgrpo_cli.sweep.summary import arm_summaries
from sweep_helpers import REPO, SMALL, fake_train, quiet, write

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

def test_packaged_grids_are_the_ablations_folder():
    """One copy of each grid: ablations/*.toml, installed as the package drgrpo_cli.grids (pyproject.toml)."""
    repo = sorted(p.name for p in (REPO / "ablations").glob("*.toml"))
    assert repo == sorted(f"{n}.toml" for n in BUNDLED_GRIDS)
    assert not (REPO / "drgrpo_cli" / "data").exists() and not (REPO / "drgrpo_cli" / "grids").exists()
    from drgrpo_cli.cli.ablate import GRID_HELP

    assert all(n in GRID_HELP for n in BUNDLED_GRIDS)  # drgrpo ablate --help names each of them
    for n in BUNDLED_GRIDS:  # the bundled grids read by name are these files
        assert resolve_grid_path(n).read_bytes() == (REPO / "ablations" / f"{n}.toml").read_bytes(), n
    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setup["package-dir"] == {"drgrpo_cli.grids": "ablations"}
    assert setup["package-data"]["drgrpo_cli.grids"] == ["*.toml"]
    # the packages are listed, not found: every package of the source tree must be in the list
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "drgrpo_cli").rglob("__init__.py")}
    assert sorted(setup["packages"]) == sorted(found | {"drgrpo_cli.grids"})

def test_default_grid_resolution(tmp_path, monkeypatch):
    assert resolve_grid_path(None) == gridmod.grids_dir() / "bias-2x2.toml"
    assert resolve_grid_path("loss-modes") == gridmod.grids_dir() / "loss-modes.toml"
    assert resolve_grid_path("loss-modes.toml") == gridmod.grids_dir() / "loss-modes.toml"
    own = write(tmp_path, SMALL, "loss-modes.toml")
    monkeypatch.chdir(tmp_path)
    assert resolve_grid_path("loss-modes.toml") == Path("loss-modes.toml")  # an existing file wins
    assert resolve_grid_path(own) == own
    with pytest.raises(GridError, match="no such grid file"):
        resolve_grid_path("nope")


def test_bias_2x2_grid():
    g = load_grid(None)
    assert g.name == "bias-2x2" and g.seeds == (0, 1, 2)  # 3 paired seeds by default
    assert [(r.name, r.arm) for r in g.runs] == [  # seed-major: every arm of seed 0 first
        (f"{slug}__seed{s}", arm) for s in (0, 1, 2) for slug, arm in (
            ("grpo", "GRPO"), ("std-only-fix", "std-only fix"), ("length-only-fix", "length-only fix"),
            ("dr-grpo", "Dr. GRPO"))]
    knobs = {r.arm: (r.config.adv_scale, r.config.loss_agg) for r in g.runs}
    assert knobs == {"GRPO": ("group", "seq_mean"), "std-only fix": ("none", "seq_mean"),
                     "length-only fix": ("group", "max_tokens"), "Dr. GRPO": ("none", "max_tokens")}
    base = TrainConfig()
    for r in g.runs:  # base = the built-in task defaults, 60 steps with an eval every 15
        assert r.config.task == "builtin" and r.config.lr == base.lr and r.config.group_size == base.group_size
        assert (r.config.steps, r.config.eval_every) == (60, 15)


def test_loss_modes_grid():
    g = load_grid("loss-modes")
    assert g.seeds == (0, 1, 2)
    assert [(r.name, r.arm, r.config.adv_scale, r.config.loss_agg) for r in g.runs if r.seed == 0] == [
        ("grpo__seed0", "GRPO", "group", "seq_mean"),
        ("dapo-token_mean__seed0", "DAPO (token_mean)", "group", "token_mean"),
        ("dr-grpo-loss-max_tokens__seed0", "Dr. GRPO loss (max_tokens)", "group", "max_tokens"),
        ("seq_sum__seed0", "seq_sum", "group", "seq_sum")]


def test_qwen_grid_validates():
    g = load_grid("qwen-math-1.5b-2x2")
    assert len(g.runs) == 4
    for r in g.runs:
        c = r.config.validate()
        assert (c.model, c.task, c.dataset, c.eval_datasets, c.template) == (
            "Qwen/Qwen2.5-Math-1.5B", "math", "data/math_lvl3to5.jsonl", ("data/math500.jsonl",), "qwen_math")
        assert (c.backend, c.device, c.dtype) == ("vllm", "cuda", "bfloat16")
        assert (c.group_size, c.prompts_per_step, c.max_tokens, c.lr, c.beta, c.epsilon, c.temperature,
                c.eval_every, c.steps) == (8, 128, 3000, 1e-6, 0.0, 0.2, 1.0, 16, 150)
        assert c.loss_max_tokens == 3000


def test_slugify():
    assert slugify("GRPO") == "grpo"
    assert slugify("Dr. GRPO") == "dr-grpo"
    assert slugify("std-only fix") == "std-only-fix"
    assert slugify("DAPO (token_mean)") == "dapo-token_mean"
    assert slugify("lr 0.001") == "lr-0.001"
    assert slugify("  ##  ") == ""


def test_unnamed_points_and_seeds_and_sets(tmp_path):
    p = write(tmp_path, """
        seeds = [0, 1]
        [base]
        steps = 3
        [axes]
        adv_scale = ["group", "none"]
        loss_agg = ["seq_mean", "max_tokens"]
        lr = [0.001]
    """)
    g = load_grid(p, sets=["steps=7", "max_tokens=32"])
    assert g.name == "g"  # file stem
    names = [r.name for r in g.runs]
    assert names[:4] == ["group-seq_mean-0.001__seed0", "group-max_tokens-0.001__seed0",
                         "none-seq_mean-0.001__seed0", "none-max_tokens-0.001__seed0"]
    assert names[4:] == [n.replace("seed0", "seed1") for n in names[:4]]  # seed-major
    assert [r.arm for r in g.runs[:4]] == ["GRPO (lr=0.001)", "length-only fix (lr=0.001)",
                                           "std-only fix (lr=0.001)", "Dr. GRPO (lr=0.001)"]
    assert all(r.config.steps == 7 and r.config.max_tokens == 32 for r in g.runs)
    assert [r.config.seed for r in g.runs] == [0] * 4 + [1] * 4
    assert g.runs[0].overrides == {"adv_scale": "group", "loss_agg": "seq_mean", "lr": 0.001}
    g2 = load_grid(p, seeds=[3])
    assert [r.name for r in g2.runs][0] == "group-seq_mean-0.001__seed3" and len(g2.runs) == 4
    j = g.to_json()
    assert j["arms"]["none-max_tokens-0.001__seed1"] == "Dr. GRPO (lr=0.001)"
    assert j["runs"][0]["overrides"] == {"adv_scale": "group", "loss_agg": "seq_mean", "lr": 0.001}


def test_arms_only_grid(tmp_path):
    p = write(tmp_path, """
        name = "presets"
        [base]
        steps = 3
        [arms]
        GRPO = {adv_scale="group", loss_agg="seq_mean"}
        "DAPO-ish" = {adv_scale="group", loss_agg="token_mean", epsilon_high=0.28}
        [arms."Dr. GRPO"]
        adv_scale = "none"
        loss_agg = "max_tokens"
        lr = 0.01
    """)
    g = load_grid(p)
    assert [(r.name, r.arm) for r in g.runs] == [("grpo__seed0", "GRPO"), ("dapo-ish__seed0", "DAPO-ish"),
                                                 ("dr-grpo__seed0", "Dr. GRPO")]
    assert g.runs[1].config.epsilon_high == 0.28 and g.runs[2].config.lr == 0.01


def test_unnamed_points_are_labelled_by_every_objective_knob(tmp_path):
    """A point's label names the other objective knobs off their defaults (from the axes or [base]) and the
    axis values that are not knobs, so points that differ only in such a knob get different labels."""
    p = write(tmp_path, """
        [base]
        steps = 3
        adv_scale = "none"
        [axes]
        loss_agg = ["seq_mean", "max_tokens"]
        length_alpha = [0.0, 1.0]
        lr = [0.001]
    """)
    assert [r.arm for r in load_grid(p).runs] == [
        "std-only fix (lr=0.001)", "std-only fix (length_alpha=1, lr=0.001)", "Dr. GRPO (lr=0.001)",
        "Dr. GRPO (length_alpha=1, lr=0.001)"]
    p = write(tmp_path, """
        [base]
        steps = 3
        ratio_level = "sequence"
        [axes]
        adv_scale = ["group", "none"]
    """)
    assert [r.arm for r in load_grid(p).runs] == ["GRPO (ratio_level=sequence)", "std-only fix (ratio_level=sequence)"]


def test_lists_and_types_are_coerced(tmp_path):
    p = write(tmp_path, """
        [base]
        lr = 1
        task = "math"
        dataset = "d.jsonl"
        eval_datasets = ["a.jsonl", "b.jsonl"]
        [arms]
        a = {}
    """)
    c = load_grid(p).runs[0].config
    assert c.lr == 1.0 and isinstance(c.lr, float) and c.eval_datasets == ("a.jsonl", "b.jsonl")


ERRORS = [
    # (grid text, line, fragment of the message)
    ('name = "x"\n[axes]\nadv_scale = ["group" "none"]\n', 3, "TOML syntax error: Unclosed array"),
    ('[axes]\nadv_scale = ["group",\n', 2, "TOML syntax error"),
    ('[base]\nsteps = 3\n[base]\nlr = 1\n', 3, "twice"),
    ('name = "x"\nstepz = 3\n[axes]\nadv_scale = ["group"]\n', 2, "unknown top-level key 'stepz'"),
    ('name = "x"\nsteps = 3\n[axes]\nadv_scale = ["group"]\n', 2, "config fields go in [base]"),
    ('[base]\nsteps = 3\nlrr = 0.1\n[axes]\nadv_scale = ["group"]\n', 3, "unknown config key 'lrr'"),
    ('[base]\nsteps = 3\n[axes]\nadv_scale = ["group"]\nloss_aggr = ["seq_mean"]\n', 5, "unknown config key 'loss_aggr'"),
    ('[axes]\nadv_scale = ["group", "none"]\nloss_agg = []\n', 3, "empty"),
    ('[axes]\nadv_scale = "group"\n', 2, "must be a list"),
    ('[base]\nsteps = "many"\n[axes]\nadv_scale = ["group"]\n', 2, "steps"),
    ('[base]\nsteps = 2.5\n[axes]\nadv_scale = ["group"]\n', 2, "expected int"),
    ('[axes]\nadv_scale = ["group", "grp"]\n', 2, "adv_scale must be one of"),
    ('[base]\nsteps = 0\n[axes]\nadv_scale = ["group"]\n', 2, "steps must be >= 1"),
    ('[base]\nseed = 3\n[axes]\nadv_scale = ["group"]\n', 2, "seed is not a grid key"),
    ('seeds = []\n[axes]\nadv_scale = ["group"]\n', 1, "seeds must be a non-empty list"),
    ('name = "x"\n[base]\nsteps = 3\n', 1, "grid has no runs"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nX = {adv_scale="batch"}\n', 4, "matches no grid point"),
    ('[axes]\nadv_scale = ["group"]\nloss_agg = ["seq_mean", "max_tokens"]\n[arms]\n"My arm" = {adv_scale="group"}\n',
     5, "matches 2 grid points; give a value for loss_agg"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none"}\nB = {adv_scale="none"}\n', 5,
     "name the same grid point"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none", lr=0.1}\n', 4, "not an axis"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\nA = {adv_scale="none", lrr=0.1}\n', 4, "unknown config key 'lrr'"),
    ('[axes]\nadv_scale = ["group", "none"]\n[arms]\n"A!" = {adv_scale="none"}\n"a" = {adv_scale="group"}\n', 5,
     "same directory name"),
    ('[base]\nsteps = 3\n[arms]\nA = {adv_scale="none"}\nB = {adv_scale="group", loss_agg="nope"}\n', 5,
     "loss_agg must be one of"),
    ('[base]\ntask = "math"\n[axes]\nadv_scale = ["group"]\n', 2, "task 'math' needs --dataset"),
]


@pytest.mark.parametrize("text,line,fragment", ERRORS)
def test_grid_errors_name_file_and_line(tmp_path, text, line, fragment):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(GridError) as ei:
        load_grid(p)
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}:{line}: "), msg
    assert fragment in msg, msg


def test_set_errors(tmp_path):
    p = write(tmp_path, SMALL)
    for sets, fragment in ((["stepz=3"], "--set stepz=3: unknown config key"), (["steps"], "expected KEY=VALUE"),
                           (["adv_scale=none"], "is an axis"), (["seed=3"], "--seeds"),
                           (["lr=fast"], "--set lr=fast"), (["lr=-1"], "lr must be > 0")):
        with pytest.raises(GridError, match=None) as ei:
            load_grid(p, sets=sets)
        assert fragment in str(ei.value), (sets, str(ei.value))
    with pytest.raises(GridError, match="--seeds"):
        load_grid(p, seeds=[-1])


def test_unreadable_grid(tmp_path):
    with pytest.raises(GridError, match="no such grid file"):
        load_grid(tmp_path / "missing.toml")

# ----------------------------------------------------------------------------------------------------------
# grid.json: a sweep directory's record of its grid

def test_grid_json_conflict_and_merge(tmp_path):
    p = write(tmp_path, SMALL)
    out = tmp_path / "sweep"
    ablate(p, out=out, train_fn=fake_train, console=quiet())
    g1 = (out / "grid.json").read_bytes()
    with pytest.raises(GridError) as ei:
        ablate(p, out=out, sets=["steps=5"], train_fn=fake_train, console=quiet())
    assert "different grid" in str(ei.value) and "--force" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(GridError):
        ablate(p, out=out, sets=["steps=5"], dry_run=True, train_fn=fake_train, console=quiet())
    assert (out / "grid.json").read_bytes() == g1
    # more seeds: compatible, grid.json becomes the union
    r = ablate(p, out=out, seeds=[1], train_fn=fake_train, console=quiet())
    assert r.exit_code == 0
    g = json.loads((out / "grid.json").read_text())
    assert len(g["runs"]) == 8 and g["seeds"] == [0, 1] and len(g["arms"]) == 8
    arms = arm_summaries(out)
    assert [(a.arm, a.runs_done, a.runs_total) for a in arms][0] == ("GRPO", 2, 2)
    # --force replaces it
    r = ablate(p, out=out, sets=["steps=2"], force=True, train_fn=fake_train, console=quiet())
    g = json.loads((out / "grid.json").read_text())
    assert r.exit_code == 0 and len(g["runs"]) == 4 and g["runs"][0]["config"]["steps"] == 2
