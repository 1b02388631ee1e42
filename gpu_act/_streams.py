"""Stream objects of any GPU library, as the handle they stand for.

The numbering is that of ``__cuda_array_interface__`` and DLPack: 1 for the
legacy default stream (whose CUstream is 0), 2 for the per-thread default
stream, else the CUstream itself. Both GPU backends read ``stream=`` here, and make CuPy and PyTorch stream
objects for a handle here (those libraries are imported only when a call
needs one).
"""


def handle_of(obj):
    """The handle of a stream object: one with ``__cuda_stream__`` (the CUDA
    stream protocol: Numba, CuPy, PyTorch and cuda.core streams), a CuPy stream
    (``.ptr``) or a ``torch.cuda.Stream`` (``.cuda_stream``)."""
    if hasattr(obj, "__cuda_stream__"):
        handle = obj.__cuda_stream__()[1]
    elif hasattr(obj, "ptr"):  # cupy.cuda.Stream before the protocol
        handle = obj.ptr
    elif hasattr(obj, "cuda_stream"):  # torch.cuda.Stream before the protocol
        handle = obj.cuda_stream
    else:
        raise TypeError(
            "stream must be a Numba stream, a CuPy stream, a torch.cuda.Stream or an object with __cuda_stream__, "
            f"got {type(obj).__name__}"
        )
    return int(handle) or 1


class Handle:
    """A stream handle as an object of the CUDA stream protocol (what CuPy's
    ``Stream.from_external`` and Numba take)."""

    __slots__ = ("handle",)

    def __init__(self, handle):
        self.handle = handle

    def __cuda_stream__(self):
        return (0, 0 if self.handle == 1 else self.handle)


_made = {}


def cupy_stream(handle, device):
    """The CuPy stream object for a stream handle on ``device`` (cached)."""
    s = _made.get(("cupy", handle, device))
    if s is None:
        import cupy

        if handle == 1:
            s = cupy.cuda.Stream.null
        elif handle == 2:
            s = cupy.cuda.Stream.ptds
        else:
            s = cupy.cuda.Stream.from_external(Handle(handle))
        _made[("cupy", handle, device)] = s
    return s


def torch_stream(handle, device):
    """The ``torch.cuda.Stream`` for a stream handle on ``device`` (cached)."""
    s = _made.get(("torch", handle, device))
    if s is None:
        import torch

        if handle == 1:
            s = torch.cuda.default_stream(device)
        else:
            s = torch.cuda.ExternalStream(handle, device=torch.device("cuda", device))
        _made[("torch", handle, device)] = s
    return s
