# ruff: noqa: E501 -- the table reads best one row per line
"""Bad input, one table for the whole library: every public function that takes user input refuses a
wrong type, a wrong shape, non-finite data and an out-of-range hyperparameter with ``ValueError``
(``TypeError`` for a value of the wrong kind) whose message names the argument to fix.

Each row is ``(module, what is called, a zero-argument call, the error, a regex naming the argument)``;
the test id is ``module.what``. The last test checks that every module of ``lessons.__all__`` has rows.
"""

import math

import jax
import jax.numpy as jnp
import optax
import pytest

import lessons
from lessons import (
    attractors,
    autodiff,
    checks,
    costs,
    curvature,
    data,
    deer,
    exercises,
    exercises_control,
    exercises_scans,
    first_order,
    fisher,
    gtf,
    lanczos,
    landscape,
    layerwise,
    linalg,
    llqr,
    lqr,
    natural_gradient,
    nets,
    newton,
    optimizers,
    pmp,
    pmp_nets,
    problems,
    rates,
    runtime,
    scan,
    stability,
    train,
)

# --- shared inputs (small, so every row runs in milliseconds once compiled) ---------------------------

KEY = jax.random.key(0)
X, Y = data.two_spirals(16, key=KEY, dtype=jnp.float64)
X_NAN, Y_NAN = X.at[3, 1].set(jnp.nan), Y.at[2].set(jnp.nan)
PARAMS = nets.init_mlp([2, 3, 1], key=KEY, dtype=jnp.float64)
LOSS = nets.classifier_loss(X, Y)
W = jnp.ones(3)
QUADRATIC = lambda w: 0.5 * jnp.sum(jnp.arange(1.0, 4.0) * w**2)
PER_EXAMPLE = lambda w: 0.5 * (w[0] - jnp.arange(4.0)) ** 2  # four examples, three parameters
A = jnp.diag(jnp.arange(1.0, 5.0))
MATVEC = lambda v: A @ v
SUPERVISED = train.Objective.supervised(nets.mlp, nets.logistic_losses)
GD = first_order.gradient_descent(0.1)
PROBLEM = problems.quadratic(10.0)
U = jnp.eye(3)[:, :2]
INJECTED = optimizers.get("Heavy ball").transformation().init(W)
TOY = pmp.residual_net(num_layers=2, width=3)
TOY_PARAMS = pmp.init_residual(TOY, dtype=jnp.float64)
XS, YS = pmp.sine_data(8, dtype=jnp.float64)
LQR = (jnp.ones((3, 2, 2)), jnp.ones((3, 2, 1)), jnp.ones((3, 2, 2)), jnp.ones((3, 1, 1)), jnp.eye(2))  # A, B, Q, R, Q_final


def layerwise_update_without_batch():
    opt = layerwise.layerwise_metric()
    return opt.update(PARAMS, opt.init(PARAMS), PARAMS)


def llqr_update_without_batch():
    opt = llqr.llqr()
    return opt.update(PARAMS, opt.init(PARAMS), PARAMS)


def llqr_update_with_mismatched_U():
    opt = llqr.llqr(structure="kronecker")
    state = opt.init(PARAMS)._replace(preconditioner=llqr.identity(PARAMS, "diagonal"))
    return opt.update(PARAMS, state, PARAMS, batch=(X, Y))


def emsa_update_without_batch():
    opt = pmp.emsa()
    return opt.update(PARAMS, opt.init(PARAMS), PARAMS)


def newton_update_without_loss():
    opt = newton.newton()
    return opt.update(jax.grad(QUADRATIC)(W), opt.init(W), W)


