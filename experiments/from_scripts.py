"""gmc-rl from scripts: the whole experiment in one file, top to bottom, on the public API only.

The same steps as ``gmc-rl pipeline``, written out so that each one can be read, changed or replaced:

1. collect a dataset of random-policy transitions of a multimodal env (``gmc_rl.collect``);
2. pretrain a GMC encoder on it (``gmc_rl.pretrain``);
3. wrap a VecEnv of the env in the frozen encoder (``gmc_rl.wrappers.VecGMCLatent``): the agent observes latents;
4. train SB3's SAC on complete observations;
5. evaluate the agent with every sensor, with each sensor alone and with random per-step sensor dropout
   (``gmc_rl.evaluate.evaluate_conditions``), and print a table: per condition the mean per-step reward with the
   half width of its 95 % interval, the mean episode return, and how much worse than with every sensor it is.

The defaults are the budget of ``experiments/quick.yaml`` (20,000 transitions, 6 epochs, 12,000 SAC steps, 50
episodes per condition); ``--tiny`` is a smoke run of a few seconds whose numbers mean nothing. Explicit flags
override both. Everything is written to ``--out``: ``data/`` (dataset), ``gmc/`` (encoder checkpoint),
``sac.zip`` (SB3 agent), ``results.json`` (every condition's summary) and ``results.md`` (the printed table).
Running again reuses the dataset and the finished encoder and trains a new agent.

    OMP_NUM_THREADS=1 python experiments/from_scripts.py
    python experiments/from_scripts.py --tiny --out runs/from_scripts_tiny
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import gymnasium as gym
from stable_baselines3 import SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

import gmc_rl
from gmc_rl.collect import collect
from gmc_rl.config import CollectConfig, ExperimentConfig, ModelConfig, PretrainConfig
from gmc_rl.evaluate import evaluate_conditions, relative_loss, sb3_predictor
from gmc_rl.pretrain import pretrain
from gmc_rl.wrappers import VecGMCLatent, all_subset_conditions, apply_condition, make_sensor_env

TINY = {"env_kwargs": '{"max_episode_steps": 40}', "collect_steps": 400, "collect_envs": 2, "epochs": 1,
        "batch_size": 64, "conv_channels": [8, 16], "sac_steps": 150, "learning_starts": 100, "buffer_size": 500,
        "sac_batch_size": 32, "episodes": 2}
"""Flag values of ``--tiny`` (explicit flags still win)."""


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line; ``--tiny`` swaps the defaults for :data:`TINY`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-id", default="gmc_rl/PendulumSound-v0", help="a multimodal env with a Box action space")
    parser.add_argument("--env-kwargs", type=json.loads, default="{}", help="JSON keyword arguments of gym.make")
    parser.add_argument("--seed", type=int, default=0, help="seed of collection, pretraining and the agent")
    parser.add_argument("--collect-steps", type=int, default=20_000, help="random-policy transitions collected")
    parser.add_argument("--collect-envs", type=int, default=8, help="envs stepped side by side while collecting")
    parser.add_argument("--epochs", type=int, default=6, help="GMC pretraining epochs")
    parser.add_argument("--batch-size", type=int, default=128, help="GMC pretraining batch size")
    parser.add_argument("--conv-channels", type=int, nargs="+", default=[32, 64], help="image encoder channels")
    parser.add_argument("--sac-steps", type=int, default=12_000, help="SAC environment steps")
    parser.add_argument("--learning-starts", type=int, default=1000, help="SAC steps before the first update")
    parser.add_argument("--buffer-size", type=int, default=20_000, help="SAC replay buffer size")
    parser.add_argument("--sac-batch-size", type=int, default=128, help="SAC batch size")
    parser.add_argument("--episodes", type=int, default=50, help="evaluation episodes per condition")
    parser.add_argument("--dropout", type=float, default=0.5, help="per-step sensor dropout rate evaluated")
    parser.add_argument("--device", default="cpu", help="torch device of pretraining, encoder and agent")
    parser.add_argument("--out", type=Path, default=Path("runs/from_scripts"), help="output directory")
    parser.add_argument("--tiny", action="store_true", help="a smoke-test budget of a few seconds")
    args = parser.parse_args(argv)
    if args.tiny:
        parser.set_defaults(**TINY)
        args = parser.parse_args(argv)
    return args


def latent_vec_env(args: argparse.Namespace, gmc_dir: Path, condition: str, n_envs: int, seed: int) -> VecEnv:
    """``n_envs`` copies of the env under a sensor condition, encoded by the frozen GMC model in one batch a step."""
    def make(index: int) -> Callable[[], gym.Env]:  # one env factory per sub-env, so each gets its own dropout seed
        return lambda: apply_condition(make_sensor_env(args.env_id, args.env_kwargs), condition, seed + index, True)

    return VecGMCLatent(DummyVecEnv([make(i) for i in range(n_envs)]), gmc_dir, device=args.device)


def main(argv: Sequence[str] | None = None) -> None:
    """Collect, pretrain, train SAC on complete latents, evaluate under every condition, print the table."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = ExperimentConfig(
        name="from_scripts", env_id=args.env_id, env_kwargs=args.env_kwargs, seeds=[args.seed],
        collect=CollectConfig(steps=args.collect_steps, n_envs=args.collect_envs, seed=args.seed),
        pretrain=PretrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, device=args.device,
                                checkpoint_every=1, model=ModelConfig(conv_channels=args.conv_channels)),
    )

    # 1-2. Dataset and GMC encoder (resume=True: a finished encoder is kept, an interrupted one continues).
    data_dir = collect(config, args.out / "data")
    gmc_dir = pretrain(config, data_dir, args.out / "gmc", resume=True)

    # 3-4. SAC on the latents of complete observations.
    train_env = latent_vec_env(args, gmc_dir, "complete", n_envs=1, seed=args.seed)
    agent = SAC("MlpPolicy", train_env, learning_rate=1e-3, buffer_size=args.buffer_size,
                batch_size=args.sac_batch_size, learning_starts=args.learning_starts, gamma=0.99,
                policy_kwargs={"net_arch": [256, 256]}, seed=args.seed, device=args.device)
    agent.learn(total_timesteps=args.sac_steps)
    agent.save(args.out / "sac.zip")
    train_env.close()

    # 5. Evaluation on seeds the agent never trained on, with sensors removed at evaluation time only.
    conditions = [*all_subset_conditions(gmc_rl.load_gmc(gmc_dir).modalities), f"dropout:{args.dropout}"]
    results = evaluate_conditions(
        lambda condition, n_envs, seed: latent_vec_env(args, gmc_dir, condition, n_envs, seed),
        sb3_predictor(agent), conditions, episodes=args.episodes, seeds=[args.seed + 1000],
        n_envs=min(args.episodes, 10), progress=False,
    )
    complete = results["complete"]["per_step_reward"]["mean"]
    rows = ["| condition | per-step reward | ± 95 % CI | episode return | loss vs complete |",
            "|---|---:|---:|---:|---:|"]
    for condition, summary in results.items():
        reward = summary["per_step_reward"]
        half_width = "n/a" if reward["half_width"] is None else f"{reward['half_width']:.3f}"
        loss = relative_loss(complete, reward["mean"])
        rows.append(f"| {condition} | {reward['mean']:.3f} | {half_width} | "
                    f"{summary['episode_return']['mean']:.2f} | {100 * loss:+.1f} % |")
    table = "\n".join(rows)
    print(f"\n{args.env_id}: GMC + SAC, {args.episodes} episodes per condition\n\n{table}\n")

    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "results.md").write_text(table + "\n")
    for path in (data_dir, gmc_dir, args.out / "sac.zip", args.out / "results.json", args.out / "results.md"):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
