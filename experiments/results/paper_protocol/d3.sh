#!/bin/bash
# Issue 26, deliverable 3: GMC pretraining for 10 vs 25 epochs on the quick config (experiments/quick.yaml),
# pretraining seeds 0-2, one quick-config SAC agent (seed 0) per encoder, each evaluated with the checkpoint's
# projection (row gmc) and the paper's plain mean (row gmc-mean). Every step is skipped when its .done marker exists;
# an interrupted pretraining is resumed.
set -e
cd /work/main
D=/work/scratch/i26_d3
C=experiments/quick.yaml
pretrain() {  # epochs seed out
  [ -f $3/.done ] && return 0
  if [ -f $3/history.json ]; then R=--resume; else R=; fi
  gmc-rl pretrain --config $C --data $D/data --pretrain.epochs $1 --pretrain.seed $2 --out $3 $R --quiet
  touch $3/.done
}
agent_and_eval() {  # epochs seed
  A=$D/agent$1_s$2
  [ -f $A/.done ] || { rm -rf $A; gmc-rl train --config $C --method gmc --encoder $D/enc$1_s$2 --seed 0 --out $A --no-progress && touch $A/.done; }
  E=$D/eval$1_s$2
  [ -f $E/.done ] || { rm -rf $E; gmc-rl evaluate --config $C --agent $A --seeds 0 --evaluate.conditions "[complete,image,sound]" --evaluate.encoding_rules "[mean]" --out $E --no-progress && touch $E/.done; }
  [ -f $D/align$1_s$2.json ] || gmc-rl align --model $D/enc$1_s$2 --data $D/data --json > $D/align$1_s$2.json
}
[ -f $D/data/.done ] || { gmc-rl collect --config $C --out $D/data --quiet && touch $D/data/.done; }
for s in 0 1 2; do pretrain 10 $s $D/enc10_s$s; agent_and_eval 10 $s; done
for s in 0 1 2; do
  if [ ! -f $D/enc25_s$s/.done ] && [ ! -d $D/enc25_s$s ]; then cp -r $D/enc10_s$s $D/enc25_s$s; rm -f $D/enc25_s$s/.done; fi
  pretrain 25 $s $D/enc25_s$s; agent_and_eval 25 $s
done
echo ALL_DONE
