"""The widget loop: how fast a small MLP trains, how soon a fresh kernel trains, how fast the race redraws.

* training steps/s of the 2-16-16-1 tanh MLP on 256 two-spirals points (full batch, Adam):
  ``train.advance`` (1000 steps per ``lax.scan``, data as arguments, the registry's Adam) against one
  jitted call per step;
* seconds from a fresh Python process to the first trained chunk (imports and compilation included),
  against the bare ``import jax`` of the same process kind;
* OptimizerRace plot updates per second (``run(steps_per_frame)`` headless: compute + figure update);
* LiveTrainer: training steps/s of each optimizer on its default MLP (compiled chunks, as a frame runs them),
  and its plot updates per second with every method racing.

Targets on 2 CPU cores: >= 10,000 steps/s in chunks, first step within 5 s, >= 10 updates/s.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

import jax
import optax

from benchmarks._common import block, median_seconds, table
from lessons import data, nets, optimizers, train

CHUNK = 1000


def training_steps_per_second() -> tuple[float, float]:
    x, y = data.two_spirals(256, key=jax.random.key(0))
    params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(1))
    loss_fn = nets.classifier_loss(x, y)
    opt = optax.adam(1e-2)
    state = opt.init(params)

    # Ours: the training contract (data as arguments, the registry's Adam with its learning rate in the state).
    objective = train.Objective.supervised(nets.mlp, nets.logistic_losses)
    adam = optimizers.get("Adam")
    injected, injected_state = adam.transformation(), adam.init(params, learning_rate=1e-2)
    chunked = median_seconds(
        lambda: block(train.advance(objective, injected, params, injected_state, (x, y), num_steps=CHUNK)), repeats=5
    )

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    def per_step():
        p, s = params, state
        for _ in range(CHUNK):
            p, s, loss = step(p, s)
        return block(loss)

    one_by_one = median_seconds(per_step, repeats=3)
    return CHUNK / chunked, CHUNK / one_by_one


FIRST_STEP = """
import time; t0 = time.perf_counter()
import jax, optax
from lessons import data, nets, optimizers, train
x, y = data.two_spirals(256, key=jax.random.key(0))
params = nets.init_mlp([2, 16, 16, 1], key=jax.random.key(1))
h = train.train(nets.classifier_loss(x, y), params, optax.adam(1e-2), num_steps=1, progress=False)
print(time.perf_counter() - t0)
"""


def seconds_to_first_step(repeats: int = 3) -> tuple[float, float]:
    def run(code):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        return float(out.stdout.strip().splitlines()[-1])

    ours = statistics.median(run(FIRST_STEP) for _ in range(repeats))
    bare = statistics.median(
        run(
            "import time; t0 = time.perf_counter()\nimport jax, jax.numpy as jnp\n"
            "jnp.zeros(1).block_until_ready()\nprint(time.perf_counter() - t0)"
        )
        for _ in range(repeats)
    )
    return ours, bare


def race_updates_per_second(frames: int = 60) -> float:
    from widgets import OptimizerRace

    race = OptimizerRace(problem="quadratic", kappa=50.0, methods=("GD", "Heavy ball", "Nesterov", "Adam"), max_steps=10**9)
    race.run(2)  # compile
    t0 = time.perf_counter()
    for _ in range(frames):
        race.run(2)
    return frames / (time.perf_counter() - t0)


def live_trainer_steps_per_second(steps: int = 320) -> dict[str, float]:
    """Each LiveTrainer method's training steps/s at the default settings: median of three runs of ``steps``."""
    from widgets import live_trainer_panels as panels
    from widgets.live_trainer import METHODS

    setup = panels.setup("spirals", 256, panels.NOISE["spirals"], 0, 16)
    rates = {}
    for name in METHODS:
        method = optimizers.get(name)
        params = setup.initial_params
        panels.train_lane(setup, method, params, method.init(params), panels.CHUNK)  # compile
        seconds = [panels.train_lane(setup, method, params, method.init(params), steps).seconds for _ in range(3)]
        rates[name] = steps / statistics.median(seconds)
    return rates


def live_trainer_updates_per_second(frames: int = 20) -> tuple[float, int]:
    from widgets import LiveTrainer

    trainer = LiveTrainer(max_steps=10**9)
    steps = int(trainer.steps_slider.value)
    trainer.run(steps)  # compile
    t0 = time.perf_counter()
    for _ in range(frames):
        trainer.run(steps)
    return frames / (time.perf_counter() - t0), steps


def main() -> None:
    chunked, per_step = training_steps_per_second()
    first, bare = seconds_to_first_step()
    updates = race_updates_per_second()
    rows = [
        (
            "MLP training steps/s (target >= 10,000)",
            f"{chunked:,.0f}",
            f"{per_step:,.0f} (one jit call per step)",
            f"{chunked / per_step:.1f}x",
        ),
        (
            "fresh process to first trained step, s (target <= 5)",
            f"{first:.2f}",
            f"{bare:.2f} (import jax only)",
            f"{first / bare:.1f}x",
        ),
        ("OptimizerRace plot updates/s, 4 methods (target >= 10)", f"{updates:.0f}", "-", "-"),
    ]
    rates = live_trainer_steps_per_second()
    live, live_steps = live_trainer_updates_per_second()
    rows.append((f"LiveTrainer plot updates/s, {len(rates)} methods, {live_steps} steps each", f"{live:.1f}", "-", "-"))
    rows += [
        (f"LiveTrainer steps/s: {name}", f"{rate:,.0f}", f"{rates['GD']:,.0f} (GD)", f"{rate / rates['GD']:.2f}x")
        for name, rate in rates.items()
    ]
    print(table("Widget loop", rows))


if __name__ == "__main__":
    main()
