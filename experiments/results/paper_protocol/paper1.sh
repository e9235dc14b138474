#!/bin/bash
# Issue 26: one GMC agent under the authors' DDPG protocol (experiments/pendulum_sound_paper.yaml), on the 10-epoch
# quick-data encoder of pretraining seed 0 (same model settings as the paper config), agent seed 0; evaluated with
# both single-sensor rules over the env's full torque range and clipped to +-1 (the authors' evaluation range).
set -e
cd /work/main
D=/work/scratch/i26_d3
P=experiments/pendulum_sound_paper.yaml
A=$D/paper_gmc_s0
if [ ! -f $A/.done ]; then
  if [ -f $A/agent.json ]; then R=--resume; else R=; fi
  gmc-rl train --config $P --method gmc --encoder $D/enc10_s0 --seed 0 --out $A --agent.device cpu --no-progress $R
  touch $A/.done
fi
[ -f $D/paper_eval_full/.done ] || { rm -rf $D/paper_eval_full; gmc-rl evaluate --config $P --agent $A --seeds 0 --out $D/paper_eval_full --no-progress && touch $D/paper_eval_full/.done; }
[ -f $D/paper_eval_pm1/.done ] || { rm -rf $D/paper_eval_pm1; gmc-rl evaluate --config $P --agent $A --seeds 0 --evaluate.action_limit 1.0 --out $D/paper_eval_pm1 --no-progress && touch $D/paper_eval_pm1/.done; }
echo PAPER_DONE
