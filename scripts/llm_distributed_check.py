"""Check that the self-play trainer gives the same result on 1 process and on 2 data-parallel processes.

Usage::

    python scripts/llm_distributed_check.py [--processes 2] [--out DIR]
    python scripts/llm_distributed_check.py --device cuda [--processes 1]   # on a GPU machine

Trains OMWU-neural for 3 iterations on the exact menu game of ``llm-menu`` (tiny
GPT-2, 4 prompts) once in this process and once under ``torchrun --nproc_per_node N``
with ``accelerator=True`` (each process takes ``4 / N`` prompts; gradients and metrics
are averaged with ``accelerator.reduce``). Exact menu mode draws no samples, so the two
runs differ only by the order of floating-point reductions: the script prints the
largest parameter difference (about 1e-6 on CPU) and whether every process ended with
identical weights. On CPU, ``accelerate launch --cpu`` starts a single process (it
expects MPI for several CPU processes), so ``torchrun`` is used; on GPUs
``accelerate launch --multi_gpu --num_processes N`` sets the same ``torch.distributed``
environment.

``--device cuda`` runs the reference in this process on the CPU and the trainer under
``accelerate launch --num_processes N`` (``--multi_gpu`` when ``N > 1``) with the policy on
``accelerator.device``; the two differ by CPU vs GPU floating point (about 1e-6).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def train(out: Path, distributed: bool, device: str = "cpu") -> dict:
    import torch

    torch.set_num_threads(1)
    from prefgym.agents.llm import MenuPolicy, SelfPlayTrainer
    from prefgym.judges import TableJudge
    from prefgym.llm import LMPolicy, tiny_lm
    from prefgym.reproductions.llm_menu import PROMPTS, RESPONSES, choose_game

    game, _, _ = choose_game()
    judge = TableJudge.from_preference(game.preference, list(RESPONSES))
    model, tok = tiny_lm(n_layer=1, n_embd=32, seed=0)
    accelerator = None
    if distributed:
        from accelerate import Accelerator

        accelerator = Accelerator(cpu=device == "cpu")
        device = accelerator.device
    lm = LMPolicy(copy.deepcopy(model), tok, reference_model=copy.deepcopy(model), device=device)
    menu = MenuPolicy(lm, RESPONSES)
    trainer = SelfPlayTrainer(menu, judge, PROMPTS, "omwu", steps_per_iteration=2, learning_rate=1e-3,
                              accelerator=accelerator, output_dir=out / "run")
    trainer.learn(3)
    flat = torch.cat([p.detach().flatten().cpu() for p in trainer.lm.model.parameters()])
    torch.save(flat, out / f"params_world{trainer.world_size}_rank{trainer.rank}.pt")
    return {"rank": trainer.rank, "world": trainer.world_size, "loss": trainer.history[-1]["loss"],
            "device": str(trainer.device)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--out", default=None)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"],
                   help="cpu: torchrun on CPU processes; cuda: accelerate launch on GPUs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="prefgym_ddp_"))
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        print(json.dumps(train(out, distributed=True, device=args.device)))
        return 0
    import torch

    (out / "single").mkdir(exist_ok=True)
    single = train(out / "single", distributed=False)
    if args.device == "cuda":
        cmd = [sys.executable, "-m", "accelerate.commands.launch", f"--num_processes={args.processes}",
               *(["--multi_gpu"] if args.processes > 1 else []), "--num_machines=1",
               "--mixed_precision=no", "--dynamo_backend=no", "--main_process_port=29533",
               __file__, "--worker", "--device", "cuda", "--out", str(out / "multi")]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.processes}",
               "--master_port=29533", __file__, "--worker", "--out", str(out / "multi")]
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ref = torch.load(out / "single" / "params_world1_rank0.pt")
    ranks = [torch.load(out / "multi" / f"params_world{args.processes}_rank{r}.pt")
             for r in range(args.processes)]
    same = all(torch.equal(ranks[0], r) for r in ranks[1:])
    diff = float((ranks[0] - ref).abs().max())
    print(json.dumps({"single_process_loss": single["loss"], "processes": args.processes,
                      "device": args.device,
                      "ranks_identical": same, "max_abs_param_diff_vs_single": diff}))
    return 0 if same and diff < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
