"""``drgrpo train``: its options (typer ``Annotated`` aliases, one per TrainConfig field or switch), the thin
command over :func:`drgrpo_cli.config.from_options` and :func:`drgrpo_cli.trainer.train`, and the trainer's
errors put into this command's flags.

Nothing heavy is imported at module level: torch loads when a run starts, so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from drgrpo_cli.cli.options import Force, Out, Quiet, fail
from drgrpo_cli.config import BACKENDS, DTYPES, PRESETS, TrainConfig

_D = TrainConfig()
_PANEL_BIAS = "The two bias switches"
_PANEL_PPO = "PPO / optimisation"
_PANEL_OBJ = "Objectives after Dr. GRPO (each an independent knob)"
_PANEL_SAMPLING = "Sampling"
_PANEL_DATA = "Model and data"
_PANEL_RUN = "Run"
_PANEL_VLLM = "vLLM engine (--backend vllm)"


def _opt(*names: str, help: str, panel: str, **kw):
    return typer.Option(*names, help=help, rich_help_panel=panel, show_default=False, **kw)


def _d(v) -> str:
    return f" [default: {v}]"


Std = Annotated[Optional[bool], _opt("--std/--no-std", panel=_PANEL_BIAS,
    help="--std: divide advantages by the group's reward std (GRPO, adv_scale=group); --no-std: do not "
         "(Dr. GRPO, adv_scale=none)." + _d("--std"))]
FixedLen = Annotated[Optional[bool], _opt("--fixed-len/--seq-len", panel=_PANEL_BIAS,
    help="--fixed-len: divide each response's token-loss sum by one constant, the generation budget "
         "(Dr. GRPO, loss_agg=max_tokens); --seq-len: by its own length (GRPO, loss_agg=seq_mean)."
         + _d("--seq-len"))]
AdvScale = Annotated[Optional[str], _opt("--adv-scale", panel=_PANEL_BIAS, metavar="group|batch|none|mean",
    help="Advantage scaling: group = (r-b)/std_g (GRPO), batch = (r-b)/std_batch (Lite PPO), "
         "none = r-b (Dr. GRPO), mean = (r-b)/mean_g (MaxRL, arXiv 2602.02710; rewards >= 0); b: --baseline."
         + _d(_D.adv_scale))]
LossAgg = Annotated[Optional[str], _opt("--loss-agg", panel=_PANEL_BIAS,
    metavar="seq_mean|token_mean|max_tokens|seq_sum|prompt_mean",
    help="Token-loss aggregation: seq_mean = mean_i(sum/|o_i|) (GRPO), token_mean = sum/#tokens (DAPO), "
         "max_tokens = mean_i(sum/MAX_TOKENS) (Dr. GRPO), seq_sum = mean_i(sum), prompt_mean = mean over prompts "
         "of (group's token sum / group's tokens) (ScaleRL arXiv 2510.13786; SkyRL prompt_mean). Counts are "
         "those of each mini-batch." + _d(_D.loss_agg))]
Preset = Annotated[Optional[str], _opt("--preset", panel=_PANEL_BIAS, metavar="|".join(PRESETS),
    help="Sets exactly these knobs and nothing else (a flag that disagrees is an error): "
         + "; ".join(f"{name}: " + ", ".join(f"{k}={v}" for k, v in knobs.items()) for name, knobs in PRESETS.items())
         + ".")]
Baseline = Annotated[Optional[str], _opt("--baseline", panel=_PANEL_OBJ, metavar="group|loo",
    help="Advantage baseline b: group = the group's mean reward (GRPO); loo = the mean of the other G-1 (RLOO, "
         "as verl rloo / TRL RLOO); combines with any --adv-scale." + _d(_D.baseline))]
LengthAlpha = Annotated[Optional[float], _opt("--length-alpha", panel=_PANEL_OBJ,
    help="Delta-L length weights (arXiv 2509.07558): A_i * L_i^-a / mean_g L_j^-a; with --loss-agg max_tokens "
         "this is Delta-L (a=1 minimum variance, 0.75 their math recipe); 0 = off." + _d(_D.length_alpha))]
RatioLevel = Annotated[Optional[str], _opt("--ratio-level", panel=_PANEL_OBJ, metavar="token|sequence",
    help="Importance ratio per token (PPO/GRPO) or one per response, exp(mean_t log rho_t) (GSPO, arXiv "
         "2507.18071; TRL importance_sampling_level). A token-summing --loss-agg (token_mean, max_tokens, "
         "seq_sum) weights each response by its length; seq_mean is GSPO's objective." + _d(_D.ratio_level))]
PolicyLoss = Annotated[Optional[str], _opt("--policy-loss", panel=_PANEL_OBJ, metavar="ppo|cispo",
    help="ppo: clipped surrogate; cispo: -sg(min(rho, 1+epsilon_high))*A*log pi, no lower clip (CISPO, arXiv "
         "2506.13585; TRL caps at epsilon_high itself)." + _d(_D.policy_loss))]
DynamicSampling = Annotated[Optional[bool], _opt("--dynamic-sampling/--no-dynamic-sampling", panel=_PANEL_OBJ,
    help="DAPO (arXiv 2503.14476): drop groups whose correctness does not vary and draw more until "
         "--prompts-per-step groups are kept, at most --dynamic-sampling-max-rounds rounds (then train on those "
         "kept); logged as train/ds_rounds, train/ds_groups_kept." + _d("off"))]
DynamicSamplingMaxRounds = Annotated[Optional[int], _opt("--dynamic-sampling-max-rounds", panel=_PANEL_OBJ,
    help="Most generation rounds per step with --dynamic-sampling (verl max_num_gen_batches)."
         + _d(_D.dynamic_sampling_max_rounds))]
OverlongBufferFrac = Annotated[Optional[float], _opt("--overlong-buffer-frac", panel=_PANEL_OBJ,
    help="DAPO soft overlong penalty: over the last frac*max_tokens tokens (L_cache) the reward falls by "
         "(L_max - L_cache - L)/L_cache to -1 at max_tokens (times --overlong-penalty); 0 = off (DAPO: 0.2)."
         + _d(_D.overlong_buffer_frac))]
OverlongPenalty = Annotated[Optional[float], _opt("--overlong-penalty", panel=_PANEL_OBJ,
    help="Size of the overlong penalty at max_tokens (verl penalty_factor)." + _d(_D.overlong_penalty))]
MaskTruncated = Annotated[Optional[bool], _opt("--mask-truncated/--no-mask-truncated", panel=_PANEL_OBJ,
    help="Leave truncated responses out of the loss and of every count (tokens, responses, prompts) and of "
         "the group's mean/std (DAPO's overlong filtering; TRL mask_truncated_completions)." + _d("off"))]
KlEstimator = Annotated[Optional[str], _opt("--kl-estimator", panel=_PANEL_OBJ, metavar="k1|k2|k3",
    help="KL(pi||ref) per token: k1 = log(pi/ref), k2 = log(pi/ref)^2/2, k3 = ref/pi - log(ref/pi) - 1 "
         "(verl kl / mse / low_var_kl)." + _d(_D.kl_estimator))]
KlIn = Annotated[Optional[str], _opt("--kl-in", panel=_PANEL_OBJ, metavar="loss|reward",
    help="Where --beta's KL goes: loss = + beta*k per token (GRPO, verl use_kl_loss); reward = r - beta*sum_t k "
         "before the advantages, no gradient (PPO-style, verl use_kl_in_reward)." + _d(_D.kl_in))]
Steps = Annotated[Optional[int], _opt("--steps", panel=_PANEL_RUN, help="Policy steps." + _d(_D.steps))]
Seed = Annotated[Optional[int], _opt("--seed", panel=_PANEL_RUN, help="Random seed." + _d(_D.seed))]
Resume = Annotated[bool, _opt("--resume", panel=_PANEL_RUN,
    help="Continue the run in --out from its last checkpoint (a finished run is left untouched).")]
EvalEvery = Annotated[Optional[int], _opt("--eval-every", panel=_PANEL_RUN,
    help="Greedy eval on held-out prompts every N steps (and before step 1 and at the end); 0 = never."
         + _d(_D.eval_every))]
EvalSamples = Annotated[Optional[int], _opt("--eval-samples", panel=_PANEL_RUN,
    help="Sampled eval beside the greedy one: N responses per eval prompt at the run's temperature, logged as "
         "eval_sampled/* (greedy decoding cannot show length drift); 0 = greedy only."
         + _d("4 on the built-in task, 0 on math"))]
EvalMaxPrompts = Annotated[Optional[int], _opt("--eval-max-prompts", panel=_PANEL_RUN,
    help="Held-out prompts per eval set (the built-in task's eval set, or the first N of each --eval-dataset)."
         + _d(_D.eval_max_prompts))]
CheckpointEvery = Annotated[Optional[int], _opt("--checkpoint-every", panel=_PANEL_RUN,
    help="Save a resumable checkpoint every N steps (and at a SIGTERM/Ctrl-C); 0 = never."
         + _d(_D.checkpoint_every))]
SkipNonfinite = Annotated[Optional[bool], _opt("--skip-nonfinite", panel=_PANEL_RUN,
    help="A NaN/Inf loss or gradient norm skips that update (counted in train/skipped_updates) instead of "
         "stopping the run." + _d("stop"))]
Threads = Annotated[Optional[int], _opt("--threads", panel=_PANEL_RUN,
    help="torch CPU threads; 0 = auto: 1 for the built-in models (too small to split, recorded in config.json), "
         "else torch's default."
         + _d(_D.threads))]
GroupSize = Annotated[Optional[int], _opt("--group-size", "-G", panel=_PANEL_SAMPLING,
    help="Responses per prompt (G)." + _d(_D.group_size))]
PromptsPerStep = Annotated[Optional[int], _opt("--prompts-per-step", panel=_PANEL_SAMPLING,
    help="Prompts per policy step." + _d(_D.prompts_per_step))]
MaxTokens = Annotated[Optional[int], _opt("--max-tokens", panel=_PANEL_SAMPLING,
    help="Generation budget per response; a response that hits it is truncated and gets reward 0."
         + _d(_D.max_tokens))]
LossMaxTokens = Annotated[Optional[int], _opt("--loss-max-tokens", panel=_PANEL_SAMPLING,
    help="The constant divisor of loss_agg=max_tokens." + _d("--max-tokens"))]
Temperature = Annotated[Optional[float], _opt("--temperature", panel=_PANEL_SAMPLING,
    help="Sampling temperature (log-probs use the same)." + _d(_D.temperature))]
TopP = Annotated[Optional[float], _opt("--top-p", panel=_PANEL_SAMPLING,
    help="Nucleus sampling." + _d(_D.top_p))]
DerailProb = Annotated[Optional[float], _opt("--derail-prob", panel=_PANEL_SAMPLING,
    help="Built-in task: share of rollouts whose second operand the environment hides (the failure state)."
         + _d(_D.derail_prob))]
Lr = Annotated[Optional[float], _opt("--lr", panel=_PANEL_PPO, help="AdamW learning rate (constant)." + _d(_D.lr))]
Epsilon = Annotated[Optional[float], _opt("--epsilon", panel=_PANEL_PPO,
    help="PPO clip range (lower side, and upper unless --epsilon-high)." + _d(_D.epsilon))]
EpsilonHigh = Annotated[Optional[float], _opt("--epsilon-high", panel=_PANEL_PPO,
    help="Upper clip range (DAPO's clip-higher)." + _d("--epsilon"))]
Beta = Annotated[Optional[float], _opt("--beta", panel=_PANEL_PPO,
    help="KL penalty weight (see --kl-estimator, --kl-in); > 0 loads a frozen reference model." + _d(_D.beta))]
PpoEpochs = Annotated[Optional[int], _opt("--ppo-epochs", panel=_PANEL_PPO,
    help="Passes over each rollout batch." + _d(_D.ppo_epochs))]
MiniBatches = Annotated[Optional[int], _opt("--mini-batches", panel=_PANEL_PPO,
    help="Optimizer steps per pass (the batch is split into this many mini-batches)." + _d(_D.mini_batches))]
MicroBatches = Annotated[Optional[int], _opt("--micro-batches", panel=_PANEL_PPO,
    help="Gradient-accumulation splits of each mini-batch (same gradient in every loss mode)."
         + _d(_D.micro_batches))]
MaxTokensPerMicroBatch = Annotated[Optional[int], _opt("--max-tokens-per-micro-batch", panel=_PANEL_PPO,
    help="Token budget of a micro-batch (rows x (longest prompt + longest response)); each mini-batch is "
         "split greedily in length order to fit it (a longer row gets its own micro-batch). Same gradient "
         "in every loss mode. 0 = auto: 65536 on CPU, sized from free GPU memory and the model on CUDA. "
         "Used when --micro-batches is 1 (a count split otherwise; setting both is an error)."
         + _d("0 (auto)"))]
MaxGradNorm = Annotated[Optional[float], _opt("--max-grad-norm", panel=_PANEL_PPO,
    help="Gradient-norm clip; 0 = off." + _d(_D.max_grad_norm))]
AdvStdDdof = Annotated[Optional[int], _opt("--adv-std-ddof", panel=_PANEL_PPO,
    help="ddof of the std in adv_scale=group|batch (1 = Bessel, as oat/TRL/verl)." + _d(_D.adv_std_ddof))]
AdvEps = Annotated[Optional[float], _opt("--adv-eps", panel=_PANEL_PPO,
    help="eps added to the std before dividing." + _d(_D.adv_eps))]
Model = Annotated[Optional[str], _opt("--model", panel=_PANEL_DATA,
    help="builtin (tiny model built on first use), builtin-small, builtin-difficulty, a local Hugging Face model "
         "folder, "
         "or a hub id." + _d(_D.model))]
Task = Annotated[Optional[str], _opt("--task", panel=_PANEL_DATA, metavar="builtin|builtin-difficulty|math",
    help="builtin: addition with hidden operands (the length-bias model organism); builtin-difficulty: addition in "
         "easy/medium/hard buckets (the difficulty-bias organism, with --model builtin-difficulty); math: "
         "--dataset with a math-verify reward." + _d(_D.task))]
Dataset = Annotated[Optional[str], _opt("--dataset", panel=_PANEL_DATA,
    help="Training problems (JSONL/Parquet/CSV, or a datasets name); implies --task math.")]
EvalDataset = Annotated[Optional[List[str]], _opt("--eval-dataset", panel=_PANEL_DATA,
    help="Eval problems, reported as eval/<name>/...; repeatable.")]
QuestionField = Annotated[Optional[str], _opt("--question-field", panel=_PANEL_DATA,
    help="Question column of the datasets." + _d("detected: problem, question or prompt"))]
AnswerField = Annotated[Optional[str], _opt("--answer-field", panel=_PANEL_DATA,
    help="Answer column (solution = take its last \\boxed{})." + _d("detected: answer, solution or ground_truth"))]
Template = Annotated[Optional[str], _opt("--template", panel=_PANEL_DATA,
    help="Prompt template: qwen_math, r1, none, or a file with {question}." + _d(_D.template))]
Backend = Annotated[Optional[str], _opt("--backend", panel=_PANEL_DATA, metavar="|".join(BACKENDS),
    help="Rollout engine: hf (transformers), vllm, auto (vllm on CUDA when installed and usable, else hf; "
         "config.json records the one used)." + _d(_D.backend))]
Device = Annotated[Optional[str], _opt("--device", panel=_PANEL_DATA, help="cpu, cuda, cuda:1 ..." + _d(_D.device))]
Dtype = Annotated[Optional[str], _opt("--dtype", panel=_PANEL_DATA, metavar="|".join(DTYPES),
    help="Weights dtype; auto = float32 on CPU, bfloat16 on CUDA (config.json records the one used)."
         + _d(_D.dtype))]
GradientCheckpointing = Annotated[Optional[bool], _opt("--gradient-checkpointing/--no-gradient-checkpointing",
    panel=_PANEL_DATA, help="Trade compute for memory in the training forward." + _d("off"))]
VllmGpuMemoryUtilization = Annotated[Optional[float], _opt("--vllm-gpu-memory-utilization", panel=_PANEL_VLLM,
    help="Share of GPU memory the vLLM engine may take while awake (weights + KV cache)."
         + _d(_D.vllm_gpu_memory_utilization))]
VllmEnableSleep = Annotated[Optional[bool], _opt("--vllm-sleep/--no-vllm-sleep", panel=_PANEL_VLLM,
    help="CUDA: put the engine to sleep (weights to host RAM, KV cache freed) while the policy trains; "
         "ignored on CPU." + _d("--vllm-sleep"))]
VllmMaxModelLen = Annotated[Optional[int], _opt("--vllm-max-model-len", panel=_PANEL_VLLM,
    help="Context length of the vLLM engine (prompt + response); lower it for long-context models to save "
         "KV-cache memory." + _d("the model's"))]


def train_cli(
    std: Std = None,
    fixed_len: FixedLen = None,
    adv_scale: AdvScale = None,
    loss_agg: LossAgg = None,
    preset: Preset = None,
    baseline: Baseline = None,
    length_alpha: LengthAlpha = None,
    ratio_level: RatioLevel = None,
    policy_loss: PolicyLoss = None,
    dynamic_sampling: DynamicSampling = None,
    dynamic_sampling_max_rounds: DynamicSamplingMaxRounds = None,
    overlong_buffer_frac: OverlongBufferFrac = None,
    overlong_penalty: OverlongPenalty = None,
    mask_truncated: MaskTruncated = None,
    kl_estimator: KlEstimator = None,
    kl_in: KlIn = None,
    steps: Steps = None,
    seed: Seed = None,
    out: Out = None,
    resume: Resume = False,
    force: Force = False,
    quiet: Quiet = False,
    eval_every: EvalEvery = None,
    eval_samples: EvalSamples = None,
    eval_max_prompts: EvalMaxPrompts = None,
    checkpoint_every: CheckpointEvery = None,
    skip_nonfinite: SkipNonfinite = None,
    threads: Threads = None,
    group_size: GroupSize = None,
    prompts_per_step: PromptsPerStep = None,
    max_tokens: MaxTokens = None,
    loss_max_tokens: LossMaxTokens = None,
    temperature: Temperature = None,
    top_p: TopP = None,
    derail_prob: DerailProb = None,
    lr: Lr = None,
    epsilon: Epsilon = None,
    epsilon_high: EpsilonHigh = None,
    beta: Beta = None,
    ppo_epochs: PpoEpochs = None,
    mini_batches: MiniBatches = None,
    micro_batches: MicroBatches = None,
    max_tokens_per_micro_batch: MaxTokensPerMicroBatch = None,
    max_grad_norm: MaxGradNorm = None,
    adv_std_ddof: AdvStdDdof = None,
    adv_eps: AdvEps = None,
    model: Model = None,
    task: Task = None,
    dataset: Dataset = None,
    eval_dataset: EvalDataset = None,
    question_field: QuestionField = None,
    answer_field: AnswerField = None,
    template: Template = None,
    backend: Backend = None,
    device: Device = None,
    dtype: Dtype = None,
    gradient_checkpointing: GradientCheckpointing = None,
    vllm_gpu_memory_utilization: VllmGpuMemoryUtilization = None,
    vllm_enable_sleep: VllmEnableSleep = None,
    vllm_max_model_len: VllmMaxModelLen = None,
) -> None:
    """Train one run: GRPO, Dr. GRPO or anything between, with the two bias switches set independently.

    Writes OUT/config.json, OUT/metrics.jsonl (one flat JSON row per step: train/reward, train/len_correct, train/len_incorrect, ...), OUT/samples.jsonl and OUT/summary.json.
    """
    from drgrpo_cli.config import ConfigError, field_names, from_options

    options = {k: v for k, v in locals().items() if k in field_names()}
    options["eval_datasets"] = tuple(eval_dataset) if eval_dataset else None
    try:
        cfg = from_options(options, preset=preset, std=std, fixed_len=fixed_len)
    except (ConfigError, TypeError) as e:
        raise fail(str(e)) from None
    from drgrpo_cli.sweep.grid import slugify

    run_train(cfg, out or Path("results") / f"{slugify(cfg.arm)}__seed{cfg.seed}", resume=resume, force=force,
              quiet=quiet)


#: How to get past a failed run, in this command's flags (the trainer's RunFailed names the config fields).
REMEDY = {
    "oom": "lower --max-tokens-per-micro-batch (below the logged train/micro_batch_tokens), raise --micro-batches "
           "or add --gradient-checkpointing (all allowed on resume), or start over with a lower --max-tokens",
    "nonfinite": "lower --lr, or skip such updates with --skip-nonfinite",
}


def run_train(cfg: TrainConfig, run_dir: Path, *, resume: bool, force: bool, quiet: bool) -> None:
    """Train ``cfg`` into ``run_dir`` with a progress bar (none when ``quiet``), then print one summary line;
    every failure is one line on stderr and an exit code (see :mod:`drgrpo_cli.cli.app`)."""
    from rich.console import Console

    from drgrpo_cli.cli.progress import TrainProgress
    from drgrpo_cli.errors import disk_full, first_line, is_oom
    from drgrpo_cli.interrupt import Interrupted, signal_name
    from drgrpo_cli.rundir import RunExistsError
    from drgrpo_cli.runlog import InUseError
    from drgrpo_cli.trainer import RunFailed, train

    console = Console(stderr=True)
    again = f"drgrpo train --out {run_dir} --resume"
    try:
        if not quiet:
            from drgrpo_cli.tasks.builtin_model import prebuild

            prebuild([cfg.model], console)
        summary = train(cfg, run_dir, resume=resume, force=force, progress=TrainProgress(enabled=not quiet))
    except Interrupted as e:
        saved = f"checkpoint at step {e.step}" if e.step else "no checkpoint yet, the run restarts"
        typer.echo(f"interrupted by {signal_name(e.signum)} ({saved}): resume with  {again}  (same options)", err=True)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        typer.echo(f"interrupted: resume with  {again}  (same options)", err=True)
        raise typer.Exit(130) from None
    except RunFailed as e:
        saved = f"from its checkpoint at step {e.checkpoint}" if e.checkpoint else "from step 0: no checkpoint yet"
        budget = " --max-tokens-per-micro-batch N" if cfg.max_tokens_per_micro_batch else " --micro-batches N"
        extra = {"oom": budget, "nonfinite": " --skip-nonfinite"}.get(e.kind, "")
        why = f"{e.fact}: {REMEDY[e.kind]}" if e.kind in REMEDY else str(e)
        raise fail(f"run failed: {why}; resume ({saved}) with  {again}{extra}  (same options otherwise)", 1) from None
    except Exception as e:  # noqa: BLE001 - before work started: bad input is 2, a machine problem 1
        if is_oom(e):
            raise fail(f"out of memory before training started: try a smaller model, --dtype bfloat16 or "
                       f"--gradient-checkpointing ({first_line(e)})", 1) from None
        if disk_full(e) is not None:
            raise fail(f"disk full ({disk_full(e)}): free some space, then run the same command again", 1) from None
        if isinstance(e, (RunExistsError, InUseError, ValueError, OSError, RuntimeError)):
            raise fail(in_flags(e)) from None
        raise fail(f"run failed: {type(e).__name__}: {e}", 1) from None
    _print_summary(console, cfg, run_dir, summary)


def in_flags(e: BaseException) -> str:
    """A refusal of the trainer (facts only) in this command's words: which flag gets past it."""
    from drgrpo_cli.errors import first_line
    from drgrpo_cli.rundir import ConfigDiffers, RunExistsError

    if isinstance(e, ConfigDiffers):
        return f"{e.path} was started with a different config ({', '.join(e.keys)} differ); use another --out"
    if isinstance(e, RunExistsError):
        if e.reason == "foreign" and e.force:
            return f"{e.path} exists and is not a drgrpo run folder; refusing to delete it even with --force"
        if e.reason == "foreign":
            return f"{e.path} exists and is not empty; choose another --out"
        if e.reason == "holds_run":
            return f"{e.path} already holds a {e.state} run; pass --resume to continue it or --force to start over"
        return f"{first_line(e)}, or --force"  # an unreadable checkpoint: delete it, or start over
    return first_line(e)


def _print_summary(console, cfg: TrainConfig, run_dir: Path, summary: dict) -> None:
    f = summary.get("final", {})
    g = summary.get("growth", {})

    def n(v, fmt="{:.1f}"):
        return "n/a" if v is None else fmt.format(v)

    console.print(f"[bold]{cfg.arm}[/] {run_dir}: reward {n(f.get('train/reward'), '{:.3f}')}, "
                  f"len correct {n(f.get('train/len_correct'))}, incorrect {n(f.get('train/len_incorrect'))} "
                  f"(growth {n(g.get('len_incorrect'), '{:+.1f}')}), eval acc {n(f.get('eval/accuracy'), '{:.3f}')}")
