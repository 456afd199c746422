"""Emoface machine-learning core: vocabulary, audio front-end, datasets, networks, checkpoints.

Importing this package does no work but one: it caps torch's CPU kernels at AVX2, oneDNN's
(convolutions: ``ONEDNN_MAX_CPU_ISA``) and ATen's own (``ATEN_CPU_CAPABILITY``), unless they are
already set. Both pick kernels by the CPU's instruction set, and the kernels round differently:
the same seed drew different face bytes with oneDNN's AVX-512 and AVX2 convolutions, so replicas
on different x86-64 CPUs disagreed. Capped, every CPU with AVX2 runs the same kernels and draws
the same bytes (``tests/ml/test_shipped_weights.py`` pins them; ``tests/perf/bench_models.py``
prints the speed). torch reads both once, at first use, so they are set before anything runs.
The command-line entry points live in ``ml.train_*`` and ``ml.evaluate_*``. ``service/`` imports
from here, never the other way round.
"""

import os

#: The instruction-set caps; see the module docstring. ``ONEDNN_MAX_CPU_ISA=ALL`` and
#: ``ATEN_CPU_CAPABILITY=avx512`` lift them.
CPU_KERNEL_CAPS = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
for _name, _value in CPU_KERNEL_CAPS.items():
    os.environ.setdefault(_name, _value)