# fmt: off
CASES = [
    # --- checks: the helpers name whatever argument they are given
    ("checks", "concrete-str", lambda: checks.concrete("0.1", "learning_rate"), TypeError, r"learning_rate"),
    ("checks", "check_learning_rate-str", lambda: checks.check_learning_rate("0.1"), TypeError, r"learning_rate"),
    ("checks", "check_momentum-1", lambda: checks.check_momentum(1.0), ValueError, r"momentum"),
    ("checks", "check_damping-negative", lambda: checks.check_damping(-1.0), ValueError, r"damping"),
    ("checks", "check_nonnegative-nan", lambda: checks.check_nonnegative(math.nan, "noise"), ValueError, r"noise"),
    ("checks", "check_finite-inf", lambda: checks.check_finite(math.inf, "angle"), ValueError, r"angle"),
    ("checks", "check_fraction-1", lambda: checks.check_fraction(1.0, "tol"), ValueError, r"tol must lie in \(0, 1\)"),
    ("checks", "check_positive-0", lambda: checks.check_positive(0.0, "sigma"), ValueError, r"sigma"),
    ("checks", "check_positive_int-0", lambda: checks.check_positive_int(0, "num_steps"), ValueError, r"num_steps"),
    ("checks", "check_key-int", lambda: checks.check_key(0), ValueError, r"key"),
    ("checks", "check_shaped_like-shape", lambda: checks.check_shaped_like(W, jnp.ones(2), "v"), ValueError, r"v must"),
    ("checks", "check_matvec-int", lambda: checks.check_matvec(3, 4, jnp.float64), TypeError, r"matvec"),
    ("checks", "check_finite_data-nan", lambda: checks.check_finite_data((X_NAN, Y)), ValueError, r"data\[0\]"),
    ("checks", "check_callable-int", lambda: checks.check_callable(3, "loss_fn"), TypeError, r"loss_fn"),
    ("checks", "check_transformation-str", lambda: checks.check_transformation("sgd"), TypeError, r"optimizer"),
    # --- autodiff
    ("autodiff", "hvp-v-shape", lambda: autodiff.hvp(QUADRATIC, W, jnp.ones(2)), ValueError, r"\bv\b"),
    ("autodiff", "hvp-v-structure", lambda: autodiff.hvp(QUADRATIC, W, [W]), ValueError, r"\bv\b"),
    ("autodiff", "hvp-f-not-callable", lambda: autodiff.hvp("f", W, W), TypeError, r"\bf\b"),
    ("autodiff", "hvp_reverse_over_reverse-v-shape", lambda: autodiff.hvp_reverse_over_reverse(QUADRATIC, W, jnp.ones(4)), ValueError, r"\bv\b"),
    ("autodiff", "hvp_reverse_over_forward-v-shape", lambda: autodiff.hvp_reverse_over_forward(QUADRATIC, W, jnp.ones(4)), ValueError, r"\bv\b"),
    ("autodiff", "hessian_matrix-f-not-callable", lambda: autodiff.hessian_matrix(None, W), TypeError, r"\bf\b"),
    ("autodiff", "flat_hvp-f-not-callable", lambda: autodiff.flat_hvp(1.0, W), TypeError, r"\bf\b"),
    # --- linalg
    ("linalg", "conjugate_gradient-max_iters-0", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(4), max_iters=0), ValueError, r"max_iters"),
    ("linalg", "conjugate_gradient-max_iters-float", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(4), max_iters=2.0), ValueError, r"max_iters"),
    ("linalg", "conjugate_gradient-tol-negative", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(4), max_iters=2, tol=-1e-5), ValueError, r"tol"),
    ("linalg", "conjugate_gradient-tol-1", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(4), max_iters=2, tol=1.0), ValueError, r"tol"),
    ("linalg", "conjugate_gradient-tol-str", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(4), max_iters=2, tol="1e-5"), TypeError, r"tol"),
    ("linalg", "conjugate_gradient-b-shape", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones((4, 1)), max_iters=2), ValueError, r"\bb\b"),
    ("linalg", "conjugate_gradient-matvec-shape", lambda: linalg.conjugate_gradient(MATVEC, jnp.ones(3), max_iters=2), ValueError, r"matvec"),
    ("linalg", "conjugate_gradient-matvec-not-callable", lambda: linalg.conjugate_gradient(A, jnp.ones(4), max_iters=2), TypeError, r"matvec"),
    # --- runtime: only progress takes arguments (the flags come from the environment)
    ("runtime", "progress-iterable-int", lambda: runtime.progress(5), TypeError, r"iterable"),
    ("runtime", "progress-total-negative", lambda: runtime.progress(range(3), total=-1), ValueError, r"total"),
    # --- data
    ("data", "two_spirals-n-float", lambda: data.two_spirals(10.0, key=KEY), ValueError, r"\bn\b"),
    # A string n is a ValueError here, not a TypeError: tests/test_data.py pins that older contract.
    ("data", "two_spirals-n-str", lambda: data.two_spirals("10", key=KEY), ValueError, r"\bn\b"),
    ("data", "two_spirals-n-1", lambda: data.two_spirals(1, key=KEY), ValueError, r"\bn\b"),
    ("data", "two_spirals-key-int", lambda: data.two_spirals(10, key=0), ValueError, r"key"),
    ("data", "two_spirals-noise-negative", lambda: data.two_spirals(10, key=KEY, noise=-0.1), ValueError, r"noise"),
    ("data", "two_spirals-noise-nan", lambda: data.two_spirals(10, key=KEY, noise=math.nan), ValueError, r"noise"),
    ("data", "two_spirals-noise-str", lambda: data.two_spirals(10, key=KEY, noise="0.1"), TypeError, r"noise"),
    ("data", "two_spirals-turns-str", lambda: data.two_spirals(10, key=KEY, turns="2"), TypeError, r"turns"),
    ("data", "two_spirals-turns-inf", lambda: data.two_spirals(10, key=KEY, turns=math.inf), ValueError, r"turns"),
    ("data", "two_spirals-dtype-int", lambda: data.two_spirals(10, key=KEY, dtype=jnp.int32), TypeError, r"dtype"),
    ("data", "moons-n-1", lambda: data.moons(1, key=KEY), ValueError, r"\bn\b"),
    ("data", "moons-n-float", lambda: data.moons(10.0, key=KEY), ValueError, r"\bn\b"),
    ("data", "moons-key-int", lambda: data.moons(10, key=0), ValueError, r"key"),
    ("data", "moons-noise-negative", lambda: data.moons(10, key=KEY, noise=-0.1), ValueError, r"noise"),
    ("data", "moons-noise-inf", lambda: data.moons(10, key=KEY, noise=math.inf), ValueError, r"noise"),
    ("data", "moons-noise-str", lambda: data.moons(10, key=KEY, noise="0.1"), TypeError, r"noise"),
    ("data", "moons-dtype-int", lambda: data.moons(10, key=KEY, dtype=jnp.int32), TypeError, r"dtype"),
    ("data", "xor-n-str", lambda: data.xor("10", key=KEY), ValueError, r"\bn\b"),
    ("data", "xor-n-0", lambda: data.xor(0, key=KEY), ValueError, r"\bn\b"),
    ("data", "xor-key-none", lambda: data.xor(10, key=None), ValueError, r"key"),
    ("data", "xor-noise-nan", lambda: data.xor(10, key=KEY, noise=math.nan), ValueError, r"noise"),
    ("data", "xor-noise-none", lambda: data.xor(10, key=KEY, noise=None), TypeError, r"noise"),
    ("data", "xor-dtype-int", lambda: data.xor(10, key=KEY, dtype=jnp.int32), TypeError, r"dtype"),
    ("data", "modular_addition-p-1", lambda: data.modular_addition(1, key=KEY), ValueError, r"\bp\b"),
    ("data", "modular_addition-p-float", lambda: data.modular_addition(7.0, key=KEY), ValueError, r"\bp\b"),
    ("data", "modular_addition-train_fraction-1", lambda: data.modular_addition(7, key=KEY, train_fraction=1.0), ValueError, r"train_fraction"),
    ("data", "modular_addition-key-int", lambda: data.modular_addition(7, key=3), ValueError, r"key"),
    # --- nets
    ("nets", "init_mlp-sizes-float", lambda: nets.init_mlp([2, 3.0, 1], key=KEY), ValueError, r"sizes"),
    ("nets", "init_mlp-sizes-short", lambda: nets.init_mlp([2], key=KEY), ValueError, r"sizes"),
    ("nets", "init_mlp-sizes-zero", lambda: nets.init_mlp([2, 0, 1], key=KEY), ValueError, r"sizes"),
    ("nets", "init_mlp-sizes-int", lambda: nets.init_mlp(3, key=KEY), TypeError, r"sizes"),
    ("nets", "init_mlp-key-int", lambda: nets.init_mlp([2, 1], key=0), ValueError, r"key"),
    ("nets", "init_mlp-dtype-int", lambda: nets.init_mlp([2, 1], key=KEY, dtype=jnp.int32), TypeError, r"dtype"),
    ("nets", "mlp-x-shape", lambda: nets.mlp(PARAMS, jnp.ones((4, 3))), ValueError, r"\bx\b"),
    ("nets", "mlp-x-1d", lambda: nets.mlp(PARAMS, jnp.ones(2)), ValueError, r"\bx\b"),
    ("nets", "mlp-activation-not-callable", lambda: nets.mlp(PARAMS, X, "tanh"), TypeError, r"activation"),
    ("nets", "logistic_losses-labels-size", lambda: nets.logistic_losses(jnp.ones((16, 1)), Y[:10]), ValueError, r"labels"),
    ("nets", "binary_cross_entropy-labels-size", lambda: nets.binary_cross_entropy(jnp.ones(16), Y[:10]), ValueError, r"labels"),
    ("nets", "accuracy-labels-size", lambda: nets.accuracy(jnp.ones(16), Y[:3]), ValueError, r"labels"),
    ("nets", "classifier_loss-y-shape", lambda: nets.classifier_loss(X, Y[:10]), ValueError, r"\by\b"),
    ("nets", "classifier_loss-y-2d", lambda: nets.classifier_loss(X, Y[:, None]), ValueError, r"\by\b"),
    ("nets", "classifier_loss-x-1d", lambda: nets.classifier_loss(X[:, 0], Y), ValueError, r"\bx\b"),
    ("nets", "classifier_loss-x-nan", lambda: nets.classifier_loss(X_NAN, Y), ValueError, r"\bx\b"),
    ("nets", "classifier_loss-y-nan", lambda: nets.classifier_loss(X, Y_NAN), ValueError, r"\by\b"),
    ("nets", "init_tanh_rnn-dim-zero", lambda: nets.init_tanh_rnn(0, 2, key=KEY), ValueError, r"dim"),
    ("nets", "init_tanh_rnn-input_dim-float", lambda: nets.init_tanh_rnn(3, 2.0, key=KEY), ValueError, r"input_dim"),
    ("nets", "init_tanh_rnn-key-int", lambda: nets.init_tanh_rnn(3, 2, key=0), ValueError, r"key"),
    ("nets", "init_shplrnn-hidden-zero", lambda: nets.init_shplrnn(3, 0, key=KEY), ValueError, r"hidden"),
    ("nets", "init_shplrnn-dim-negative", lambda: nets.init_shplrnn(-3, 10, key=KEY), ValueError, r"dim"),
    # --- problems
    ("problems", "quadratic-kappa-below-1", lambda: problems.quadratic(0.5), ValueError, r"kappa"),
    ("problems", "quadratic-kappa-nan", lambda: problems.quadratic(math.nan), ValueError, r"kappa"),
    ("problems", "quadratic-kappa-str", lambda: problems.quadratic("10"), TypeError, r"kappa"),
    ("problems", "quadratic-angle-str", lambda: problems.quadratic(10.0, angle="pi"), TypeError, r"angle"),
    ("problems", "quadratic-angle-inf", lambda: problems.quadratic(10.0, angle=math.inf), ValueError, r"angle"),
    ("problems", "rosenbrock-b-negative", lambda: problems.rosenbrock(b=-1.0), ValueError, r"\bb\b"),
    ("problems", "rosenbrock-b-str", lambda: problems.rosenbrock(b="100"), TypeError, r"\bb\b"),
    ("problems", "rosenbrock-a-nan", lambda: problems.rosenbrock(a=math.nan), ValueError, r"\ba\b"),
    ("problems", "make-name-unknown", lambda: problems.make("banana"), ValueError, r"name"),
    ("problems", "make-name-int", lambda: problems.make(3), TypeError, r"name"),
    ("problems", "make-kappa", lambda: problems.make("quadratic", kappa=0.0), ValueError, r"kappa"),
    ("problems", "Problem.value-x-shape", lambda: PROBLEM.value(jnp.ones(3)), ValueError, r"\bx\b"),
    ("problems", "Problem.grad-x-shape", lambda: PROBLEM.grad(jnp.ones((2, 2))), ValueError, r"\bx\b"),
    ("problems", "Problem.grid-num-0", lambda: PROBLEM.grid(0), ValueError, r"num"),
    # --- first_order
    ("first_order", "gradient_descent-learning_rate-str", lambda: first_order.gradient_descent("0.1"), TypeError, r"learning_rate"),
    ("first_order", "gradient_descent-learning_rate-negative", lambda: first_order.gradient_descent(-0.1), ValueError, r"learning_rate"),
    ("first_order", "gradient_descent-learning_rate-nan", lambda: first_order.gradient_descent(math.nan), ValueError, r"learning_rate"),
    ("first_order", "heavy_ball-momentum-1", lambda: first_order.heavy_ball(0.1, momentum=1.0), ValueError, r"momentum"),
    ("first_order", "heavy_ball-learning_rate-0", lambda: first_order.heavy_ball(0.0), ValueError, r"learning_rate"),
    ("first_order", "nesterov-momentum-negative", lambda: first_order.nesterov(0.1, momentum=-0.5), ValueError, r"momentum"),
    ("first_order", "nesterov-momentum-str", lambda: first_order.nesterov(0.1, momentum="0.9"), TypeError, r"momentum"),
    ("first_order", "gd_rate-learning_rate-negative", lambda: first_order.gd_rate(-0.1, 0.1, 1.0), ValueError, r"learning_rate"),
    ("first_order", "gd_rate-learning_rate-str", lambda: first_order.gd_rate("0.1", 0.1, 1.0), TypeError, r"learning_rate"),
    ("first_order", "gd_rate-mu-0", lambda: first_order.gd_rate(0.1, 0.0, 1.0), ValueError, r"\bmu\b"),
    ("first_order", "gd_rate-L-below-mu", lambda: first_order.gd_rate(0.1, 1.0, 0.5), ValueError, r"\bL\b"),
    ("first_order", "gd_optimal-mu-str", lambda: first_order.gd_optimal("0.1", 1.0), TypeError, r"\bmu\b"),
    ("first_order", "heavy_ball_optimal-L-inf", lambda: first_order.heavy_ball_optimal(0.1, math.inf), ValueError, r"\bL\b"),
    ("first_order", "stability_limit-L-0", lambda: first_order.stability_limit(0.0), ValueError, r"\bL\b"),
    ("first_order", "stability_limit-L-str", lambda: first_order.stability_limit("1"), TypeError, r"\bL\b"),
    ("first_order", "steps_predicted-tol-0", lambda: first_order.steps_predicted(0.5, 0.0), ValueError, r"tol"),
    ("first_order", "steps_predicted-tol-str", lambda: first_order.steps_predicted(0.5, "1e-3"), TypeError, r"tol"),
    ("first_order", "steps_predicted-rate-1", lambda: first_order.steps_predicted(1.0, 1e-3), ValueError, r"rate"),
    ("first_order", "steps_predicted-rate-str", lambda: first_order.steps_predicted("0.5", 1e-3), TypeError, r"rate"),
    ("first_order", "loglog_slope-y-shape", lambda: first_order.loglog_slope([1.0, 2.0, 4.0], [1.0, 2.0]), ValueError, r"\by\b"),
    ("first_order", "loglog_slope-x-one-point", lambda: first_order.loglog_slope([1.0], [1.0]), ValueError, r"\bx\b"),
    ("first_order", "loglog_slope-y-negative", lambda: first_order.loglog_slope([1.0, 2.0], [1.0, -2.0]), ValueError, r"\by\b"),
    # --- newton
    ("newton", "newton-learning_rate-negative", lambda: newton.newton(-1.0), ValueError, r"learning_rate"),
    ("newton", "newton-damping-negative", lambda: newton.newton(damping=-1.0), ValueError, r"damping"),
    ("newton", "newton-update-value_fn-missing", newton_update_without_loss, ValueError, r"value_fn"),
    ("newton", "saddle_free_newton-damping-str", lambda: newton.saddle_free_newton(damping="0.1"), TypeError, r"damping"),
    ("newton", "levenberg_marquardt-initial_damping-negative", lambda: newton.levenberg_marquardt(-1.0), ValueError, r"initial_damping"),
    ("newton", "levenberg_marquardt-decrease-above-1", lambda: newton.levenberg_marquardt(decrease=1.5), ValueError, r"decrease"),
    ("newton", "levenberg_marquardt-increase-str", lambda: newton.levenberg_marquardt(increase="2"), TypeError, r"increase"),
    ("newton", "newton_cg-learning_rate-0", lambda: newton.newton_cg(0.0), ValueError, r"learning_rate"),
    ("newton", "newton_cg-damping-negative", lambda: newton.newton_cg(damping=-0.1), ValueError, r"damping"),
    ("newton", "newton_cg-max_cg_iters-0", lambda: newton.newton_cg(max_cg_iters=0), ValueError, r"max_cg_iters"),
    ("newton", "newton_cg-cg_tol-1", lambda: newton.newton_cg(cg_tol=1.0), ValueError, r"cg_tol"),
    ("newton", "newton_cg-damping_increase-below-1", lambda: newton.newton_cg(damping_increase=0.5), ValueError, r"damping_increase"),
    ("newton", "newton_cg-damping_decrease-str", lambda: newton.newton_cg(damping_decrease="0.5"), TypeError, r"damping_decrease"),
    # --- costs
    ("costs", "compiled_flops-fn-not-callable", lambda: costs.compiled_flops("x @ x", W), TypeError, r"\bfn\b"),
    ("costs", "measure_costs-widths-empty", lambda: costs.measure_costs([], X, Y, key=KEY), ValueError, r"widths"),
    ("costs", "measure_costs-widths-float", lambda: costs.measure_costs([4, 2.5], X, Y, key=KEY), ValueError, r"widths"),
    ("costs", "measure_costs-widths-int", lambda: costs.measure_costs(4, X, Y, key=KEY), TypeError, r"widths"),
    ("costs", "measure_costs-repeats-0", lambda: costs.measure_costs([4], X, Y, key=KEY, repeats=0), ValueError, r"repeats"),
    ("costs", "measure_costs-key-int", lambda: costs.measure_costs([4], X, Y, key=3), ValueError, r"key"),
    ("costs", "measure_costs-y-shape", lambda: costs.measure_costs([4], X, Y[:10], key=KEY), ValueError, r"\by\b"),
    # --- lanczos
    ("lanczos", "tridiagonal-betas-shape", lambda: lanczos.tridiagonal(jnp.ones(3), jnp.ones(3)), ValueError, r"betas"),
    ("lanczos", "lanczos-dim-0", lambda: lanczos.lanczos(MATVEC, 0, 1, key=KEY), ValueError, r"dim"),
    ("lanczos", "lanczos-num_steps-above-dim", lambda: lanczos.lanczos(MATVEC, 4, 5, key=KEY), ValueError, r"num_steps"),
    ("lanczos", "lanczos-key-int", lambda: lanczos.lanczos(MATVEC, 4, 2, key=0), ValueError, r"key"),
    ("lanczos", "lanczos-matvec-shape", lambda: lanczos.lanczos(lambda v: v[:2], 4, 2, key=KEY), ValueError, r"matvec"),
    ("lanczos", "lanczos_top_k-k-above-dim", lambda: lanczos.lanczos_top_k(MATVEC, 4, 5, key=KEY), ValueError, r"\bk\b"),
    ("lanczos", "lanczos_top_k-num_steps-below-k", lambda: lanczos.lanczos_top_k(MATVEC, 4, 3, key=KEY, num_steps=2), ValueError, r"num_steps"),
    ("lanczos", "power_iteration-k-0", lambda: lanczos.power_iteration(MATVEC, 4, 0, key=KEY), ValueError, r"\bk\b"),
    ("lanczos", "power_iteration-max_iters-negative", lambda: lanczos.power_iteration(MATVEC, 4, 1, key=KEY, max_iters=-1), ValueError, r"max_iters"),
    ("lanczos", "power_iteration-tol-0", lambda: lanczos.power_iteration(MATVEC, 4, 1, key=KEY, tol=0.0), ValueError, r"tol"),
    ("lanczos", "power_iteration-tol-1", lambda: lanczos.power_iteration(MATVEC, 4, 1, key=KEY, tol=1.0), ValueError, r"tol"),
    ("lanczos", "power_iteration_top_k-matvec-not-callable", lambda: lanczos.power_iteration_top_k(A, 4, 1, key=KEY), TypeError, r"matvec"),
    # --- curvature
    ("curvature", "rademacher-key-int", lambda: curvature.rademacher(0, 2, 3), ValueError, r"key"),
    ("curvature", "rademacher-num-0", lambda: curvature.rademacher(KEY, 0, 3), ValueError, r"\bnum\b"),
    ("curvature", "hutchinson_trace-num_samples-0", lambda: curvature.hutchinson_trace(MATVEC, 4, key=KEY, num_samples=0), ValueError, r"num_samples"),
    ("curvature", "hutchinson_trace-dim-str", lambda: curvature.hutchinson_trace(MATVEC, "4", key=KEY, num_samples=1), TypeError, r"dim"),
    ("curvature", "slq_density-num_steps-above-dim", lambda: curvature.slq_density(MATVEC, 4, key=KEY, num_steps=5, num_starts=1), ValueError, r"num_steps"),
    ("curvature", "slq_density-num_starts-0", lambda: curvature.slq_density(MATVEC, 4, key=KEY, num_steps=2, num_starts=0), ValueError, r"num_starts"),
    ("curvature", "spectral_density-sigma-0", lambda: curvature.spectral_density(jnp.ones(2), jnp.ones(2), jnp.ones(5), sigma=0.0), ValueError, r"sigma"),
    ("curvature", "spectral_density-sigma-negative", lambda: curvature.spectral_density(jnp.ones(2), jnp.ones(2), jnp.ones(5), sigma=-1.0), ValueError, r"sigma"),
    ("curvature", "spectral_density-weights-shape", lambda: curvature.spectral_density(jnp.ones(2), jnp.ones(3), jnp.ones(5), sigma=0.1), ValueError, r"weights"),
    ("curvature", "hessian_top_k-k-above-dim", lambda: curvature.hessian_top_k(QUADRATIC, W, 4, key=KEY), ValueError, r"\bk\b"),
    ("curvature", "hessian_top_k-key-int", lambda: curvature.hessian_top_k(QUADRATIC, W, 1, key=1), ValueError, r"key"),
    ("curvature", "hessian_top_k-loss_fn-not-callable", lambda: curvature.hessian_top_k("loss", W, 1, key=KEY), TypeError, r"loss_fn"),
    ("curvature", "hessian_slq-num_starts-0", lambda: curvature.hessian_slq(QUADRATIC, W, key=KEY, num_steps=2, num_starts=0), ValueError, r"num_starts"),
    ("curvature", "hessian_spectrum-num_steps-below-k", lambda: curvature.hessian_spectrum(QUADRATIC, W, 2, key=KEY, num_steps=1, num_starts=1), ValueError, r"num_steps"),
    # --- landscape
    ("landscape", "filter_normalized_direction-key-int", lambda: landscape.filter_normalized_direction(PARAMS, key=0), ValueError, r"key"),
    ("landscape", "eigen_directions-k-0", lambda: landscape.eigen_directions(QUADRATIC, W, 0, key=KEY), ValueError, r"\bk\b"),
    ("landscape", "slice_1d-direction-shape", lambda: landscape.slice_1d(QUADRATIC, W, jnp.ones(2), jnp.zeros(3)), ValueError, r"direction"),
    ("landscape", "slice_1d-alphas-2d", lambda: landscape.slice_1d(QUADRATIC, W, W, jnp.zeros((2, 2))), ValueError, r"alphas"),
    ("landscape", "slice_1d-loss_fn-not-callable", lambda: landscape.slice_1d(3, W, W, jnp.zeros(3)), TypeError, r"loss_fn"),
    ("landscape", "slice_2d-d2-shape", lambda: landscape.slice_2d(QUADRATIC, W, W, jnp.ones(4), jnp.zeros(3), jnp.zeros(3)), ValueError, r"d2"),
    ("landscape", "slice_2d-betas-empty", lambda: landscape.slice_2d(QUADRATIC, W, W, W, jnp.zeros(3), jnp.zeros(0)), ValueError, r"betas"),
    ("landscape", "slice_2d-batch_size-0", lambda: landscape.slice_2d(QUADRATIC, W, W, W, jnp.zeros(3), jnp.zeros(3), batch_size=0), ValueError, r"batch_size"),
    ("landscape", "project-d1-shape", lambda: landscape.project([W], W, jnp.ones(2), W), ValueError, r"d1"),
    ("landscape", "project-points-empty", lambda: landscape.project([], W, W, W), ValueError, r"points"),
    ("landscape", "project-points-shape", lambda: landscape.project([jnp.ones(2)], W, W, W), ValueError, r"points"),
    ("landscape", "landscape_with_path-snapshots-empty", lambda: landscape.landscape_with_path(QUADRATIC, [], W, W), ValueError, r"snapshots"),
    ("landscape", "landscape_with_path-num-0", lambda: landscape.landscape_with_path(QUADRATIC, [W], W, W, num=0), ValueError, r"num"),
    ("landscape", "landscape_with_path-margin-negative", lambda: landscape.landscape_with_path(QUADRATIC, [W], W, W, margin=-1.0), ValueError, r"margin"),
    # --- stability
    ("stability", "prefix_means-values-scalar", lambda: stability.prefix_means(1.0), ValueError, r"values"),
    ("stability", "increments-values-one", lambda: stability.increments(jnp.ones(1)), ValueError, r"values"),
    ("stability", "expected_squared_increment-values-2d", lambda: stability.expected_squared_increment(jnp.ones((3, 2))), ValueError, r"values"),
    ("stability", "delta1-per_example_loss-scalar", lambda: stability.delta1(QUADRATIC, W), ValueError, r"per_example_loss"),
    ("stability", "delta1-per_example_loss-not-callable", lambda: stability.delta1("losses", W), TypeError, r"per_example_loss"),
    ("stability", "squared_increments-perturbations-shape", lambda: stability.squared_increments(PER_EXAMPLE, W, jnp.ones((2, 4))), ValueError, r"perturbations"),
    ("stability", "squared_increments-batch_size-0", lambda: stability.squared_increments(PER_EXAMPLE, W, jnp.ones((2, 3)), batch_size=0), ValueError, r"batch_size"),
    ("stability", "delta2_isotropic-sigma-0", lambda: stability.delta2_isotropic(PER_EXAMPLE, W, 0.0, key=KEY, num_samples=2), ValueError, r"sigma"),
    ("stability", "delta2_isotropic-sigma-str", lambda: stability.delta2_isotropic(PER_EXAMPLE, W, "0.1", key=KEY, num_samples=2), TypeError, r"sigma"),
    ("stability", "delta2_isotropic-sigma-vector", lambda: stability.delta2_isotropic(PER_EXAMPLE, W, jnp.ones(2), key=KEY, num_samples=2), ValueError, r"sigma"),
    ("stability", "delta2_isotropic-num_samples-0", lambda: stability.delta2_isotropic(PER_EXAMPLE, W, 0.1, key=KEY, num_samples=0), ValueError, r"num_samples"),
    ("stability", "delta2_isotropic_estimate-key-int", lambda: stability.delta2_isotropic_estimate(PER_EXAMPLE, W, 0.1, key=0, num_samples=2), ValueError, r"key"),
    ("stability", "delta2_subspace-U-shape", lambda: stability.delta2_subspace(PER_EXAMPLE, W, jnp.ones((4, 2)), 0.1, key=KEY, num_samples=2), ValueError, r"\bU\b"),
    ("stability", "delta2_subspace_estimate-sigma-inf", lambda: stability.delta2_subspace_estimate(PER_EXAMPLE, W, U, math.inf, key=KEY, num_samples=2), ValueError, r"sigma"),
    ("stability", "quadratic_model-U-1d", lambda: stability.quadratic_model(PER_EXAMPLE, W, jnp.ones(3)), ValueError, r"\bU\b"),
    ("stability", "delta2_closed_form-c-shape", lambda: stability.delta2_closed_form(1.0, jnp.ones((2, 2)), jnp.ones((2, 2)), 0.1), ValueError, r"\bc\b"),
    ("stability", "delta2_closed_form-B-shape", lambda: stability.delta2_closed_form(1.0, jnp.ones(2), jnp.ones((3, 3)), 0.1), ValueError, r"\bB\b"),
    ("stability", "delta2_closed_form-sigma-negative", lambda: stability.delta2_closed_form(1.0, jnp.ones(2), jnp.ones((2, 2)), -0.1), ValueError, r"sigma"),
    ("stability", "delta2_curvature_aligned-sigma-0", lambda: stability.delta2_curvature_aligned(PER_EXAMPLE, W, U, 0.0), ValueError, r"sigma"),
    ("stability", "delta2_curvature_aligned-U-rows", lambda: stability.delta2_curvature_aligned(PER_EXAMPLE, W, jnp.ones((2, 1)), 0.1), ValueError, r"\bU\b"),
    # --- exercises: a checker needs the reader's function; the reference comparison is compare's job
    ("exercises", "check_gd_rate-fn-float", lambda: exercises.check_gd_rate(3.0), TypeError, r"\bfn\b"),
    ("exercises", "check_hvp-fn-str", lambda: exercises.check_hvp("hvp"), TypeError, r"\bfn\b"),
    ("exercises", "check_power_step-fn-none", lambda: exercises.check_power_step(None), TypeError, r"\bfn\b"),
    ("exercises_control", "check_riccati_step-fn-str", lambda: exercises_control.check_riccati_step("P"), TypeError, r"\bfn\b"),
    ("exercises_control", "check_costate_step-fn-none", lambda: exercises_control.check_costate_step(None), TypeError, r"\bfn\b"),
    ("exercises_scans", "check_compose-fn-str", lambda: exercises_scans.check_compose("A2 A1"), TypeError, r"\bfn\b"),
    ("exercises_scans", "check_deer_step-fn-none", lambda: exercises_scans.check_deer_step(None), TypeError, r"\bfn\b"),
    ("exercises", "compare-rtol-negative", lambda: exercises.compare("x", abs, abs, [dict(x=1.0)], rtol=-1.0), ValueError, r"rtol"),
    ("exercises", "compare-cases-empty", lambda: exercises.compare("x", abs, abs, []), ValueError, r"cases"),
    # --- train
    ("train", "Objective-apply-not-callable", lambda: train.Objective.supervised("mlp", nets.logistic_losses), TypeError, r"apply"),
    ("train", "Objective-loss-not-callable", lambda: train.Objective.supervised(nets.mlp, 3), TypeError, r"loss"),
    ("train", "Objective-both", lambda: train.Objective(apply=nets.mlp, loss=nets.logistic_losses, function=QUADRATIC), ValueError, r"function"),
    ("train", "Objective.of-loss_fn-not-callable", lambda: train.Objective.of(3.0), TypeError, r"loss_fn"),
    ("train", "train-loss_fn-not-callable", lambda: train.train("loss", W, GD, num_steps=1), TypeError, r"loss_fn"),
    ("train", "train-optimizer-str", lambda: train.train(QUADRATIC, W, "sgd", num_steps=1), TypeError, r"optimizer"),
    ("train", "train-num_steps-negative", lambda: train.train(QUADRATIC, W, GD, num_steps=-1), ValueError, r"num_steps"),
    ("train", "train-num_steps-float", lambda: train.train(QUADRATIC, W, GD, num_steps=10.0), ValueError, r"num_steps"),
    ("train", "train-num_steps-str", lambda: train.train(QUADRATIC, W, GD, num_steps="10"), TypeError, r"num_steps"),
    ("train", "train-chunk_size-0", lambda: train.train(QUADRATIC, W, GD, num_steps=1, chunk_size=0), ValueError, r"chunk_size"),
    ("train", "train-snapshot_every-0", lambda: train.train(QUADRATIC, W, GD, num_steps=1, snapshot_every=0), ValueError, r"snapshot_every"),
    ("train", "train-key-int", lambda: train.train(QUADRATIC, W, GD, num_steps=1, key=0), ValueError, r"key"),
    ("train", "train-params-nan", lambda: train.train(QUADRATIC, W.at[0].set(jnp.nan), GD, num_steps=1), ValueError, r"params"),
    ("train", "train-data-x-nan", lambda: train.train(SUPERVISED, PARAMS, GD, num_steps=1, data=(X_NAN, Y), progress=False), ValueError, r"data\[0\]"),
    ("train", "train-data-y-nan", lambda: train.train(SUPERVISED, PARAMS, GD, num_steps=1, data=(X, Y_NAN), progress=False), ValueError, r"data\[1\]"),
    ("train", "train-extras-unknown", lambda: train.train(QUADRATIC, W, GD, num_steps=1, extras=("hessian",)), ValueError, r"extras"),
    ("train", "advance-num_steps-0", lambda: train.advance(train.Objective.of(QUADRATIC), GD, W, GD.init(W), num_steps=0), ValueError, r"num_steps"),
    ("train", "advance-blowup-negative", lambda: train.advance(train.Objective.of(QUADRATIC), GD, W, GD.init(W), num_steps=1, blowup=-1.0), ValueError, r"blowup"),
    ("train", "advance-key-int", lambda: train.advance(train.Objective.of(QUADRATIC), GD, W, GD.init(W), num_steps=1, key=7), ValueError, r"key"),
    ("train", "trajectory-num_steps-negative", lambda: train.trajectory(PROBLEM.value, PROBLEM.start, GD, -1), ValueError, r"num_steps"),
    ("train", "trajectory-optimizer-none", lambda: train.trajectory(PROBLEM.value, PROBLEM.start, None, 3), TypeError, r"optimizer"),
    ("train", "trajectory-blowup-0", lambda: train.trajectory(PROBLEM.value, PROBLEM.start, GD, 3, blowup=0.0), ValueError, r"blowup"),
    ("train", "steps_to_tolerance-tol-1", lambda: train.steps_to_tolerance(PROBLEM.value, jnp.ones(2), jnp.zeros(2), GD, tol=1.0, max_steps=10), ValueError, r"tol"),
    ("train", "steps_to_tolerance-max_steps-0", lambda: train.steps_to_tolerance(PROBLEM.value, jnp.ones(2), jnp.zeros(2), GD, tol=0.1, max_steps=0), ValueError, r"max_steps"),
    # --- optimizers
    ("optimizers", "get-method-unknown", lambda: optimizers.get("SGD with magic"), ValueError, r"method"),
    ("optimizers", "get-method-int", lambda: optimizers.get(1), TypeError, r"method"),
    ("optimizers", "color-method-unknown", lambda: optimizers.color("Newton "), ValueError, r"method"),
    ("optimizers", "set_hyperparameters-learning_rate-negative", lambda: optimizers.set_hyperparameters(INJECTED, learning_rate=-1), ValueError, r"learning_rate"),
    ("optimizers", "set_hyperparameters-learning_rate-str", lambda: optimizers.set_hyperparameters(INJECTED, learning_rate="0.1"), TypeError, r"learning_rate"),
    ("optimizers", "set_hyperparameters-momentum-1", lambda: optimizers.set_hyperparameters(INJECTED, momentum=1.0), ValueError, r"momentum"),
    ("optimizers", "set_hyperparameters-name-unknown", lambda: optimizers.set_hyperparameters(INJECTED, lr=0.1), ValueError, r"\blr\b"),
    ("optimizers", "set_hyperparameters-opt_state-plain", lambda: optimizers.set_hyperparameters(optax.EmptyState(), learning_rate=0.1), ValueError, r"opt_state"),
    ("optimizers", "Method.init-damping-negative", lambda: optimizers.get("Damped Newton").init(W, damping=-1.0), ValueError, r"damping"),
    ("optimizers", "Method.init-mu-0", lambda: optimizers.get("Layerwise metric").init(PARAMS, mu=0.0), ValueError, r"\bmu\b"),
    ("optimizers", "Method.init-LLQR-learning_rate-0", lambda: optimizers.get("LLQR").init(PARAMS, learning_rate=0.0), ValueError, r"learning_rate"),
    ("optimizers", "Method.init-rho-0", lambda: optimizers.get("E-MSA").init(PARAMS, rho=0.0), ValueError, r"\brho\b"),
    ("optimizers", "Method.stability_edge-learning_rate-0", lambda: optimizers.get("GD").stability_edge(learning_rate=0.0), ValueError, r"learning_rate"),
    ("optimizers", "Method.stability_edge-momentum-1", lambda: optimizers.get("Heavy ball").stability_edge(momentum=1.0), ValueError, r"momentum"),
    # --- natural_gradient
    ("natural_gradient", "woodbury_solve-damping-0", lambda: natural_gradient.woodbury_solve(jnp.ones((2, 3)), W, 0.0), ValueError, r"damping"),
    ("natural_gradient", "woodbury_solve-g-shape", lambda: natural_gradient.woodbury_solve(jnp.ones((2, 3)), jnp.ones(4), 1.0), ValueError, r"\bg\b"),
    ("natural_gradient", "woodbury_solve-K-vector", lambda: natural_gradient.woodbury_solve(jnp.ones(3), W, 1.0), ValueError, r"\bK\b"),
    ("natural_gradient", "output_hessian_factor-kind-unknown", lambda: natural_gradient.output_hessian_factor(jnp.ones((4, 1)), "hinge"), ValueError, r"kind"),
    ("natural_gradient", "natural_gradient-loss_kind-unknown", lambda: natural_gradient.natural_gradient(apply=nets.mlp, loss_kind="hinge"), ValueError, r"loss_kind"),
    ("natural_gradient", "natural_gradient-learning_rate-negative", lambda: natural_gradient.natural_gradient(-1.0, apply=nets.mlp), ValueError, r"learning_rate"),
    ("natural_gradient", "kfac-damping-0", lambda: natural_gradient.kfac(damping=0.0), ValueError, r"damping"),
    ("natural_gradient", "kfac-loss_kind-unknown", lambda: natural_gradient.kfac(loss_kind="hinge"), ValueError, r"loss_kind"),
    ("natural_gradient", "kfac_factors-x-shape", lambda: natural_gradient.kfac_factors(PARAMS, jnp.ones((4, 3))), ValueError, r"\bx\b"),
    # --- layerwise
    ("layerwise", "pulled_back_factors-loss_kind-unknown", lambda: layerwise.pulled_back_factors(PARAMS, X, "hinge"), ValueError, r"loss_kind"),
    ("layerwise", "pulled_back_factors-x-shape", lambda: layerwise.pulled_back_factors(PARAMS, jnp.ones((4, 3))), ValueError, r"\bx\b"),
    ("layerwise", "layer_factors-activation-not-callable", lambda: layerwise.layer_factors(PARAMS, X, activation="tanh"), TypeError, r"activation"),
    ("layerwise", "layer_factors-params-not-layers", lambda: layerwise.layer_factors(W, X), TypeError, r"params"),
    ("layerwise", "layerwise_step-mu-0", lambda: layerwise.layerwise_step(PARAMS, PARAMS, X, 0.0), ValueError, r"\bmu\b"),
    ("layerwise", "layerwise_step-mu-str", lambda: layerwise.layerwise_step(PARAMS, PARAMS, X, "0.1"), TypeError, r"\bmu\b"),
    ("layerwise", "layerwise_step-grads-shape", lambda: layerwise.layerwise_step(PARAMS, PARAMS[:1], X, 0.1), ValueError, r"grads"),
    ("layerwise", "layerwise_metric-mu-negative", lambda: layerwise.layerwise_metric(mu=-1.0), ValueError, r"\bmu\b"),
    ("layerwise", "layerwise_metric-learning_rate-0", lambda: layerwise.layerwise_metric(0.0), ValueError, r"learning_rate"),
    ("layerwise", "layerwise_metric-loss_kind-unknown", lambda: layerwise.layerwise_metric(loss_kind="hinge"), ValueError, r"loss_kind"),
    ("layerwise", "layerwise_metric-activation-not-callable", lambda: layerwise.layerwise_metric(activation=None), TypeError, r"activation"),
    ("layerwise", "layerwise_metric-update-batch-missing", layerwise_update_without_batch, ValueError, r"batch"),
    ("layerwise", "gradient_flow-grad_fn-not-callable", lambda: layerwise.gradient_flow("grad", jnp.eye(3), W, 1.0, 10), TypeError, r"grad_fn"),
    ("layerwise", "gradient_flow-w0-2d", lambda: layerwise.gradient_flow(jax.grad(QUADRATIC), jnp.eye(3), jnp.ones((3, 1)), 1.0, 10), ValueError, r"\bw0\b"),
    ("layerwise", "gradient_flow-metric-shape", lambda: layerwise.gradient_flow(jax.grad(QUADRATIC), jnp.eye(2), W, 1.0, 10), ValueError, r"metric"),
    ("layerwise", "gradient_flow-metric-not-spd", lambda: layerwise.gradient_flow(jax.grad(QUADRATIC), -jnp.eye(3), W, 1.0, 10), ValueError, r"metric"),
    ("layerwise", "gradient_flow-t_final-0", lambda: layerwise.gradient_flow(jax.grad(QUADRATIC), jnp.eye(3), W, 0.0, 10), ValueError, r"t_final"),
    ("layerwise", "gradient_flow-num_steps-0", lambda: layerwise.gradient_flow(jax.grad(QUADRATIC), jnp.eye(3), W, 1.0, 0), ValueError, r"num_steps"),
    ("layerwise", "action-dt-0", lambda: layerwise.action(jnp.ones((4, 3)), 0.0, jax.grad(QUADRATIC), jnp.eye(3)), ValueError, r"\bdt\b"),
    ("layerwise", "action-path-1d", lambda: layerwise.action(W, 0.1, jax.grad(QUADRATIC), jnp.eye(3)), ValueError, r"path"),
    ("layerwise", "action-metric-shape", lambda: layerwise.action(jnp.ones((4, 3)), 0.1, jax.grad(QUADRATIC), jnp.eye(4)), ValueError, r"metric"),
    ("layerwise", "action_excess-path-one-point", lambda: layerwise.action_excess(jnp.ones((1, 3)), 0.1, jax.grad(QUADRATIC), jnp.eye(3)), ValueError, r"path"),
    ("layerwise", "action_excess-grad_fn-not-callable", lambda: layerwise.action_excess(jnp.ones((4, 3)), 0.1, None, jnp.eye(3)), TypeError, r"grad_fn"),
    ("layerwise", "perturb_path-direction-shape", lambda: layerwise.perturb_path(jnp.ones((4, 3)), jnp.ones(2)), ValueError, r"direction"),
    ("layerwise", "perturb_path-amplitude-nan", lambda: layerwise.perturb_path(jnp.ones((4, 3)), W, math.nan), ValueError, r"amplitude"),
    # --- lqr
    ("lqr", "riccati-A-2d", lambda: lqr.riccati(jnp.eye(2), *LQR[1:]), ValueError, r"^A\b"),
    ("lqr", "riccati-B-stages", lambda: lqr.riccati(LQR[0], LQR[1][:2], *LQR[2:]), ValueError, r"^B\b"),
    ("lqr", "riccati-Q-shape", lambda: lqr.riccati(*LQR[:2], jnp.ones((3, 1, 1)), *LQR[3:]), ValueError, r"^Q\b"),
    ("lqr", "riccati-R-shape", lambda: lqr.riccati(*LQR[:3], jnp.ones((3, 2, 2)), LQR[4]), ValueError, r"^R\b"),
    ("lqr", "riccati-Q_final-shape", lambda: lqr.riccati(*LQR[:4], jnp.eye(3)), ValueError, r"^Q_final\b"),
    ("lqr", "riccati-M-shape", lambda: lqr.riccati(*LQR, M=jnp.ones((3, 2, 1))), ValueError, r"^M\b"),
    ("lqr", "riccati-A-nan", lambda: lqr.riccati(LQR[0].at[0, 0, 0].set(jnp.nan), *LQR[1:]), ValueError, r"^A\b"),
    ("lqr", "riccati-R-not-definite", lambda: lqr.riccati(*LQR[:3], -LQR[3], 0 * LQR[4]), ValueError, r"^R\b.*positive definite"),
    ("lqr", "riccati_affine-c_final-shape", lambda: lqr.riccati_affine(*LQR, jnp.ones(3)), ValueError, r"^c_final\b"),
    ("lqr", "rollout-K-shape", lambda: lqr.rollout(*LQR[:2], jnp.ones((3, 2, 1)), jnp.ones(2)), ValueError, r"^K\b"),
    ("lqr", "rollout-x0-shape", lambda: lqr.rollout(*LQR[:2], jnp.ones((3, 1, 2)), jnp.ones(3)), ValueError, r"^x0\b"),
    ("lqr", "cost-us-length", lambda: lqr.cost(*LQR[2:], jnp.ones((4, 2)), jnp.ones((4, 1))), ValueError, r"xs and us"),
    ("lqr", "double_integrator-dt-0", lambda: lqr.double_integrator(0.0), ValueError, r"\bdt\b"),
    ("lqr", "lqr_step-A-not-a-list", lambda: lqr.lqr_step(LQR[0][0], *LQR[1:4], LQR[4], jnp.ones(2)), ValueError, r"^A\b"),
    ("lqr", "lqr_step-B-stage-shape", lambda: lqr.lqr_step(list(LQR[0]), [LQR[1][0], jnp.ones((1, 2)), LQR[1][2]], list(LQR[2]), list(LQR[3]), LQR[4], jnp.ones(2)), ValueError, r"^B\[1\]"),
    ("lqr", "network_lqr_step-damping-0", lambda: lqr.network_lqr_step(PARAMS, X, Y, damping=0.0), ValueError, r"\bdamping\b"),
    ("lqr", "network_lqr_step-damping-str", lambda: lqr.network_lqr_step(PARAMS, X, Y, damping="0.1"), TypeError, r"\bdamping\b"),
    ("lqr", "network_lqr_step-newton-damping-too-small", lambda: lqr.network_lqr_step(PARAMS, X, 1 - Y, damping=1e-9, mode="newton"), ValueError, r"^damping is too small"),
    ("lqr", "network_lqr_step-mode-unknown", lambda: lqr.network_lqr_step(PARAMS, X, Y, mode="fisher"), ValueError, r"^mode\b"),
    ("lqr", "network_lqr_step-loss_kind-unknown", lambda: lqr.network_lqr_step(PARAMS, X, Y, loss_kind="hinge"), ValueError, r"^loss_kind\b"),
    ("lqr", "network_lqr_step-y-shape", lambda: lqr.network_lqr_step(PARAMS, X, Y[:5]), ValueError, r"^y\b"),
    ("lqr", "network_lqr_step-x-nan", lambda: lqr.network_lqr_step(PARAMS, X_NAN, Y), ValueError, r"^x\b"),
    ("lqr", "network_lqr-activation-not-callable", lambda: lqr.network_lqr(PARAMS, X, Y, activation="tanh"), TypeError, r"^activation\b"),
    ("lqr", "network_lqr-params-not-layers", lambda: lqr.network_lqr(W, X, Y), TypeError, r"^params\b"),
    # --- pmp_nets: the networks as layers, the toy's data
    ("pmp_nets", "residual_net-num_layers-0", lambda: pmp_nets.residual_net(num_layers=0), ValueError, r"num_layers"),
    ("pmp_nets", "residual_net-width-float", lambda: pmp_nets.residual_net(width=5.0), ValueError, r"width"),
    ("pmp_nets", "residual_net-step-negative", lambda: pmp_nets.residual_net(step=-0.25), ValueError, r"step"),
    ("pmp_nets", "mlp_net-activation-not-callable", lambda: pmp_nets.mlp_net(activation="tanh"), TypeError, r"activation"),
    ("pmp_nets", "mlp_net-per_example_loss-not-callable", lambda: pmp_nets.mlp_net(per_example_loss=None), TypeError, r"per_example_loss"),
    ("pmp_nets", "init_residual-net-mlp", lambda: pmp_nets.init_residual(pmp_nets.mlp_net()), TypeError, r"\bnet\b"),
    ("pmp_nets", "init_residual-dtype-int", lambda: pmp_nets.init_residual(TOY, dtype=jnp.int32), TypeError, r"dtype"),
    ("pmp_nets", "sine_data-n-1", lambda: pmp_nets.sine_data(1), ValueError, r"\bn\b"),
    ("pmp_nets", "sine_data-n-str", lambda: pmp_nets.sine_data("100"), TypeError, r"\bn\b"),
    # --- pmp: states, costates, Hamiltonian, (E-)MSA
    ("pmp", "forward_states-net-str", lambda: pmp.forward_states("mlp", PARAMS, X), TypeError, r"\bnet\b"),
    ("pmp", "forward_states-toy-x-2d", lambda: pmp.forward_states(TOY, TOY_PARAMS, X), ValueError, r"\bx\b"),
    ("pmp", "forward_states-mlp-x-width", lambda: pmp.forward_states(pmp.mlp_net(), PARAMS, jnp.ones((4, 3))), ValueError, r"\bx\b"),
    ("pmp", "costates-mlp-params-mismatched-layers", lambda: pmp.costates(pmp.mlp_net(), [PARAMS[0], (jnp.ones((4, 1)), jnp.ones(1))], X, Y), ValueError, r"params"),
    ("pmp", "costates-mlp-params-not-layers", lambda: pmp.costates(pmp.mlp_net(), W, X, Y), TypeError, r"params"),
    ("pmp", "costates-toy-params-depth", lambda: pmp.costates(TOY, pmp.init_residual(pmp.residual_net(3, 3)), XS, YS), ValueError, r"params"),
    ("pmp", "costates-y-shape", lambda: pmp.costates(TOY, TOY_PARAMS, XS, YS[:5]), ValueError, r"\by\b"),
    ("pmp", "hamiltonian-layer-not-callable", lambda: pmp.hamiltonian("tanh", PARAMS[0], X, jnp.ones((16, 3))), TypeError, r"layer"),
    ("pmp", "hamiltonian-p_next-shape", lambda: pmp.hamiltonian(TOY.layer_map(0, 2), (TOY_PARAMS[0][0], TOY_PARAMS[1][0]), jnp.ones((8, 3)), jnp.ones((8, 2))), ValueError, r"p_next"),
    ("pmp", "hamiltonian-weight_decay-negative", lambda: pmp.hamiltonian(TOY.layer_map(0, 2), None, XS, XS, -1.0), ValueError, r"weight_decay"),
    ("pmp", "loss-weight_decay-nan", lambda: pmp.loss(TOY, TOY_PARAMS, XS, YS, math.nan), ValueError, r"weight_decay"),
    ("pmp", "msa_step-num_lbfgs_steps-0", lambda: pmp.msa_step(TOY, TOY_PARAMS, XS, YS, num_lbfgs_steps=0), ValueError, r"num_lbfgs_steps"),
    ("pmp", "emsa_step-rho-0", lambda: pmp.emsa_step(TOY, TOY_PARAMS, XS, YS, rho=0.0), ValueError, r"\brho\b"),
    ("pmp", "emsa_step-rho-negative", lambda: pmp.emsa_step(pmp.mlp_net(), PARAMS, X, Y, rho=-1.0), ValueError, r"\brho\b"),
    ("pmp", "emsa_step-rho-str", lambda: pmp.emsa_step(TOY, TOY_PARAMS, XS, YS, rho="1"), TypeError, r"\brho\b"),
    ("pmp", "emsa_step-num_lbfgs_steps-float", lambda: pmp.emsa_step(TOY, TOY_PARAMS, XS, YS, num_lbfgs_steps=10.0), ValueError, r"num_lbfgs_steps"),
    ("pmp", "emsa-rho-0", lambda: pmp.emsa(rho=0.0), ValueError, r"\brho\b"),
    ("pmp", "emsa-learning_rate-negative", lambda: pmp.emsa(learning_rate=-1.0), ValueError, r"learning_rate"),
    ("pmp", "emsa-num_lbfgs_steps-0", lambda: pmp.emsa(num_lbfgs_steps=0), ValueError, r"num_lbfgs_steps"),
    ("pmp", "emsa-weight_decay-negative", lambda: pmp.emsa(weight_decay=-1e-3), ValueError, r"weight_decay"),
    ("pmp", "emsa-net-str", lambda: pmp.emsa(net="mlp"), TypeError, r"\bnet\b"),
    ("pmp", "emsa-update-batch-missing", emsa_update_without_batch, ValueError, r"batch"),
    # --- llqr
    ("llqr", "identity-structure-unknown", lambda: llqr.identity(PARAMS, "full"), ValueError, r"structure"),
    ("llqr", "identity-params-not-layers", lambda: llqr.identity(W), TypeError, r"params"),
    ("llqr", "apply-U-mismatched", lambda: llqr.apply(llqr.identity(PARAMS, "kronecker"), PARAMS, "diagonal"), ValueError, r"\bU\b"),
    ("llqr", "lqr_cost-U-mismatched", lambda: llqr.lqr_cost(PARAMS, (X, Y), llqr.identity(PARAMS)[:1], PARAMS), ValueError, r"\bU\b"),
    ("llqr", "lqr_cost-damping-0", lambda: llqr.lqr_cost(PARAMS, (X, Y), llqr.identity(PARAMS), PARAMS, damping=0.0), ValueError, r"damping"),
    ("llqr", "lqr_cost-loss_kind-unknown", lambda: llqr.lqr_cost(PARAMS, (X, Y), llqr.identity(PARAMS), PARAMS, loss_kind="hinge"), ValueError, r"loss_kind"),
    ("llqr", "lqr_cost-x-shape", lambda: llqr.lqr_cost(PARAMS, (jnp.ones((4, 3)), None), llqr.identity(PARAMS), PARAMS), ValueError, r"\bx\b"),
    ("llqr", "lqr_cost-batch-array", lambda: llqr.lqr_cost(PARAMS, X, llqr.identity(PARAMS), PARAMS), TypeError, r"batch"),
    ("llqr", "fit-num_steps-negative", lambda: llqr.fit(PARAMS, (X, Y), PARAMS, llqr.identity(PARAMS), num_steps=-1), ValueError, r"num_steps"),
    ("llqr", "fit-momentum-1", lambda: llqr.fit(PARAMS, (X, Y), PARAMS, llqr.identity(PARAMS), momentum=1.0), ValueError, r"momentum"),
    ("llqr", "fit-grads-shape", lambda: llqr.fit(PARAMS, (X, Y), PARAMS[:1], llqr.identity(PARAMS)), ValueError, r"grads"),
    ("llqr", "llqr-structure-unknown", lambda: llqr.llqr(structure="full"), ValueError, r"structure"),
    ("llqr", "llqr-refit_every-0", lambda: llqr.llqr(refit_every=0), ValueError, r"refit_every"),
    ("llqr", "llqr-refit_every-float", lambda: llqr.llqr(refit_every=10.0), ValueError, r"refit_every"),
    ("llqr", "llqr-fit_steps-negative", lambda: llqr.llqr(fit_steps=-1), ValueError, r"fit_steps"),
    ("llqr", "llqr-ema-1", lambda: llqr.llqr(ema=1.0), ValueError, r"\bema\b"),
    ("llqr", "llqr-ema-negative", lambda: llqr.llqr(ema=-0.1), ValueError, r"\bema\b"),
    ("llqr", "llqr-damping-0", lambda: llqr.llqr(damping=0.0), ValueError, r"damping"),
    ("llqr", "llqr-damping-negative", lambda: llqr.llqr(damping=-1e-3), ValueError, r"damping"),
    ("llqr", "llqr-learning_rate-0", lambda: llqr.llqr(0.0), ValueError, r"learning_rate"),
    ("llqr", "llqr-fit_learning_rate-str", lambda: llqr.llqr(fit_learning_rate="0.3"), TypeError, r"fit_learning_rate"),
    ("llqr", "llqr-outer-str", lambda: llqr.llqr(outer="adam"), TypeError, r"outer"),
    ("llqr", "llqr-fit_batch-0", lambda: llqr.llqr(fit_batch=0), ValueError, r"fit_batch"),
    ("llqr", "llqr-update-batch-missing", llqr_update_without_batch, ValueError, r"batch"),
    ("llqr", "llqr-update-U-mismatched", llqr_update_with_mismatched_U, ValueError, r"\bU\b"),
    # --- fisher
    ("fisher", "fisher-kind-unknown", lambda: fisher.fisher(nets.mlp, PARAMS, X, "hinge"), ValueError, r"kind"),
    ("fisher", "fisher-apply-not-callable", lambda: fisher.fisher("mlp", PARAMS, X, "logistic"), TypeError, r"apply"),
    ("fisher", "fisher-x-nan", lambda: fisher.fisher(nets.mlp, PARAMS, X_NAN, "logistic"), ValueError, r"\bx\b"),
    ("fisher", "sampled_fisher-key-int", lambda: fisher.sampled_fisher(nets.mlp, PARAMS, X, "logistic", key=0), ValueError, r"key"),
    ("fisher", "sampled_fisher-num_samples-0", lambda: fisher.sampled_fisher(nets.mlp, PARAMS, X, "logistic", key=KEY, num_samples=0), ValueError, r"num_samples"),
    ("fisher", "empirical_fisher-y-size", lambda: fisher.empirical_fisher(nets.mlp, PARAMS, X, Y[:5], "logistic"), ValueError, r"labels"),
    ("fisher", "empirical_fisher-softmax-float-labels", lambda: fisher.empirical_fisher(lambda p, x: x @ jnp.ones((2, 3)), None, X, Y, "softmax"), TypeError, r"integer classes"),
    ("fisher", "log_likelihood-logistic-two-logits", lambda: fisher.log_likelihood(jnp.ones((4, 2)), jnp.ones(4), "logistic"), ValueError, r"one logit"),
    ("fisher", "predictive_kl-shapes", lambda: fisher.predictive_kl(jnp.ones((4, 3)), jnp.ones((4, 2)), "softmax"), ValueError, r"z_p and z_q"),
    ("fisher", "predictive_kl-kind-unknown", lambda: fisher.predictive_kl(jnp.ones(4), jnp.ones(4), "hinge"), ValueError, r"kind"),
    # --- rates
    ("rates", "contraction_rates-learning_rates-negative", lambda: rates.contraction_rates(PROBLEM, [0.5, -0.1]), ValueError, r"learning_rates"),
    ("rates", "contraction_rates-learning_rates-empty", lambda: rates.contraction_rates(PROBLEM, []), ValueError, r"learning_rates"),
    ("rates", "contraction_rates-learning_rates-str", lambda: rates.contraction_rates(PROBLEM, ["0.1"]), TypeError, r"learning_rates"),
    ("rates", "contraction_rates-momentum-1", lambda: rates.contraction_rates(PROBLEM, [0.1], momentum=1.0), ValueError, r"momentum"),
    ("rates", "contraction_rates-num_steps-0", lambda: rates.contraction_rates(PROBLEM, [0.1], num_steps=0), ValueError, r"num_steps"),
    ("rates", "contraction_rates-problem-str", lambda: rates.contraction_rates("quadratic", [0.1]), TypeError, r"problem"),
    ("rates", "kappa_sweep-kappas-below-1", lambda: rates.kappa_sweep([0.5, 10.0]), ValueError, r"kappas"),
    ("rates", "kappa_sweep-kappas-str", lambda: rates.kappa_sweep(["ten"]), TypeError, r"kappas"),
    ("rates", "kappa_sweep-tol-0", lambda: rates.kappa_sweep([10.0], tol=0.0), ValueError, r"tol"),
    ("rates", "kappa_sweep-tol-str", lambda: rates.kappa_sweep([10.0], tol="1e-4"), TypeError, r"tol"),
    ("rates", "kappa_sweep-max_steps-negative", lambda: rates.kappa_sweep([10.0], max_steps=-1), ValueError, r"max_steps"),
    # --- data (Lorenz-63) and attractors: the dynamical-systems-reconstruction measures
    ("data", "lorenz63-num_steps-0", lambda: data.lorenz63(0, key=KEY), ValueError, r"num_steps"),
    ("data", "lorenz63-key-int", lambda: data.lorenz63(10, key=0), ValueError, r"key"),
    ("data", "lorenz63-dt-0", lambda: data.lorenz63(10, key=KEY, dt=0.0), ValueError, r"\bdt\b"),
    ("data", "lorenz63-burn_in-negative", lambda: data.lorenz63(10, key=KEY, burn_in=-1), ValueError, r"burn_in"),
    ("data", "lorenz63-rho-nan", lambda: data.lorenz63(10, key=KEY, rho=math.nan), ValueError, r"\brho\b"),
    ("data", "lorenz63-sigma-str", lambda: data.lorenz63(10, key=KEY, sigma="10"), TypeError, r"\bsigma\b"),
    ("data", "lorenz63-noise-negative", lambda: data.lorenz63(10, key=KEY, noise=-0.1), ValueError, r"noise"),
    ("data", "lorenz63-dtype-int", lambda: data.lorenz63(10, key=KEY, dtype=jnp.int32), TypeError, r"dtype"),
    ("data", "lorenz63_vector_field-x-shape", lambda: data.lorenz63_vector_field(jnp.ones(2)), ValueError, r"^x\b"),
    ("data", "lorenz63_step-x-shape", lambda: data.lorenz63_step(jnp.ones((4, 2)), 0.01), ValueError, r"^x\b"),
    ("attractors", "free_run-step-not-callable", lambda: attractors.free_run("tanh", W, 10), TypeError, r"^step\b"),
    ("attractors", "free_run-step-wrong-shape", lambda: attractors.free_run(lambda z: z[:2], W, 10), ValueError, r"^step\b"),
    ("attractors", "free_run-z0-2d", lambda: attractors.free_run(jnp.tanh, jnp.ones((2, 3)), 10), ValueError, r"^z0\b"),
    ("attractors", "free_run-z0-nan", lambda: attractors.free_run(jnp.tanh, W.at[1].set(jnp.nan), 10), ValueError, r"^z0\b"),
    ("attractors", "free_run-num_steps-0", lambda: attractors.free_run(jnp.tanh, W, 0), ValueError, r"num_steps"),
    ("attractors", "lyapunov_exponent-num_steps-float", lambda: attractors.lyapunov_exponent(jnp.tanh, W, 10.0), ValueError, r"num_steps"),
    ("attractors", "lyapunov_exponent-burn_in-negative", lambda: attractors.lyapunov_exponent(jnp.tanh, W, 10, burn_in=-1), ValueError, r"burn_in"),
    ("attractors", "lyapunov_exponent-dt-0", lambda: attractors.lyapunov_exponent(jnp.tanh, W, 10, dt=0.0), ValueError, r"\bdt\b"),
    ("attractors", "lyapunov_exponent-renorm_every-0", lambda: attractors.lyapunov_exponent(jnp.tanh, W, 10, renorm_every=0), ValueError, r"renorm_every"),
    ("attractors", "lyapunov_exponent-step-none", lambda: attractors.lyapunov_exponent(None, W, 10), TypeError, r"^step\b"),
    ("attractors", "lyapunov_spectrum-num-too-large", lambda: attractors.lyapunov_spectrum(jnp.tanh, W, 10, num=4), ValueError, r"^num\b"),
    ("attractors", "lyapunov_spectrum-z0-empty", lambda: attractors.lyapunov_spectrum(jnp.tanh, jnp.ones(0), 10), ValueError, r"^z0\b"),
    ("attractors", "state_space_divergence-data-1d", lambda: attractors.state_space_divergence(W, jnp.ones((5, 3))), ValueError, r"^data\b"),
    ("attractors", "state_space_divergence-generated-dims", lambda: attractors.state_space_divergence(jnp.ones((5, 3)), jnp.ones((5, 2))), ValueError, r"^generated\b"),
    ("attractors", "state_space_divergence-data-nan", lambda: attractors.state_space_divergence(X_NAN, X), ValueError, r"^data\b"),
    ("attractors", "state_space_divergence-generated-inf", lambda: attractors.state_space_divergence(X, X.at[0, 0].set(jnp.inf)), ValueError, r"^generated\b"),
    ("attractors", "state_space_divergence-bins-0", lambda: attractors.state_space_divergence(X, X, bins=0), ValueError, r"^bins\b"),
    ("attractors", "state_space_divergence-bins-float", lambda: attractors.state_space_divergence(X, X, bins=30.0), ValueError, r"^bins\b"),
    ("attractors", "state_space_divergence-pseudo_count-0", lambda: attractors.state_space_divergence(X, X, pseudo_count=0.0), ValueError, r"pseudo_count"),
    ("attractors", "hellinger_distance-data-one-step", lambda: attractors.hellinger_distance(X[:1], X), ValueError, r"^data\b"),
    ("attractors", "hellinger_distance-generated-3d", lambda: attractors.hellinger_distance(X, X[None]), ValueError, r"^generated\b"),
    ("attractors", "hellinger_distance-generated-nan", lambda: attractors.hellinger_distance(X, X_NAN), ValueError, r"^generated\b"),
    ("attractors", "hellinger_distance-smoothing-negative", lambda: attractors.hellinger_distance(X, X, smoothing=-1.0), ValueError, r"smoothing"),
    ("attractors", "hellinger_distance-smoothing-str", lambda: attractors.hellinger_distance(X, X, smoothing="20"), TypeError, r"smoothing"),
    # --- scan and deer: linear recurrences, DEER (chapter 8)
    ("scan", "parallel_scan-T-mismatch", lambda: scan.parallel_scan(jnp.ones((4, 2)), jnp.ones((5, 2)), jnp.ones(2)), ValueError, r"^A\b"),
    ("scan", "parallel_scan-A-wrong-d", lambda: scan.parallel_scan(jnp.ones((4, 3, 3)), jnp.ones((4, 2)), jnp.ones(2)), ValueError, r"^A\b"),
    ("scan", "parallel_scan-A-ndim", lambda: scan.parallel_scan(jnp.ones(4), jnp.ones((4, 2)), jnp.ones(2)), ValueError, r"^A\b"),
    ("scan", "parallel_scan-h0-nan", lambda: scan.parallel_scan(jnp.ones((4, 2)), jnp.ones((4, 2)), jnp.array([1.0, jnp.nan])), ValueError, r"^h0\b"),
    ("scan", "sequential_scan-b-ndim", lambda: scan.sequential_scan(jnp.ones((4, 2)), jnp.ones(4), jnp.ones(2)), ValueError, r"^b\b"),
    ("scan", "sequential_scan-h0-shape", lambda: scan.sequential_scan(jnp.ones((4, 2, 2)), jnp.ones((4, 2)), jnp.ones(3)), ValueError, r"^h0\b"),
    ("scan", "scan_tree-T-0", lambda: scan.scan_tree(0), ValueError, r"^T\b"),
    ("scan", "tree_scan-elements-empty", lambda: scan.tree_scan([], scan.compose), ValueError, r"elements"),
    ("scan", "work_depth-d-float", lambda: scan.work_depth(8, 2.0, diagonal=True), ValueError, r"^d\b"),
    ("scan", "work_depth-diagonal-str", lambda: scan.work_depth(8, 2, diagonal="yes"), TypeError, r"^diagonal\b"),
    ("deer", "deer-f-not-callable", lambda: deer.deer("tanh", jnp.zeros(2), jnp.ones((4, 2))), TypeError, r"^f\b"),
    ("deer", "deer-f-wrong-shape", lambda: deer.deer(lambda h, x: h[:1], jnp.zeros(2), jnp.ones((4, 2))), ValueError, r"^f\b"),
    ("deer", "deer-xs-leaves-disagree", lambda: deer.deer(lambda h, x: h, jnp.zeros(2), (jnp.ones((4, 2)), jnp.ones((5, 2)))), ValueError, r"^xs\b"),
    ("deer", "deer-h0-inf", lambda: deer.deer(lambda h, x: h, jnp.array([0.0, jnp.inf]), jnp.ones((4, 2))), ValueError, r"^h0\b"),
    ("deer", "deer-tol-0", lambda: deer.deer(lambda h, x: h, jnp.zeros(2), jnp.ones((4, 2)), tol=0.0), ValueError, r"^tol\b"),
    ("deer", "quasi_deer-tol-str", lambda: deer.quasi_deer(lambda h, x: h, jnp.zeros(2), jnp.ones((4, 2)), tol="1e-6"), TypeError, r"^tol\b"),
    ("deer", "quasi_deer-max_iter-0", lambda: deer.quasi_deer(lambda h, x: h, jnp.zeros(2), jnp.ones((4, 2)), max_iter=0), ValueError, r"^max_iter\b"),
    ("deer", "solve-init-shape", lambda: deer.solve(lambda h, x: h, jnp.zeros(2), jnp.ones((4, 2)), init=jnp.zeros((4, 3))), ValueError, r"^init\b"),
    ("deer", "sequential-xs-nan", lambda: deer.sequential(lambda h, x: h, jnp.zeros(2), jnp.full((4, 2), jnp.nan)), ValueError, r"^xs\b"),
    ("deer", "newton_iterates-num_iters-negative", lambda: deer.newton_iterates(lambda h, x: h, jnp.zeros(2), jnp.ones((4, 2)), -1), ValueError, r"^num_iters\b"),
    # --- gtf: generalized teacher forcing, GTF-DEER, the linear state-space model
    ("gtf", "gtf_trajectory-alpha-negative", lambda: gtf.gtf_trajectory(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, -0.1), ValueError, r"^alpha\b"),
    ("gtf", "gtf_loss-alpha-above-1", lambda: gtf.gtf_loss(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, 1.5), ValueError, r"^alpha\b"),
    ("gtf", "gtf_loss-alpha-str", lambda: gtf.gtf_loss(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, "0.5"), TypeError, r"^alpha\b"),
    ("gtf", "gtf_trajectory-data-1d", lambda: gtf.gtf_trajectory(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X[:, 0], 0.5), ValueError, r"^data\b"),
    ("gtf", "gtf_trajectory-data-nan", lambda: gtf.gtf_trajectory(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X_NAN, 0.5), ValueError, r"^data\b"),
    ("gtf", "gtf_trajectory-method-unknown", lambda: gtf.gtf_trajectory(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, 0.5, method="newton"), ValueError, r"^method\b"),
    ("gtf", "gtf_trajectory-F-not-callable", lambda: gtf.gtf_trajectory("shplrnn", nets.init_shplrnn(2, 4, key=KEY), X, 0.5), TypeError, r"^F\b"),
    ("gtf", "adaptive_alpha-latent_dim-below-N", lambda: gtf.adaptive_alpha(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, latent_dim=1), ValueError, r"^latent_dim\b"),
    ("gtf", "jacobian_norm-F-wrong-shape", lambda: gtf.jacobian_norm(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, latent_dim=3), ValueError, r"^F\b"),
    ("gtf", "train_shplrnn-seq_len-too-long", lambda: gtf.train_shplrnn(nets.init_shplrnn(2, 4, key=KEY), X, key=KEY, num_steps=5, seq_len=17), ValueError, r"^seq_len\b"),
    ("gtf", "train_shplrnn-alpha_decay-1", lambda: gtf.train_shplrnn(nets.init_shplrnn(2, 4, key=KEY), X, key=KEY, num_steps=5, alpha_decay=1.0), ValueError, r"^alpha_decay\b"),
    ("gtf", "train_gtf-key-int", lambda: gtf.train_gtf(nets.shplrnn, nets.init_shplrnn(2, 4, key=KEY), X, key=0, num_steps=5), ValueError, r"^key\b"),
    ("gtf", "train_ssm-params-dim", lambda: gtf.train_ssm(gtf.init_lssm(3, 4, 4, key=KEY), X, key=KEY, num_steps=5), ValueError, r"^params\b"),
    ("gtf", "init_lssm-state_dim-0", lambda: gtf.init_lssm(2, 0, 4, key=KEY), ValueError, r"^state_dim\b"),
    ("gtf", "lssm_loss-method-unknown", lambda: gtf.lssm_loss(gtf.init_lssm(2, 4, 4, key=KEY), X, method="fft"), ValueError, r"^method\b"),
]
# fmt: on


@pytest.mark.parametrize(
    "module, call, error, pattern", [row[:1] + row[2:] for row in CASES], ids=[f"{row[0]}.{row[1]}" for row in CASES]
)
def test_bad_input_raises_and_names_the_argument(module, call, error, pattern):
    with pytest.raises(error, match=pattern) as raised:
        call()
    # The exact type: a ValueError row must not pass on a subclass raised by accident deep inside JAX.
    assert type(raised.value) is error, f"{module}: expected {error.__name__}, got {type(raised.value).__name__}"


def test_ids_are_unique():
    ids = [f"{row[0]}.{row[1]}" for row in CASES]
    assert len(ids) == len(set(ids))


def test_the_table_covers_every_public_module():
    covered = {row[0] for row in CASES}
    assert set(lessons.__all__) <= covered, f"no bad-input rows for {sorted(set(lessons.__all__) - covered)}"
    assert covered <= set(lessons.__all__), f"rows for modules not in lessons.__all__: {sorted(covered - set(lessons.__all__))}"
