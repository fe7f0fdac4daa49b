"""Where a fit runs: the torch device and the number of CPU threads it may use."""

from contextlib import contextmanager

import torch


def _cuda_available():
    return torch.cuda.is_available()


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device):
    """The concrete torch device string for the ``device`` parameter.

    'auto' becomes 'cuda' when ``torch.cuda.is_available()`` and 'cpu' otherwise.
    An explicit accelerator that is not present is a ValueError that names the
    way out, not a CUDA stack trace in the middle of training.
    """
    if device == "auto":
        return "cuda" if _cuda_available() else "cpu"
    try:
        kind = torch.device(device).type
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a torch device. Use 'auto', 'cpu', "
            "'cuda', 'cuda:N' or 'mps'."
        ) from exc
    if kind == "cuda" and not _cuda_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine (torch.cuda.is_available() is False). Use device='auto' to "
            "fall back to the CPU, or device='cpu'."
        )
    if kind == "cuda":
        index = torch.device(device).index
        if index is not None and index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible."
            )
    if kind == "mps" and not _mps_available():
        raise ValueError(
            f"device={device!r} was requested but the MPS backend is not "
            "available. Use device='auto' or device='cpu'."
        )
    return str(device)


def map_location(device):
    """The device a pickled model should load onto here: the one it was fitted
    on when that exists on this machine, else the CPU."""
    if device is None:
        return "cpu"
    kind = torch.device(device).type
    if kind == "cuda" and not _cuda_available():
        return "cpu"
    if kind == "mps" and not _mps_available():
        return "cpu"
    return device


@contextmanager
def fit_threads():
    """Scope for one fit's torch CPU threads (restored afterwards)."""
    yield
