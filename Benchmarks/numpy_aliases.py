"""Restores the numpy aliases that numpy 1.24 and 2.0 removed, so the peers' older code
(`np.bool` in oyster, `np.float_` in pytorch-maml-rl) runs under a current numpy.

Importing this module is enough; it only adds names that are missing."""
import numpy as np

for name, value in (("bool", bool), ("int", int), ("float", float), ("object", object),
                    ("float_", np.float64), ("complex_", np.complex128)):
    if name not in np.__dict__:
        setattr(np, name, value)
