"""The benchmark behind ``gpu-act bench``: gpu_act against its peers on this machine.

- ``ops``: what is measured (driven by the activation registry) and the
  minimum memory traffic of each op;
- ``peers``: the implementations compared (gpu_act's backends, NumPy, SciPy,
  PyTorch, CuPy, Triton), each turning an op into a callable or declining it;
- ``timer``: the one timing helper (wall clock on the CPU, CUDA events on the GPU);
- ``check``: every op on every backend against a NumPy float64 reference;
- ``machine``: a description of the machine and library versions;
- ``run``: the driver; ``report``: table, JSON and plot.
"""
