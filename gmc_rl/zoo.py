"""Run an rl-zoo3 script with gmc-rl's env ids registered: ``python -m gmc_rl.zoo SCRIPT ARGS...``.

``rl_zoo3.train`` and ``enjoy`` import gmc-rl themselves with ``--gym-packages gmc_rl``; ``record_video`` (and other
zoo scripts) have no such option and look the env id up before anything imports gmc-rl. This launcher imports
:mod:`gmc_rl` (which registers the ``gmc_rl/`` ids), then runs ``rl_zoo3.SCRIPT`` as ``python -m`` would, with the
remaining arguments. It needs the ``zoo`` extra (``pip install -e ".[zoo]"``).

Example::

    python -m gmc_rl.zoo record_video --algo sac --env gmc_rl/PendulumSound-v0 -f runs/zoo/logs -n 300
"""

from __future__ import annotations

import importlib.util
import runpy
import sys
from collections.abc import Sequence

import gmc_rl  # noqa: F401  (registers the gmc_rl/ env ids)

USAGE = "usage: python -m gmc_rl.zoo SCRIPT [ARGS...]   (SCRIPT: an rl_zoo3 module, e.g. record_video, enjoy, train)"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rl_zoo3.<argv[0]>`` with ``argv[1:]`` as its command line; 2 with a message when it cannot."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr if not args else sys.stdout)
        return 2 if not args else 0
    script = args[0]
    if not script.isidentifier():
        print(f"{USAGE}\nerror: {script!r} is not a module name", file=sys.stderr)
        return 2
    if importlib.util.find_spec("rl_zoo3") is None:
        print('error: rl_zoo3 is not installed; install the zoo extra: pip install -e ".[zoo]"', file=sys.stderr)
        return 2
    module = f"rl_zoo3.{script}"
    if importlib.util.find_spec(module) is None:
        print(f"error: rl_zoo3 has no script {script!r} (e.g. train, enjoy, record_video)", file=sys.stderr)
        return 2
    sys.argv = [module, *args[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
