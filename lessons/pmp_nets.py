r"""Networks as layers in time, for the control view of training (:mod:`lessons.pmp`): the toy and the MLP.

A network here is a chain of states :math:`x_0 = \mathrm{embed}(x)`, :math:`x_{i+1} = f_i(x_i, \theta_i)`,
outputs :math:`\mathrm{readout}(x_N)` and per-example losses. Two kinds share that protocol:

* :class:`ResidualNet`, the reference toy of Li, Chen, Tai & E:
  :math:`x_{i+1} = x_i + h \tanh(x_i W_i + b_i)`, every layer the same shape, so the parameters are
  *stacked* (``W`` of shape ``(N, d, d)``, ``b`` of shape ``(N, d)``) and the layers can be ``jax.vmap``-ed;
  it fits :math:`\sin x` on :math:`[-\pi, \pi]` (:func:`sine_data`) from zero (:func:`init_residual`);
* :class:`MLPNet`, :func:`lessons.nets.mlp` as layers: a list of ``(W, b)`` of different shapes, looped.

Each kind has ``layer_map(i, N)`` (the map :math:`f_i(\theta, x)` on a batch), ``forward(params, x0)``
(the states :math:`x_0..x_N`), ``embed``, ``readout``, ``losses(outputs, y)``, ``apply(params, x)`` (the
outputs, for :class:`lessons.train.Objective`), ``check(params, x, y)`` and ``stacked``. Both are frozen
dataclasses, compared by value, so compiled code keyed on a net is shared by equal nets.

Example::

    >>> net = residual_net(num_layers=3, width=2)
    >>> x, y = sine_data(4)
    >>> net.forward(init_residual(net), net.embed(x)).shape  # x_0 .. x_3: zero layers are identities
    (4, 4, 2)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax.numpy as jnp
from jax import lax

from lessons import nets
from lessons.checks import check_callable, check_positive, check_positive_int

__all__ = ["MLPNet", "ResidualNet", "init_residual", "mlp_net", "residual_net", "sine_data"]


@dataclasses.dataclass(frozen=True)
class ResidualNet:
    r"""The reference toy: :math:`x_{i+1} = x_i + h \tanh(x_i W_i + b_i)`, ``num_layers`` layers of ``width``.

    **Embedding and readout.** The scalar input is copied into every coordinate,
    :math:`x_0 = (x, \dots, x)`, and the output is the first coordinate of :math:`x_N`, with the squared loss
    :math:`\ell = \tfrac12 (x_{N,0} - y)^2`. Why not pad, :math:`x_0 = (x, 0, \dots, 0)`? From the zero
    initialisation the gradient then only ever touches coordinate 0 (the costates stay along it), so the
    net stays one-dimensional for ever, and a 1-D residual flow cannot fit a sine. With the copied
    input the read coordinate and the other four (which stay equal to each other by symmetry) differ,
    and the net learns in two dimensions. At zero parameters the output is the input: :math:`\hat y = x`.
    """

    num_layers: int = 20
    width: int = 5
    step: float = 0.25
    stacked = True

    def layer_map(self, index: int, num_layers: int) -> Callable:
        """:math:`f_i(\\theta, x)` for a batch ``x``: the same map at every depth."""
        del index, num_layers
        return self._layer

    def _layer(self, theta, x):
        W, b = theta
        return x + self.step * jnp.tanh(x @ W + b)

    def forward(self, params, x0):
        """The states :math:`x_0..x_N`, stacked: ``(N + 1, S, width)`` (one ``lax.scan`` over the layers)."""
        _, states = lax.scan(lambda state, theta: (self._layer(theta, state),) * 2, x0, params)
        return jnp.concatenate([x0[None], states])

    def embed(self, x):
        return jnp.repeat(x[:, None], self.width, axis=1)

    def readout(self, state):
        return state[:, 0]

    def losses(self, outputs, y):
        return 0.5 * (outputs - y) ** 2

    def apply(self, params, x):
        """The outputs on a batch ``x`` of shape ``(S,)``: shape ``(S,)``."""
        self.check(params, x)
        return self.readout(self.forward(params, self.embed(x))[-1])

    def check(self, params, x, y=None):
        """``(params, x, y)`` as arrays, or a ``ValueError`` naming the argument with the wrong shape."""
        N, d = self.num_layers, self.width
        if not (isinstance(params, (tuple, list)) and len(params) == 2):
            raise TypeError(f"params must be a pair (W, b) of stacked layers (init_residual), got {type(params).__name__}")
        W, b = (jnp.asarray(a) for a in params)
        if W.shape != (N, d, d) or b.shape != (N, d):
            raise ValueError(f"params must be (W, b) of shapes {(N, d, d)} and {(N, d)}, got {W.shape} and {b.shape}")
        x = jnp.asarray(x)
        if x.ndim != 1:
            raise ValueError(f"x must have shape (S,): one scalar input per example, got {x.shape}")
        return (W, b), x, _check_labels(y, x)


@dataclasses.dataclass(frozen=True)
class MLPNet:
    r""":func:`lessons.nets.mlp` as layers: :math:`f_i(x) = \sigma(x W_i + b_i)`, no :math:`\sigma` on the last.

    Parameters are the list of ``(W, b)`` of :func:`lessons.nets.init_mlp`; :math:`x_0` is the input and
    the outputs are :math:`x_N`, with the per-example loss ``per_example_loss(outputs, y)`` (default
    :func:`lessons.nets.logistic_losses`: labels 0/1, one logit).
    """

    activation: Callable = jnp.tanh
    per_example_loss: Callable = nets.logistic_losses
    stacked = False

    def layer_map(self, index: int, num_layers: int) -> Callable:
        return self._output if index == num_layers - 1 else self._hidden

    def _hidden(self, theta, x):
        W, b = theta
        return self.activation(x @ W + b)

    def _output(self, theta, x):
        W, b = theta
        return x @ W + b

    def forward(self, params, x0):
        """The states :math:`x_0..x_N` as a list of ``(S, d_i)`` arrays (a loop: the shapes differ)."""
        states = [x0]
        for i, theta in enumerate(params):
            states.append(self.layer_map(i, len(params))(theta, states[-1]))
        return states

    def embed(self, x):
        return x

    def readout(self, state):
        return state

    def losses(self, outputs, y):
        return self.per_example_loss(outputs, y)

    def apply(self, params, x):
        return nets.mlp(params, x, self.activation)

    def check(self, params, x, y=None):
        """``(params, x, y)`` as arrays, or an error naming the argument: layers that do not chain, a wrong width."""
        if not isinstance(params, (list, tuple)) or not params or not all(len(layer) == 2 for layer in params):
            raise TypeError(f"params must be a non-empty list of (W, b) layers (lessons.nets.mlp), got {type(params).__name__}")
        params = [(jnp.asarray(W), jnp.asarray(b)) for W, b in params]
        for i, (W, b) in enumerate(params):
            if W.ndim != 2 or b.shape != W.shape[1:] or (i and W.shape[0] != params[i - 1][0].shape[1]):
                raise ValueError(f"params must be layers that chain: layer {i} has W {W.shape} and b {b.shape}")
        x = jnp.asarray(x)
        if x.ndim != 2 or x.shape[1] != params[0][0].shape[0]:
            raise ValueError(f"x must have shape (S, {params[0][0].shape[0]}), got {x.shape}")
        return params, x, _check_labels(y, x)


def _check_labels(y, x):
    if y is None:
        return None
    y = jnp.asarray(y)
    if y.shape != (x.shape[0],):
        raise ValueError(f"y must have shape ({x.shape[0]},): one target per example of x, got {y.shape}")
    return y


def residual_net(num_layers: int = 20, width: int = 5, step: float = 0.25) -> ResidualNet:
    """The reference toy network (:class:`ResidualNet`): by default 20 layers of width 5, step :math:`h = 0.25`."""
    check_positive_int(num_layers, "num_layers")
    check_positive_int(width, "width")
    check_positive(step, "step")
    return ResidualNet(int(num_layers), int(width), float(step))


def mlp_net(activation: Callable = jnp.tanh, per_example_loss: Callable = nets.logistic_losses) -> MLPNet:
    """:func:`lessons.nets.mlp` with ``activation`` and the loss ``per_example_loss(outputs, y)``, as layers."""
    check_callable(activation, "activation")
    check_callable(per_example_loss, "per_example_loss", "a function (outputs, y) -> per-example losses")
    return MLPNet(activation, per_example_loss)


def init_residual(net: ResidualNet, *, dtype=jnp.float32):
    """Zero parameters ``(W, b)``, stacked, as in Li et al.: every layer starts as the identity map."""
    if not isinstance(net, ResidualNet):
        raise TypeError(f"net must be a ResidualNet (residual_net), got {type(net).__name__}")
    _check_dtype(dtype)
    N, d = net.num_layers, net.width
    return jnp.zeros((N, d, d), dtype), jnp.zeros((N, d), dtype)


def sine_data(n: int = 100, *, dtype=jnp.float32):
    r"""The toy's data: ``n`` points :math:`x` evenly spaced on :math:`[-\pi, \pi]` and :math:`y = \sin x`, both ``(n,)``.

    Made in float32 and cast to ``dtype``, like :mod:`lessons.data`: the same points in every precision.
    """
    check_positive_int(n, "n", low=2)
    _check_dtype(dtype)
    x = jnp.linspace(-jnp.pi, jnp.pi, n, dtype=jnp.float32)
    return x.astype(dtype), jnp.sin(x).astype(dtype)


def _check_dtype(dtype):
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"dtype must be a floating-point dtype, got {dtype!r}")
