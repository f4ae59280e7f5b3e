"""Side-by-side benchmark of d2l's pipeline and d2lcnn: see ``d2lcnn/bench.py`` or ``--help``.

python benchmarks/vs_d2l.py --models lenet,alexnet --epochs 1 --subset 10000
"""

import sys

from d2lcnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
