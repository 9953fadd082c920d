"""Descent Dynamics: the library behind the book, one module per concept.

Pure JAX: functions on pytrees, optax-style optimizers, explicit PRNG keys, no global state.
Import the module you need, e.g. ``from lessons import first_order, problems``.
"""

__version__ = "0.1.0"
__all__ = ["data", "exercises", "first_order", "nets", "problems", "runtime", "train"]
