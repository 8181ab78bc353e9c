"""Old vs new rollout and update on the built-in model: ``model.generate`` vs drgrpo's sampling loop, and the fully
padded update vs length-bucketed scoring (forward + backward).

    python benchmarks/update_and_rollout.py [--model builtin|builtin-small] [--repeats 3] [--threads 1]

One realistic batch: 16 problems x G=8 = 128 rows of the built-in task, responses sampled at temperature 1 with at
most 64 new tokens. Rollouts: the old backend's ``model.generate`` call (reproduced here: left-padded batch, KV
cache, decodes until every row has finished) against ``HFBackend.generate`` (drops finished rows), same prompts
and seeds, sampled and greedy: best time and tokens/s over ``--repeats`` seeds. Update: ``pad_batch`` + ``response_logits`` + ``gather_logprobs`` + ``token_entropy`` on
the whole padded batch against :func:`drgrpo_cli.packing.packed_logprobs`, each followed by the trainer's PPO
token loss and ``backward``, on the sampled responses and on a second batch whose response lengths are uniform
in 3..max_tokens (41% padding when fully padded, the spread measured on an earlier default model). ``--model`` defaults to
``builtin`` when it is already built, else ``builtin-small`` (which builds in ~25 s); ``--model-path`` takes a
saved model folder instead.
"""

from __future__ import annotations

