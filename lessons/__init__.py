"""Descent Dynamics: the library behind the book, one module per concept.

Pure JAX: functions on pytrees, optax-style optimizers, explicit PRNG keys, no global state.
Import the module you need, e.g. ``from lessons import first_order, problems``.
"""

__version__ = "0.1.0"
# Every module, bottom layer first: building blocks, then one module per concept, then the training loops.
__all__ = [
    # building blocks
    "checks",
    "autodiff",
    "linalg",
    "runtime",
    "data",
    "nets",
    "problems",
    # one module per concept
    "first_order",
    "newton",
    "costs",
    "lanczos",
    "curvature",
    "landscape",
    "stability",
    "exercises",
    "exercises_control",
    "exercises_scans",
    "fisher",
    "natural_gradient",
    "layerwise",
    "llqr",
    "lqr",
    "pmp",
    "pmp_nets",
    "scan",
    "deer",
    "attractors",
    "gtf",
    # the training loops, the optimizer registry, and the experiments that run them
    "train",
    "optimizers",
    "rates",
]
