"""Actor-critic on jumanji's Snake as a meta-problem: the paper's setting, no exact references.

The builder is put together from named pieces: ``_check_snake_settings`` (before anything is
built), ``_snake_start`` (weights, optimiser state and boards, after an optional A2C warm-up) and
``_snake_functions`` (the sampler, inner update and outer loss the estimators run).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib.checks import check_choice, check_int, check_positive
from course_lib.problems.contract import MetaProblem, records_settings

if TYPE_CHECKING:  # the Snake builder imports these itself, so the toys never load jumanji
    from course_lib import agents
    from course_lib.envs.snake import SnakeEnv, SnakeState


class SnakeAgentState(NamedTuple):
    """What the Snake inner loop carries: network weights, optimiser state, the boards."""

    params: agents.ActorCriticParams
    opt_state: Any
    env_state: SnakeState


SNAKE_OPTIMIZERS = ("sgd", "rmsprop")
CRITIC_TARGETS = ("semi", "full")


def _logit(x: float) -> float:
    return float(np.log(x) - np.log1p(-x))


@records_settings
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
    critic_targets: str = "semi",
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
      critic_targets: what the meta-gradient sees of the critic's values inside the inner loss
        (the λ-return targets and the advantage's baseline; constants for ∇_θ either way, so
        the inner update is the same). "semi" (the usual convention): constants for η too, so
        once the critic learns, g_k is not the derivative of L_k(η). "full": η reaches them
        through the critic's weights, which earlier updates moved; g_k = dL_k/dη with the data
        held fixed. The outer loss's critic values stay constants in both: its baseline is a
        variance reducer, not part of the objective.

    Why these defaults: an agent that has started to eat fruit (the mean return rises from about
    0.15 to 2 over the warm-up) has advantages worth differentiating; a fresh one has a near-uniform
    policy whose entropy gradient vanishes. From there, with 16 boards x 10 steps per update, the
    variance of g_8 is about 20x that of g_1 and a geometric mix (lam = 0.5) of g_1..g_8 has a few
    percent of the variance of g_8 (tests/test_metagrad.py checks ratios > 3 and < 1/2).
    """
    from course_lib import agents
    from course_lib.envs.snake import make_snake

    _check_snake_settings(
        optimizer, critic_targets, gamma, lam, entropy_cost, learning_rate, rollout_len,
        warmup_updates, seed,
    )  # fmt: skip
    env = make_snake(grid, time_limit, n_envs)
    dtype = jnp.zeros(()).dtype
    opt = (
        agents.make_optimizer(learning_rate) if optimizer == "rmsprop" else optax.sgd(learning_rate)
    )
    hyper0 = agents.Hyper(*(jnp.asarray(x, dtype) for x in (gamma, lam, entropy_cost, value_cost)))
    init_state = _snake_start(
        env, opt, optimizer == "rmsprop", hyper0, tuple(hidden), rollout_len, warmup_updates, seed
    )
    return MetaProblem(
        name="snake",
        meta_names=("discount", "lambda", "entropy_cost"),
        eta0=jnp.asarray([_logit(gamma), _logit(lam), np.log(entropy_cost)], dtype),
        init_state=init_state,
        hyper_parameters=_snake_hyper_parameters,
        **_snake_functions(
            env, opt, hyper0.value_cost, rollout_len, outer_gamma, outer_lam, critic_targets
        ),
    )


def _check_snake_settings(
    optimizer, critic_targets, gamma, lam, entropy_cost, learning_rate, rollout_len,
    warmup_updates, seed,
) -> None:  # fmt: skip
    """A ``ValueError`` naming the first setting out of its range, before anything is built."""
    if optimizer not in SNAKE_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {SNAKE_OPTIMIZERS}, got {optimizer!r}")
    check_choice("critic_targets", critic_targets, CRITIC_TARGETS)
    for name, value in (("gamma", gamma), ("lam", lam)):
        if not 0 < value < 1:
            raise ValueError(
                f"{name} must be strictly between 0 and 1 (learnt via a sigmoid), got {value!r}"
            )
    check_positive("entropy_cost", entropy_cost, " (learnt via exp)")
    check_positive("learning_rate", learning_rate)
    check_int("rollout_len", rollout_len)
    check_int("warmup_updates", warmup_updates, minimum=0)
    check_int("seed", seed, minimum=0)


def _snake_hyper_parameters(eta: jax.Array) -> jax.Array:
    """η = (logit γ, logit λ, log c_ent) -> (γ, λ, c_ent), [3]."""
    return jnp.stack([jax.nn.sigmoid(eta[0]), jax.nn.sigmoid(eta[1]), jnp.exp(eta[2])])


def _snake_functions(
    env: SnakeEnv, opt, value_cost, rollout_len, outer_gamma, outer_lam, critic_targets
) -> dict[str, Callable]:
    """The sampler, inner update and outer loss of ``snake_problem`` (its Args)."""
    from course_lib import agents

    def sample(state, key):
        env_state, traj = agents.rollout(env, state.params, state.env_state, key, rollout_len)
        return traj, state._replace(env_state=env_state)

    def inner_update(state, traj, eta):
        hyper = agents.Hyper(*_snake_hyper_parameters(eta), value_cost)
        # the weights read outside jax.grad: constants for ∇_θ, still functions of η
        critic = state.params if critic_targets == "full" else None
        grads, _ = jax.grad(agents.a2c_loss, has_aux=True)(state.params, traj, hyper, critic)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        return SnakeAgentState(
            optax.apply_updates(state.params, updates), opt_state, state.env_state
        )

    def outer_loss(state, traj):
        return agents.policy_gradient_outer_loss(state.params, traj, outer_gamma, outer_lam)

    return dict(sample=sample, inner_update=inner_update, outer_loss=outer_loss)


def _snake_start(
    env, opt, continue_opt_state, hyper, hidden, rollout_len, warmup_updates, seed
) -> SnakeAgentState:
    """Fresh weights and boards, then ``warmup_updates`` ordinary A2C updates (RMSProp)."""
    from course_lib import agents

    if warmup_updates == 0:
        init_key, env_key = jax.random.split(jax.random.key(seed))
        params = agents.init_actor_critic(init_key, env.obs_dim, env.n_actions, hidden)
        # jit: jumanji's reset run op by op would dispatch (and compile) hundreds of small kernels
        return SnakeAgentState(params, opt.init(params), jax.jit(env.reset)(env_key))
    config = agents.TrainConfig(n_updates=warmup_updates, rollout_len=rollout_len, hidden=hidden)
    warm, _ = _compiled_warmup(env.grid, env.time_limit, env.n_envs, config)(
        jax.random.key(seed), hyper
    )
    opt_state = warm.opt_state if continue_opt_state else opt.init(warm.params)
    return SnakeAgentState(warm.params, opt_state, warm.env_state)


@functools.lru_cache(maxsize=8)
def _compiled_warmup(
    grid: int, time_limit: int, n_envs: int, config: agents.TrainConfig
) -> Callable:
    """``jit(agents.make_train(config))`` on these boards: one program for every seed's warm-up."""
    from course_lib import agents
    from course_lib.envs.snake import make_snake

    return jax.jit(agents.make_train(make_snake(grid, time_limit, n_envs), config))