import argparse
import random
import time


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="builtin or builtin-small (default: builtin if built)")
    ap.add_argument("--model-path", default=None, help="a saved model folder instead of --model")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from drgrpo_cli.tasks.builtin_model import base_dir, build_base
    from drgrpo_cli.policy import load_model, load_tokenizer
    from drgrpo_cli.objectives import aggregate_loss, gather_logprobs, ppo_token_loss, token_entropy
    from drgrpo_cli.packing import default_overhead, packed_logprobs, pad_batch, plan_chunks, response_logits
    from drgrpo_cli.rollout.hf import HFBackend
    from drgrpo_cli.tasks.builtin import BuiltinTask

    torch.set_num_threads(args.threads)
    name = args.model or ("builtin" if (base_dir("builtin") / "config.json").exists() else "builtin-small")
    path = args.model_path or str(build_base(name))
    name = args.model_path or name
    tok = load_tokenizer(path)
    model = load_model(path)
    backend = HFBackend(model, tok)
    rng = random.Random(0)
    task = BuiltinTask()
    texts = [t for p in task.sample(args.prompts, rng) for t, _ in task.rollout_prompts(p, args.group, rng)]
    prompts = [tok.encode(t, add_special_tokens=False) for t in texts]
    n = len(prompts)
    print(f"model {name}, {n} rows ({args.prompts} prompts x G={args.group}), max_tokens {args.max_tokens}, "
          f"{args.threads} thread(s), best of {args.repeats}")

    # ---- rollouts -------------------------------------------------------------------------------------
    def old_generate(greedy=False):
        width = max(len(p) for p in prompts)
        ids = torch.full((n, width), backend.pad_id, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p):] = torch.tensor(p)
            attn[i, width - len(p):] = 1
        kw = (dict(do_sample=False, temperature=None, top_p=None, top_k=None) if greedy
              else dict(do_sample=True, temperature=1.0, top_p=1.0, top_k=0))
        model.eval()
        with torch.inference_mode():
            out = model.generate(input_ids=ids, attention_mask=attn, max_new_tokens=args.max_tokens,
                                 eos_token_id=backend.eos_id, pad_token_id=backend.pad_id, use_cache=True, **kw)
        return [r[: r.index(backend.eos_id) + 1] if backend.eos_id in r else r for r in out[:, width:].tolist()]

    def new_generate(greedy=False):
        return [s.ids for s in backend.generate(prompts, max_new_tokens=args.max_tokens, temperature=1.0,
                                                greedy=greedy)]

    def timed(fn, greedy):
        """Best time over seeds 0..repeats-1 (both paths see the same seeds) and the tokens/s over all of them.
        Sampled, the two paths draw different tokens (they consume the RNG differently), so their batches differ
        in length: compare tokens/s. Greedy, their outputs are identical."""
        times, tokens, longest = [], 0, 0
        for seed in range(args.repeats):
            torch.manual_seed(seed)
            t = time.perf_counter()
            rows = fn(greedy)
            times.append(time.perf_counter() - t)
            tokens += sum(map(len, rows))
            longest = max(longest, max(map(len, rows)))
        return min(times), tokens / sum(times), longest, rows

    new_generate()  # warm-up
    for greedy in (False, True):
        t_o, r_o, l_o, rows_o = timed(old_generate, greedy)
        t_n, r_n, l_n, rows_n = timed(new_generate, greedy)
        what = f"greedy (identical outputs: {rows_o == rows_n})" if greedy else "sampling at temperature 1"
        print(f"\nrollout, {what}")
        print(f"  old model.generate   {t_o:7.3f} s  {r_o:8.0f} response tok/s  "
              f"(longest row {l_o}: every row decodes that long)")
        print(f"  new sampling loop    {t_n:7.3f} s  {r_n:8.0f} response tok/s  "
              f"(longest row {l_n}; rows leave as they finish)   speedup {r_n / r_o:.2f}x in tok/s")
    torch.manual_seed(0)
    sampled = new_generate()  # the batch the update is timed on

    # ---- update ---------------------------------------------------------------------------------------
    model.train()

    def loss_of(logp, mask, adv):
        tl, _ = ppo_token_loss(logp, logp.detach(), adv, 0.2, 0.2)
        return aggregate_loss(tl, mask, "seq_mean")

    def update_bench(label, responses):
        adv = torch.randn(n, generator=torch.Generator().manual_seed(0))

        def old():
            model.zero_grad(set_to_none=True)
            ids, attn, pos, resp, mask = pad_batch(prompts, responses, backend.pad_id)
            logits = response_logits(model, ids, attn, pos, resp.shape[1], 1.0)
            logp = gather_logprobs(logits, resp)
            loss_of(logp, mask, adv).backward()
            with torch.no_grad():
                token_entropy(logits.detach())

        def new():
            model.zero_grad(set_to_none=True)
            logp, _, mask = packed_logprobs(model, prompts, responses, 1.0, pad_id=backend.pad_id,
                                            with_entropy=True)
            loss_of(logp, mask, adv).backward()

        real = sum(len(p) + len(r) for p, r in zip(prompts, responses))
        padded = n * (max(map(len, prompts)) + max(1, max(map(len, responses))))
        chunks = plan_chunks([len(p) for p in prompts], [len(r) for r in responses], default_overhead("cpu"))
        bucketed = sum(len(c) * (max(len(prompts[i]) for i in c) + max(1, max(len(responses[i]) for i in c)))
                       for c in chunks)
        t_o, t_n = best_of(old, args.repeats), best_of(new, args.repeats)
        print(f"\nupdate forward+backward, {label}: {real} real tokens")
        print(f"  old padded batch     {t_o:7.3f} s  {real / t_o:8.0f} tok/s  ({padded} positions, "
              f"{100 * (1 - real / padded):.0f}% padding)")
        print(f"  new length buckets   {t_n:7.3f} s  {real / t_n:8.0f} tok/s  ({bucketed} positions, "
              f"{100 * (1 - real / bucketed):.0f}% padding, {len(chunks)} chunks)   speedup {t_o / t_n:.2f}x")

    update_bench(f"sampled responses (lengths {min(map(len, sampled))}-{max(map(len, sampled))})", sampled)
    lrng = random.Random(1)
    vocab = sorted(set(t for r in sampled for t in r) - {backend.eos_id}) or [3]
    synthetic = [[lrng.choice(vocab) for _ in range(lrng.randint(3, args.max_tokens) - 1)] + [backend.eos_id]
                 for _ in range(n)]
    update_bench(f"response lengths uniform 3-{args.max_tokens}", synthetic)


if __name__ == "__main__":
    main()
