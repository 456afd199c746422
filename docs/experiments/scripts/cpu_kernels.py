"""Which CPU kernels set the generator's bits: 224 faces (7 emotions x 32 seeds) drawn in a fresh
process under each setting of ATen's and oneDNN's instruction-set caps, with the sha256 of the
uint8 faces and one face's time at one thread. Settings the CPU lacks fall back to what it has.

    PYTHONPATH=. python docs/experiments/scripts/cpu_kernels.py weights/generator.pt
"""

import json
import os
import subprocess
import sys

CHILD = """
import hashlib, json, sys, time
import torch
import ml
from ml.generate import FaceGenerator
torch.set_num_threads(1)
gen = FaceGenerator.from_checkpoint(sys.argv[1])[0]
faces = gen.render([c for c in range(7) for _ in range(32)], [s for _ in range(7) for s in range(32)])
for i in range(20):
    gen.render([i % 7], [i])
t0 = time.perf_counter()
for i in range(200):
    gen.render([i % 7], [i])
print(json.dumps({"sha256": hashlib.sha256(faces.tobytes()).hexdigest()[:16],
                  "one_face_ms": round((time.perf_counter() - t0) / 200 * 1000, 2),
                  "aten": torch.backends.cpu.get_cpu_capability()}))
"""
SETTINGS = [("avx512", "ALL"), ("avx2", "ALL"), ("avx512", "AVX2"), ("avx2", "AVX2"), ("default", "SSE41")]


def main() -> None:
    print("| ATen kernels | oneDNN cap | digest | one face |\n|---|---|---|---|")
    for aten, onednn in SETTINGS:
        env = {**os.environ, "ATEN_CPU_CAPABILITY": aten, "ONEDNN_MAX_CPU_ISA": onednn}
        out = subprocess.run([sys.executable, "-c", CHILD, sys.argv[1]], env=env, capture_output=True, text=True,
                             check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {r['aten']} | {onednn} | `{r['sha256']}` | {r['one_face_ms']} ms |")


if __name__ == "__main__":
    main()
