"""Backends: ``cpu`` (Numba on NumPy arrays), ``cuda`` (Numba CUDA kernels) and
``cupy`` (CUDA C kernels launched by CuPy). ``gpu_act._dispatch`` chooses one."""
