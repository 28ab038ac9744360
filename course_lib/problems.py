"""Concrete meta-problems: what ``course_lib.metagrad``'s estimators run on.

A meta-problem bundles pure functions and data (SPEC.md §1):

    batch, state = sample(state, key)        τ ~ π_θ acting on stop_gradient(θ); env state advances
    state = inner_update(state, batch, η)    θ' = U(θ, τ; η), differentiable in state and η
    loss = outer_loss(state, batch)          L_out(θ; τ'), fixed reference settings, no η

The estimators never look inside ``state`` or ``batch``: any pytree works. One rule: sampling
changes only the environment's part of the state, the inner update only the agent's part
(weights, optimiser state); forward mode relies on it to keep sampling outside its jvp.

A problem is compared and hashed by identity, so it can be a static argument of ``jax.jit``;
``metagrad.make_problem`` returns the same object for the same settings, so compiled functions
are reused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib import agents
from course_lib.envs import bandit
from course_lib.envs.snake import SnakeState, make_snake


class ExactHooks(NamedTuple):
    """What exact enumeration needs (toy problems only).

    ``enumerate_batches(n_steps)``: every sequence of inner batches, fields [n_paths, n_steps, ...];
    ``batch_log_prob(state, batch)``: log P(batch | state), differentiable in state;
    ``expected_outer_loss(state)``: E_τ'[L_out(state; τ')], exact.
    """

    enumerate_batches: Callable[[int], Any]
    batch_log_prob: Callable[[Any, Any], jax.Array]
    expected_outer_loss: Callable[[Any], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class MetaProblem:
    """A meta-learning problem: initial state, sampler, inner update, outer loss (see module doc).

    ``meta_names[i]`` names ``eta[i]``; ``eta0`` [n_eta] is the default starting point;
    ``hyper_parameters(eta)`` [n_eta] maps the unconstrained η to the values the inner update uses
    (e.g. exp for a learning rate, sigmoid for a discount). ``exact`` is set only where every
    trajectory can be enumerated. ``settings`` records what built the problem.
    """

    name: str
    meta_names: tuple[str, ...]
    eta0: jax.Array
    init_state: Any
    sample: Callable[[Any, jax.Array], tuple[Any, Any]]
    inner_update: Callable[[Any, Any, jax.Array], Any]
    outer_loss: Callable[[Any, Any], jax.Array]
    hyper_parameters: Callable[[jax.Array], jax.Array]
    settings: Mapping[str, Any]
    exact: ExactHooks | None = None

    @property
    def n_eta(self) -> int:
        return len(self.meta_names)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"MetaProblem({self.name!r}, {shown})"


def _inverse_softplus(x: float) -> float:
    return float(np.log(np.expm1(x)))


def bandit_problem(
    p: tuple[float, ...] = (0.3, 0.7),
    batch_size: int = 1,
    learning_rate: float = 0.3,
    entropy_cost: float = 0.3,
    theta0: tuple[float, ...] | None = None,
) -> MetaProblem:
    """The enumerable bandit of PAPER_NOTES.md §6.3.

    Softmax policy over ``len(p)`` Bernoulli arms, logits θ_0 = ``theta0``. Inner update on
    ``batch_size`` pulls, REINFORCE plus an entropy bonus:

        θ' = θ + α [ (1/B) Σ_b r_b ∇_θ log π_θ(a_b) + c ∇_θ H(π_θ) ],
        α = exp(η_0),  c = softplus(η_1)

    Outer loss: −J(θ) = −Σ_a π_θ(a) p_a, exact (the outer batch is not used, so no outer noise).

    Args:
      p: success probability of each arm, each in (0, 1).
      batch_size: pulls per inner step (enumeration grows as (2·n_arms)^(batch_size·k)).
      learning_rate, entropy_cost: α and c at ``eta0``.
      theta0: initial logits; None spreads them evenly from +1 (first arm) to −1 (last arm), so with
        p ascending the agent starts out preferring the worse arms.

    Why these defaults: the agent starts out preferring the worse arm (π_0 = (0.88, 0.12)) and
    learns slowly, so every extra step changes θ and the effects of SPEC.md §1 are plain at
    k_max = 8: the variance of g_k grows about 14x from k = 1 to 8, the distance of E[g_k] to the
    8-step target ∇_η E[L_8] falls from 92% to 20% of its norm, and uniform or λ-return mixes have
    a lower MSE against that target than either g_1 or g_8. (At θ_0 = 0 the entropy gradient
    vanishes, so g_1 would have a zero entropy component.)
    """
    p_arr = np.asarray(p, dtype=float)
    if p_arr.ndim != 1 or len(p_arr) < 2 or not np.all((p_arr > 0) & (p_arr < 1)):
        raise ValueError(
            f"p must list at least 2 probabilities strictly between 0 and 1, got {p!r}"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not entropy_cost > 0:
        raise ValueError(
            f"entropy_cost must be > 0 (it is learnt through softplus), got {entropy_cost!r}"
        )
    n_arms = len(p_arr)
    theta0_arr = (
        np.linspace(1.0, -1.0, n_arms) if theta0 is None else np.asarray(theta0, dtype=float)
    )
    if theta0_arr.shape != (n_arms,):
        raise ValueError(f"theta0 must have one logit per arm ({n_arms}), got {theta0!r}")

    dtype = jnp.zeros(()).dtype  # float64 inside `with jax.enable_x64(True)`, else float32
    probs = jnp.asarray(p_arr, dtype)

    def hyper_parameters(eta):
        return jnp.stack([jnp.exp(eta[0]), jax.nn.softplus(eta[1])])

    def sample(theta, key):
        return bandit.sample_batch(theta, probs, key, batch_size), theta

    def inner_update(theta, batch, eta):
        learning_rate_, entropy_cost_ = hyper_parameters(eta)

        def objective(theta):
            log_pi = jax.nn.log_softmax(theta)[batch.actions]
            return jnp.mean(batch.rewards * log_pi) + entropy_cost_ * bandit.policy_entropy(theta)

        return theta + learning_rate_ * jax.grad(objective)(theta)

    def expected_outer_loss(theta):
        return -bandit.expected_reward(theta, probs)

    exact = ExactHooks(
        enumerate_batches=lambda n_steps: bandit.enumerate_batches(
            n_arms, batch_size, n_steps, dtype
        ),
        batch_log_prob=lambda theta, batch: bandit.batch_log_prob(theta, probs, batch),
        expected_outer_loss=expected_outer_loss,
    )
    settings = dict(
        p=tuple(float(x) for x in p_arr),
        batch_size=batch_size,
        learning_rate=float(learning_rate),
        entropy_cost=float(entropy_cost),
        theta0=tuple(float(x) for x in theta0_arr),
    )
    return MetaProblem(
        name="bandit",
        meta_names=("log_learning_rate", "entropy_cost"),
        eta0=jnp.asarray([np.log(learning_rate), _inverse_softplus(entropy_cost)], dtype),
        init_state=jnp.asarray(theta0_arr, dtype),
        sample=sample,
        inner_update=inner_update,
        outer_loss=lambda theta, batch: expected_outer_loss(theta),
        hyper_parameters=hyper_parameters,
        settings=settings,
        exact=exact,
    )


class SnakeAgentState(NamedTuple):
    """What the Snake inner loop carries: network weights, optimiser state, the boards."""

    params: agents.ActorCriticParams
    opt_state: Any
    env_state: SnakeState


SNAKE_OPTIMIZERS = ("sgd", "rmsprop")


def _logit(x: float) -> float:
    return float(np.log(x) - np.log1p(-x))


def _snake_start(
    env, opt, continue_opt_state, hyper, hidden, rollout_len, warmup_updates, seed
) -> SnakeAgentState:
    """Fresh weights and boards, then ``warmup_updates`` ordinary A2C updates (RMSProp)."""
    if warmup_updates == 0:
        init_key, env_key = jax.random.split(jax.random.key(seed))
        params = agents.init_actor_critic(init_key, env.obs_dim, env.n_actions, hidden)
        # jit: jumanji's reset run op by op would dispatch (and compile) hundreds of small kernels
        return SnakeAgentState(params, opt.init(params), jax.jit(env.reset)(env_key))
    config = agents.TrainConfig(n_updates=warmup_updates, rollout_len=rollout_len, hidden=hidden)
    warm, _ = jax.jit(agents.make_train(env, config))(jax.random.key(seed), hyper)
    opt_state = warm.opt_state if continue_opt_state else opt.init(warm.params)
    return SnakeAgentState(warm.params, opt_state, warm.env_state)


def snake_problem(
    grid: int = 6,
    time_limit: int = 500,
    n_envs: int = 16,
    rollout_len: int = 10,
    hidden: tuple[int, ...] = (32, 32),
    optimizer: str = "rmsprop",
    learning_rate: float = 3e-3,
    gamma: float = 0.95,
    lam: float = 0.9,
    entropy_cost: float = 0.01,
    value_cost: float = 0.5,
    outer_gamma: float = 0.99,
    outer_lam: float = 1.0,
    warmup_updates: int = 300,
    seed: int = 0,
) -> MetaProblem:
    """Actor-critic on jumanji's Snake with meta-learnt discount, λ and entropy cost.

    η = (logit γ, logit λ, log c_ent): γ = sigmoid(η_0), λ = sigmoid(η_1), c_ent = exp(η_2), so any
    real η is a valid setting. Inner update on a rollout τ of ``rollout_len`` steps x ``n_envs``
    boards: θ' = θ + optimiser(−∇_θ L_A2C(θ; τ, γ, λ, c_ent)), the optimiser state carried and
    differentiated through. Outer loss: ``agents.policy_gradient_outer_loss`` on the next rollout,
    with fixed γ' = ``outer_gamma``, λ' = ``outer_lam`` and no entropy term (Xu et al. 2018).

    Args:
      grid, time_limit, n_envs: the boards (see ``envs.snake.make_snake``).
      rollout_len: steps per rollout (one rollout per inner update).
      hidden: widths of the policy and value MLPs.
      optimizer: "rmsprop" (the paper's follow-up, with global-norm clipping) or "sgd".
      learning_rate: inner step size.
      gamma, lam, entropy_cost: the inner hyper-parameters at ``eta0``; value_cost is fixed.
      outer_gamma, outer_lam: the outer loss's reference settings.
      warmup_updates: A2C updates (``agents.make_train``: RMSProp 3e-3, the inner hyper-parameters
        at ``eta0``) before the meta-gradient is measured; 0 starts from fresh weights.
      seed: initial weights and boards.

    Why these defaults: an agent that has started to eat fruit (the mean return rises from about
    0.15 to 2 over the warm-up) has advantages worth differentiating; a fresh one has a near-uniform
    policy whose entropy gradient vanishes. From there, with 16 boards x 10 steps per update, the
    variance of g_8 is about 20x that of g_1 and a geometric mix (lam = 0.5) of g_1..g_8 has a few
    percent of the variance of g_8 (tests/test_metagrad.py checks ratios > 3 and < 1/2).
    """
    if optimizer not in SNAKE_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {SNAKE_OPTIMIZERS}, got {optimizer!r}")
    for name, value in (("gamma", gamma), ("lam", lam)):
        if not 0 < value < 1:
            raise ValueError(
                f"{name} must be strictly between 0 and 1 (learnt via a sigmoid), got {value!r}"
            )
    if not entropy_cost > 0:
        raise ValueError(f"entropy_cost must be > 0 (learnt via exp), got {entropy_cost!r}")
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
    if not isinstance(rollout_len, int) or rollout_len < 1:
        raise ValueError(f"rollout_len must be a positive integer, got {rollout_len!r}")
    for name, value in (("warmup_updates", warmup_updates), ("seed", seed)):
        if not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    env = make_snake(grid, time_limit, n_envs)
    dtype = jnp.zeros(()).dtype
    opt = (
        agents.make_optimizer(learning_rate) if optimizer == "rmsprop" else optax.sgd(learning_rate)
    )
    hyper0 = agents.Hyper(*(jnp.asarray(x, dtype) for x in (gamma, lam, entropy_cost, value_cost)))
    init_state = _snake_start(
        env, opt, optimizer == "rmsprop", hyper0, tuple(hidden), rollout_len, warmup_updates, seed
    )

    def hyper_parameters(eta):
        return jnp.stack([jax.nn.sigmoid(eta[0]), jax.nn.sigmoid(eta[1]), jnp.exp(eta[2])])

    def sample(state, key):
        env_state, traj = agents.rollout(env, state.params, state.env_state, key, rollout_len)
        return traj, state._replace(env_state=env_state)

    def inner_update(state, traj, eta):
        gamma_, lam_, entropy_cost_ = hyper_parameters(eta)
        hyper = agents.Hyper(gamma_, lam_, entropy_cost_, hyper0.value_cost)
        grads, _ = jax.grad(agents.a2c_loss, has_aux=True)(state.params, traj, hyper)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return SnakeAgentState(
            optax.apply_updates(state.params, updates), opt_state, state.env_state
        )

    def outer_loss(state, traj):
        return agents.policy_gradient_outer_loss(state.params, traj, outer_gamma, outer_lam)

    settings = dict(
        grid=grid,
        time_limit=time_limit,
        n_envs=n_envs,
        rollout_len=rollout_len,
        hidden=tuple(hidden),
        optimizer=optimizer,
        learning_rate=float(learning_rate),
        gamma=float(gamma),
        lam=float(lam),
        entropy_cost=float(entropy_cost),
        value_cost=float(value_cost),
        outer_gamma=float(outer_gamma),
        outer_lam=float(outer_lam),
        warmup_updates=warmup_updates,
        seed=seed,
    )
    return MetaProblem(
        name="snake",
        meta_names=("discount", "lambda", "entropy_cost"),
        eta0=jnp.asarray([_logit(gamma), _logit(lam), np.log(entropy_cost)], dtype),
        init_state=init_state,
        sample=sample,
        inner_update=inner_update,
        outer_loss=outer_loss,
        hyper_parameters=hyper_parameters,
        settings=settings,
    )


PROBLEM_BUILDERS: dict[str, Callable[..., MetaProblem]] = {
    "bandit": bandit_problem,
    "snake": snake_problem,
}
