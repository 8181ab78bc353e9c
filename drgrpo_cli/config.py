"""One frozen dataclass, the single source of truth for a run, saved as ``<out>/config.json``.

The two biases are two independent knobs, ``adv_scale`` and ``loss_agg``, never one coupled "critic type";
a preset (:data:`PRESETS`) sets them and nothing it does not list, and two sources that set a knob
differently are an error (:func:`apply_switches`, :func:`from_options`). ``validate()`` checks every value
before any work (``ConfigError``, one line) and resolves every default that depends on other fields, so
``config.json`` holds what a run used, not ``"auto"`` (dtype, backend, threads, the loss divisor, the
micro-batch budget off CUDA). The reasons for each convention: docs/design/training.md.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from drgrpo_cli.rollout import resolve_backend
from drgrpo_cli.rollout.vllm import DEFAULT_GPU_MEMORY_UTILIZATION

ADV_SCALES = ("group", "batch", "none", "mean")
BASELINES = ("group", "loo")
LOSS_AGGS = ("seq_mean", "token_mean", "max_tokens", "seq_sum", "prompt_mean")
RATIO_LEVELS = ("token", "sequence")
POLICY_LOSSES = ("ppo", "cispo")
KL_ESTIMATORS = ("k1", "k2", "k3")
KL_PLACES = ("loss", "reward")
BACKENDS = ("auto", "hf", "vllm")
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: The built-in base models (the recipes of ``tasks.builtin_model``; a test checks that the two agree).
#: Named here, not imported, so that config imports nothing that imports config back.
BUILTIN_MODELS = ("builtin", "builtin-small", "builtin-difficulty")
#: The tasks; the first two are built in (no dataset).
TASKS = ("builtin", "builtin-difficulty", "math")

#: What each preset sets. Nothing else changes with a preset.
PRESETS: dict[str, dict[str, Any]] = {
    # GRPO as in DeepSeekMath / the Dr. GRPO paper's Eq. 3: std-scaled advantages, per-response 1/|o_i|.
    "grpo": {"adv_scale": "group", "loss_agg": "seq_mean"},
    # Dr. GRPO: mean-centred advantages, one constant 1/MAX_TOKENS for the run.
    "drgrpo": {"adv_scale": "none", "loss_agg": "max_tokens"},
    # DAPO's loss: std-scaled advantages, token-level mean over the batch, clip-higher (0.2 / 0.28).
    # DAPO's dynamic sampling and overlong reward shaping are not part of this preset.
    "dapo": {"adv_scale": "group", "loss_agg": "token_mean", "epsilon_high": 0.28},
    # DAPO in full (arXiv 2503.14476): the loss and clip-higher above, plus dynamic sampling (groups whose
    # correctness does not vary are dropped and refilled), the soft overlong penalty over the last 20% of
    # max_tokens, and truncated responses masked out of the loss and the group statistics.
    "dapo-full": {"adv_scale": "group", "loss_agg": "token_mean", "epsilon_high": 0.28, "dynamic_sampling": True,
                  "overlong_buffer_frac": 0.2, "overlong_penalty": 1.0, "mask_truncated": True},
    # GSPO (arXiv 2507.18071): one sequence-level ratio per response, its clip range, a per-response mean.
    "gspo": {"ratio_level": "sequence", "loss_agg": "seq_mean", "epsilon": 3e-4, "epsilon_high": 4e-4},
    # CISPO (arXiv 2506.13585): REINFORCE weighted by the stop-gradient ratio capped at 1 + epsilon_high,
    # token mean; epsilon_high = 4 caps the ratio at 5 (ScaleRL / SkyRL's CISPO range).
    "cispo": {"policy_loss": "cispo", "loss_agg": "token_mean", "epsilon_high": 4.0},
}

#: The knobs that shape the objective (advantage, aggregation, ratio, shaping, KL): an arm of a sweep is
#: identified by their values (drgrpo_cli.report.stats, drgrpo_cli.sweep.grid).
OBJECTIVE_KNOBS = ("adv_scale", "baseline", "loss_agg", "length_alpha", "ratio_level", "policy_loss",
                   "dynamic_sampling", "overlong_buffer_frac", "mask_truncated", "kl_estimator", "kl_in")


class ConfigError(ValueError):
    """A bad or conflicting configuration value; its message is one line for the user."""


@dataclass(frozen=True)
class TrainConfig:
    # --- the two bias knobs -------------------------------------------------------------------
    adv_scale: str = "group"
    loss_agg: str = "seq_mean"
    adv_std_ddof: int = 1
    adv_eps: float = 1e-6
    loss_max_tokens: int | None = None  # None -> max_tokens (resolved by validate())

    # --- the objectives that followed Dr. GRPO (each its own knob; defaults = GRPO / Dr. GRPO as above) ----
    baseline: str = "group"  # group: r - mean_g | loo: r - mean of the other G-1 (RLOO)
    length_alpha: float = 0.0  # Delta-L: A_i * L_i^-a / mean_g L_j^-a (0: off)
    ratio_level: str = "token"  # token | sequence (GSPO: exp of the response's mean log-ratio)
    policy_loss: str = "ppo"  # ppo: clipped surrogate | cispo: -sg(min(rho, 1+eps_high)) * A * log pi
    dynamic_sampling: bool = False  # DAPO: drop groups whose correctness does not vary, refill the batch
    dynamic_sampling_max_rounds: int = 4  # most generation rounds per step with dynamic_sampling
    overlong_buffer_frac: float = 0.0  # DAPO soft overlong penalty over the last frac * max_tokens tokens (0: off)
    overlong_penalty: float = 1.0  # the penalty's size at max_tokens
    mask_truncated: bool = False  # truncated responses out of the loss and the group statistics
    kl_estimator: str = "k3"  # k1: log(pi/ref) | k2: (log(pi/ref))^2 / 2 | k3: ref/pi - log(ref/pi) - 1
    kl_in: str = "loss"  # loss: + beta * k per token | reward: r - beta * sum_t k before the advantages

    # --- run ------------------------------------------------------------------------------------
    steps: int = 200
    seed: int = 0
    task: str = "builtin"  # builtin | builtin-difficulty | math
    model: str = "builtin"  # builtin | hub id | local directory
    backend: str = "auto"  # auto | hf | vllm
    device: str = "cpu"
    dtype: str = "auto"  # auto: float32 on CPU, bfloat16 on CUDA
    gradient_checkpointing: bool = False
    threads: int = 0  # torch intra-op threads; 0 = auto (resolved to 1 for the built-in models, else torch's default)

    # --- sampling -------------------------------------------------------------------------------
    group_size: int = 8
    prompts_per_step: int = 16
    max_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0

    # --- optimisation (PPO knobs) ---------------------------------------------------------------
    lr: float = 2e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    epsilon: float = 0.2
    epsilon_high: float | None = None  # None -> epsilon (symmetric clip)
    beta: float = 0.0  # KL penalty (k3); a reference model is loaded only when > 0
    ppo_epochs: int = 1
    mini_batches: int = 1  # optimizer steps per epoch over one rollout batch
    micro_batches: int = 1  # gradient-accumulation splits of each mini-batch
    max_tokens_per_micro_batch: int | None = None  # token budget per micro-batch; None/0 = auto (see validate)

    # --- built-in task --------------------------------------------------------------------------
    derail_prob: float = 0.5  # share of rollouts whose second operand is hidden (the failure state)

    # --- math task (real models) ------------------------------------------------------------------
    dataset: str | None = None
    eval_datasets: tuple[str, ...] = ()
    question_field: str | None = None  # None -> detected: problem, question or prompt (trainer.resolve_fields)
    answer_field: str | None = None  # None -> detected: answer, solution or ground_truth
    template: str = "none"
    eval_max_prompts: int = 128

    # --- vLLM engine (backend vllm only) -----------------------------------------------------------
    vllm_gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION  # the engine's share of GPU memory while awake
    vllm_enable_sleep: bool = True  # CUDA: offload weights / free the KV cache while training (no-op on CPU)
    vllm_max_model_len: int | None = None  # None -> the model's context length (as vLLM reads it)

    # --- logging / eval / checkpoints ------------------------------------------------------------
    eval_every: int = 20
    eval_samples: int | None = None  # sampled eval: responses per eval prompt; None -> 4 (builtin) / 0 (math)
    samples_per_step: int = 4
    checkpoint_every: int = 20
    skip_nonfinite: bool = False  # NaN/Inf loss or gradient: skip the update (train/skipped_updates), not stop

    # ------------------------------------------------------------------------------------------------
    def validate(self) -> TrainConfig:
        """Check every value and resolve defaults; returns the resolved config or raises ConfigError."""
        _check_choices(self)
        _check_counts(self)
        _check_ranges(self)
        _check_batch_and_task(self)
        return _resolved(self)

    # ------------------------------------------------------------------------------------------------
    @property
    def arm(self) -> str:
        """A readable name for the objective: the pair of bias knobs (GRPO, Dr. GRPO, ...), then any other
        objective knob away from its default, e.g. ``GRPO (ratio_level=sequence)``."""
        defaults = TrainConfig.__dataclass_fields__
        extra = [f"{k}={getattr(self, k)}" for k in OBJECTIVE_KNOBS if k not in ("adv_scale", "loss_agg")
                 and getattr(self, k) != defaults[k].default]
        label = arm_label(self.adv_scale, self.loss_agg)
        return f"{label} ({', '.join(extra)})" if extra else label

    @property
    def overlong_buffer_tokens(self) -> int:
        """DAPO's L_cache in tokens: ``overlong_buffer_frac * max_tokens`` rounded, at least 1 (0 when off)."""
        if not self.overlong_buffer_frac:
            return 0
        return max(1, round(self.overlong_buffer_frac * self.max_tokens))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["eval_datasets"] = list(self.eval_datasets)
        return d

    def save(self, path: Path) -> None:
        from drgrpo_cli.runlog import write_text_atomic

        write_text_atomic(path, json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
        d = dict(d)
        if "eval_datasets" in d:
            d["eval_datasets"] = tuple(d["eval_datasets"] or ())
        return cls(**d)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


def _check_choices(c: TrainConfig) -> None:
    if c.adv_scale not in ADV_SCALES:
        raise ConfigError(f"adv_scale must be one of {', '.join(ADV_SCALES)}, got {c.adv_scale!r}")
    if c.loss_agg not in LOSS_AGGS:
        raise ConfigError(f"loss_agg must be one of {', '.join(LOSS_AGGS)}, got {c.loss_agg!r}")
    for name, allowed in (("baseline", BASELINES), ("ratio_level", RATIO_LEVELS), ("policy_loss", POLICY_LOSSES),
                          ("kl_estimator", KL_ESTIMATORS), ("kl_in", KL_PLACES)):
        if getattr(c, name) not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {getattr(c, name)!r}")
    if c.backend not in BACKENDS:
        raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {c.backend!r}")
    if c.dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {c.dtype!r}")
    if c.task not in TASKS:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {c.task!r}")


def _check_counts(c: TrainConfig) -> None:
    positive = ("steps", "group_size", "prompts_per_step", "max_tokens", "ppo_epochs", "mini_batches",
                "micro_batches", "eval_max_prompts", "dynamic_sampling_max_rounds")
    for name in positive:
        if getattr(c, name) < 1:
            raise ConfigError(f"{name} must be >= 1, got {getattr(c, name)}")
    if c.eval_samples is not None and c.eval_samples < 0:
        raise ConfigError(f"eval_samples must be >= 0, got {c.eval_samples}")
    for name in ("eval_every", "samples_per_step", "checkpoint_every", "threads", "adv_std_ddof", "seed"):
        if getattr(c, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(c, name)}")
    if c.group_size < 2:
        raise ConfigError("group_size must be >= 2: a group-relative advantage needs two responses")
    if c.adv_scale in ("group", "batch") and c.adv_std_ddof >= c.group_size:
        raise ConfigError(f"adv_std_ddof={c.adv_std_ddof} needs group_size > ddof")


def _check_ranges(c: TrainConfig) -> None:
    if not c.lr > 0:
        raise ConfigError(f"lr must be > 0, got {c.lr}")
    if not c.temperature > 0:
        raise ConfigError(f"temperature must be > 0, got {c.temperature}")
    if not 0 < c.top_p <= 1:
        raise ConfigError(f"top_p must be in (0, 1], got {c.top_p}")
    if not 0 <= c.epsilon < 1:
        raise ConfigError(f"epsilon must be in [0, 1), got {c.epsilon}")
    if c.epsilon_high is not None and c.epsilon_high < 0:
        raise ConfigError(f"epsilon_high must be >= 0, got {c.epsilon_high}")
    if c.beta < 0:
        raise ConfigError(f"beta must be >= 0, got {c.beta}")
    if not c.adv_eps >= 0:
        raise ConfigError(f"adv_eps must be >= 0, got {c.adv_eps}")
    if c.max_grad_norm < 0:
        raise ConfigError(f"max_grad_norm must be >= 0 (0 disables clipping), got {c.max_grad_norm}")
    if not 0 <= c.derail_prob <= 1:
        raise ConfigError(f"derail_prob must be in [0, 1], got {c.derail_prob}")
    if not c.length_alpha >= 0:
        raise ConfigError(f"length_alpha must be >= 0, got {c.length_alpha}")
    if not 0 <= c.overlong_buffer_frac < 1:
        raise ConfigError(f"overlong_buffer_frac must be in [0, 1), got {c.overlong_buffer_frac}")
    if not c.overlong_penalty >= 0:
        raise ConfigError(f"overlong_penalty must be >= 0, got {c.overlong_penalty}")
    if c.adv_scale == "mean" and c.overlong_buffer_frac > 0:
        raise ConfigError("adv_scale 'mean' divides by the group's mean reward, which the overlong penalty can make "
                          "negative; set overlong_buffer_frac to 0")
    if c.adv_scale == "mean" and c.beta > 0 and c.kl_in == "reward":
        raise ConfigError("adv_scale 'mean' divides by the group's mean reward, which a KL penalty in the reward can "
                          "make negative; use kl_in 'loss'")
    if c.max_tokens_per_micro_batch is not None and c.max_tokens_per_micro_batch < 0:
        raise ConfigError(f"max_tokens_per_micro_batch must be >= 0 (0 = auto), got {c.max_tokens_per_micro_batch}")
    if c.max_tokens_per_micro_batch and c.micro_batches > 1:
        raise ConfigError(f"micro_batches={c.micro_batches} and max_tokens_per_micro_batch="
                          f"{c.max_tokens_per_micro_batch} both split the mini-batch; set one of them")
    if c.loss_max_tokens is not None and c.loss_max_tokens < 1:
        raise ConfigError(f"loss_max_tokens must be >= 1, got {c.loss_max_tokens}")
    if not 0 < c.vllm_gpu_memory_utilization <= 1:
        raise ConfigError(f"vllm_gpu_memory_utilization must be in (0, 1], got {c.vllm_gpu_memory_utilization}")
    if c.vllm_max_model_len is not None and c.vllm_max_model_len < 1:
        raise ConfigError(f"vllm_max_model_len must be >= 1, got {c.vllm_max_model_len}")
    for name in ("question_field", "answer_field"):
        if getattr(c, name) is not None and not str(getattr(c, name)).strip():
            raise ConfigError(f"{name} must be a column name, got {getattr(c, name)!r}")


def _check_batch_and_task(c: TrainConfig) -> None:
    batch = c.prompts_per_step * c.group_size
    if batch % c.mini_batches:
        raise ConfigError(f"mini_batches={c.mini_batches} must divide prompts_per_step*group_size={batch}")
    if (batch // c.mini_batches) % c.micro_batches:
        raise ConfigError(f"micro_batches={c.micro_batches} must divide the mini-batch size "
                          f"{batch // c.mini_batches}")
    if c.task == "math" and not c.dataset:
        raise ConfigError("task 'math' needs --dataset (a JSONL/Parquet/CSV file or a datasets name)")
    if c.task != "math" and c.dataset:
        raise ConfigError("--dataset needs --task math (the built-in task has its own problems)")


def _resolved(c: TrainConfig) -> TrainConfig:
    """``c`` with every default that depends on other fields filled in (docs/design/training.md)."""
    changes: dict[str, Any] = {}
    if c.loss_max_tokens is None:
        changes["loss_max_tokens"] = c.max_tokens
    if c.epsilon_high is None:
        changes["epsilon_high"] = c.epsilon
    if c.micro_batches > 1 or not c.max_tokens_per_micro_batch:
        changes["max_tokens_per_micro_batch"] = _micro_batch_budget(c)
    if c.eval_samples is None:  # sampled eval shows length drift; on the tiny built-in model it is cheap
        changes["eval_samples"] = 0 if c.task == "math" else 4
    if c.task != "math" and (c.question_field, c.answer_field) != (None, None):
        # dataset columns mean nothing to the built-in task (older drgrpo saved "problem"/"answer" here)
        changes.update(question_field=None, answer_field=None)
    if c.threads == 0 and c.model in BUILTIN_MODELS:
        changes["threads"] = 1  # the tiny models' ops are too small to split: one thread is fastest
    if c.dtype == "auto":
        changes["dtype"] = resolve_dtype(c.dtype, c.device)
    if c.backend == "auto":
        changes["backend"] = resolve_backend(c.backend, c.device)
    return dataclasses.replace(c, **changes) if changes else c


def _micro_batch_budget(cfg: TrainConfig) -> int | None:
    """The resolved ``max_tokens_per_micro_batch``: None when ``micro_batches`` > 1 (a count split) or on
    CUDA without a budget (sized from the device at train start); the given budget; else the fixed CPU
    default."""
    if cfg.micro_batches > 1:
        return None
    if cfg.max_tokens_per_micro_batch:
        return cfg.max_tokens_per_micro_batch
    if cfg.device.startswith("cuda"):
        return None
    from drgrpo_cli.microbatch import CPU_DEFAULT_TOKENS

    return CPU_DEFAULT_TOKENS


def resolve_dtype(dtype: str, device: str) -> str:
    """The weights dtype a run uses: ``auto`` is bfloat16 on CUDA and float32 elsewhere."""
    if dtype == "auto":
        return "bfloat16" if str(device).startswith("cuda") else "float32"
    return dtype


def field_names() -> list[str]:
    return [f.name for f in fields(TrainConfig)]


def coerce_value(key: str, value: Any) -> Any:
    """``value`` as config field ``key`` holds it, or ConfigError with one line: a string (``--set key=value``)
    is parsed by the field's type, then every value is checked against that type (``steps = "abc"`` or
    ``lr = "fast"`` fails here, not inside a run); an int for a float field becomes a float, a list for
    ``eval_datasets`` a tuple."""
    types = {f.name: str(f.type) for f in fields(TrainConfig)}
    if key not in types:
        raise ConfigError(f"unknown config key {key!r}")
    if isinstance(value, dict):
        raise ConfigError(f"{key}: expected a value, got a table")
    t = types[key]
    if isinstance(value, str):
        v = _parse_text(key, value, t)
    else:
        v = tuple(value) if key == "eval_datasets" and isinstance(value, list) else value
    return _check_type(key, v, t)


def _parse_text(key: str, value: str, t: str) -> Any:
    """A string read as a value of type ``t`` (the field's annotation): bools as 1/true/yes/on, ``none``."""
    v = value.strip()
    try:
        if t.startswith("bool"):
            if v.lower() in ("1", "true", "yes", "on"):
                return True
            if v.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(v)
        if v.lower() in ("none", "null") and "None" in t:
            return None
        if t.startswith("int"):
            return int(v)
        if t.startswith("float"):
            return float(v)
        if t.startswith("tuple"):
            return tuple(s for s in v.split(",") if s)
    except ValueError:
        raise ConfigError(f"{key}: cannot read {value!r} as {t}") from None
    return v


def _check_type(key: str, v: Any, t: str) -> Any:
    """``v`` if it is of type ``t`` (an int as a float for a float field), else ConfigError."""
    if v is None:
        if "None" in t:
            return None
        raise ConfigError(f"{key}: cannot be none")
    head = t.split("|")[0].strip()
    ok = True
    if head == "bool":
        ok = isinstance(v, bool)
    elif head == "int":
        ok = isinstance(v, int) and not isinstance(v, bool)
    elif head == "float":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        if ok:
            v = float(v)
    elif head == "str":
        ok = isinstance(v, str)
    elif head.startswith("tuple"):
        ok = isinstance(v, tuple) and all(isinstance(x, str) for x in v)
    if not ok:
        raise ConfigError(f"{key}: expected {t}, got {v!r}")
    return v


def arm_label(adv_scale: str, loss_agg: str) -> str:
    names = {
        ("group", "seq_mean"): "GRPO",
        ("none", "max_tokens"): "Dr. GRPO",
        ("none", "seq_mean"): "std-only fix",
        ("group", "max_tokens"): "length-only fix",
        ("group", "token_mean"): "DAPO loss",
    }
    return names.get((adv_scale, loss_agg), f"{adv_scale}/{loss_agg}")


def apply_switches(
    base: dict[str, Any],
    *,
    preset: str | None = None,
    std: bool | None = None,
    fixed_len: bool | None = None,
    **explicit: Any,
) -> dict[str, Any]:
    """Resolve ``--preset``, ``--std/--no-std``, ``--fixed-len/--seq-len`` and the explicit value of any knob a
    preset sets (:data:`SWITCHED`, given as keyword arguments; None: not given).

    Each source may set each knob; two sources that set the same knob to different values are a
    conflict (ConfigError), never silently resolved by precedence.
    """
    unknown = sorted(set(explicit) - set(SWITCHED))
    if unknown:
        raise TypeError(f"apply_switches: not a switched knob: {', '.join(unknown)}")
    out = dict(base)
    sources: dict[str, tuple[str, Any]] = {}

    def put(key: str, value: Any, source: str) -> None:
        if key in sources and sources[key][1] != value:
            prev_src, prev_val = sources[key]
            raise ConfigError(f"conflicting options: {prev_src} sets {key}={prev_val} but {source} sets {key}={value}")
        sources[key] = (source, value)
        out[key] = value

    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
        for k, v in PRESETS[preset].items():
            put(k, v, f"--preset {preset}")
    if std is not None:
        put("adv_scale", "group" if std else "none", "--std" if std else "--no-std")
    if fixed_len is not None:
        put("loss_agg", "max_tokens" if fixed_len else "seq_mean", "--fixed-len" if fixed_len else "--seq-len")
    for k in SWITCHED:
        if explicit.get(k) is not None:
            v = explicit[k]
            put(k, v, f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else f" {v}"))
    return out


#: Fields that :func:`apply_switches` treats as a source beside the preset and the two switches: the two
#: bias knobs and every field a preset sets.
SWITCHED = tuple(dict.fromkeys(["adv_scale", "loss_agg", *(k for p in PRESETS.values() for k in p)]))


def from_options(options: dict[str, Any], *, preset: str | None = None, std: bool | None = None,
                 fixed_len: bool | None = None) -> TrainConfig:
    """The validated config of command-line options: ``options`` maps TrainConfig fields to values (None:
    not given); the preset and the switches go through :func:`apply_switches`, so any two sources that
    disagree are a ConfigError. A ``dataset`` without a ``task`` means the math task."""
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(field_names()))
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    knobs = {k: given.pop(k, None) for k in SWITCHED}
    if given.get("dataset") and "task" not in given:
        given["task"] = "math"
    d = apply_switches(given, preset=preset, std=std, fixed_len=fixed_len, **knobs)
    return TrainConfig(**d).validate()
