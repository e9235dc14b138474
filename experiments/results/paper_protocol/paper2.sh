#!/bin/bash
# Issue 26: GMC agents seeds 1 and 2 under the authors' DDPG protocol, as paper1.sh (same encoder enc10_s0);
# agent seed s is evaluated with evaluation seed s (the pipeline's convention).
set -e
cd /work/main
D=/work/scratch/i26_d3
P=experiments/pendulum_sound_paper.yaml
for s in 1 2; do
  A=$D/paper_gmc_s$s
  if [ ! -f $A/.done ]; then
    if [ -f $A/agent.json ]; then R=--resume; else R=; fi
    gmc-rl train --config $P --method gmc --encoder $D/enc10_s0 --seed $s --out $A --agent.device cpu --no-progress $R
    touch $A/.done
  fi
  E=$D/paper_eval_full_s$s
  [ -f $E/.done ] || { rm -rf $E; gmc-rl evaluate --config $P --agent $A --seeds $s --out $E --no-progress && touch $E/.done; }
  E=$D/paper_eval_pm1_s$s
  [ -f $E/.done ] || { rm -rf $E; gmc-rl evaluate --config $P --agent $A --seeds $s --evaluate.action_limit 1.0 --out $E --no-progress && touch $E/.done; }
done
echo PAPER2_DONE
