"""Small numpy helpers shared by the colour modules (private)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from fmstf_data.errors import ColorError


def as_float(x: ArrayLike) -> np.ndarray:
    """``x`` as a floating array: float32/float64 arrays keep their dtype, anything else becomes float64."""
    array = np.asarray(x)
    if array.dtype in (np.float32, np.float64):
        return array
    return array.astype(np.float64)


def check_channels(rgb: np.ndarray, axis: int = 0, what: str = "rgb") -> None:
    """Raise ColorError unless ``rgb`` has 3 entries along ``axis``."""
    if rgb.ndim == 0 or rgb.shape[axis] != 3:
        raise ColorError(f"{what} must have 3 channels on axis {axis}, got shape {rgb.shape}")


def apply_matrix(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``matrix @ x`` over the channel axis 0 of ``x`` ([3, ...] -> [3, ...]), in ``x``'s float dtype."""
    x = as_float(x)
    check_channels(x)
    m = np.asarray(matrix, dtype=x.dtype)
    return np.einsum("ij,j...->i...", m, x)
