"""gpu_act for PyTorch: every public gpu_act function as a differentiable
operator (``torch.library.custom_op``, namespace "gpu_act"), for autograd and
``torch.compile(fullgraph=True)``, and ``gpu_act.torch.nn``'s modules,
drop-in replacements for torch.nn's.

Imported only when used (``import gpu_act`` never imports torch)::

    import gpu_act.torch as gat
    from gpu_act.torch import nn as gnn

The functions keep gpu_act's names and parameters, except that the class or
row axis is ``dim`` (PyTorch's name for gpu_act's ``axis``), and the losses
return the loss only (autograd takes the gradient computed with it). The
``NAME_backward`` functions are operators too, which autograd and
``torch.compile`` call; they are not differentiable themselves: gpu_act.torch
computes first derivatives (double backward raises).
"""

from . import nn
from ._ops import FUNCTIONS

globals().update(FUNCTIONS)

__all__ = ["nn", *sorted(FUNCTIONS)]
