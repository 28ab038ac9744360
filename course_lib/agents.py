"""Actor-critic building blocks: MLP networks, rollouts, returns, losses and a compiled trainer.

Everything is a pure function over parameter pytrees with explicit PRNG keys. Data is time-major:
``[T, B, ...]`` for T steps of B parallel environments. The hyper-parameters that later become
meta-parameters (γ, λ, entropy cost) are arrays in ``Hyper``, never Python constants, so that
``jax.grad`` can flow into them and changing them never recompiles.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import optax

from course_lib import progress
from course_lib.checks import check_unit_interval

Array = jax.Array
MLPParams = list[tuple[Array, Array]]


# ----------------------------------------------------------------------------------------------
# Networks


def init_mlp(key: Array, sizes: tuple[int, ...], last_layer_scale: float = 1.0) -> MLPParams:
    """Weights for an MLP with layer widths ``sizes`` (input first), LeCun-normal, zero biases.

    ``last_layer_scale`` shrinks the output layer: 0.01 makes a policy start close to uniform.
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"sizes must list at least two positive widths, got {sizes!r}")
    keys = jax.random.split(key, len(sizes) - 1)
    scales = [1.0] * (len(sizes) - 2) + [last_layer_scale]
    return [
        (scale * jax.random.normal(k, (n_in, n_out)) / jnp.sqrt(n_in), jnp.zeros(n_out))
        for k, n_in, n_out, scale in zip(keys, sizes[:-1], sizes[1:], scales, strict=True)
    ]


def mlp(params: MLPParams, x: Array) -> Array:
    """``x [..., n_in] -> [..., n_out]``: tanh hidden layers, linear output."""
    for w, b in params[:-1]:
        x = jnp.tanh(x @ w + b)
    w, b = params[-1]
    return x @ w + b


class ActorCriticParams(NamedTuple):
    """Separate policy and value MLPs (as in the paper's follow-up code)."""

    policy: MLPParams
    value: MLPParams


def init_actor_critic(
    key: Array, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64)
) -> ActorCriticParams:
    """Policy MLP ``obs_dim -> hidden -> n_actions`` and value MLP ``obs_dim -> hidden -> 1``.

    The policy's last layer starts near zero so the first policy is close to uniform.
    """
    k_pi, k_v = jax.random.split(key)
    policy = init_mlp(k_pi, (obs_dim, *hidden, n_actions), last_layer_scale=0.01)
    return ActorCriticParams(policy, init_mlp(k_v, (obs_dim, *hidden, 1)))


def policy_logits(params: ActorCriticParams, obs: Array) -> Array:
    """``obs [..., obs_dim] -> logits [..., n_actions]``."""
    return mlp(params.policy, obs)


def state_value(params: ActorCriticParams, obs: Array) -> Array:
    """``obs [..., obs_dim] -> v(s) [...]``."""
    return mlp(params.value, obs)[..., 0]


# ----------------------------------------------------------------------------------------------
# Rollouts


class Trajectory(NamedTuple):
    """T steps of B environments, time-major.

    obs [T, B, D]; actions, rewards, discounts, dones, finished_returns [T, B]; last_obs [B, D] is
    the observation after the last step (what the value bootstrap is computed on). ``discounts`` is
    the environment's (0 where an episode ended), not γ.
    """

    obs: Array
    actions: Array
    rewards: Array
    discounts: Array
    dones: Array
    finished_returns: Array
    last_obs: Array


class BatchedEnv(Protocol):
    """What the agents need of an environment, e.g. ``envs.snake.make_snake``'s: pure
    ``reset(key) -> state`` and ``step(state, actions) -> (state, step)`` over ``n_envs``
    environments, each state with ``obs`` [n_envs, obs_dim], each step with ``reward``,
    ``discount``, ``done`` and ``finished_return`` [n_envs]. (A protocol, so that importing the
    agents loads no environment.)"""

    obs_dim: int
    n_actions: int

    def reset(self, key: Array) -> Any: ...

    def step(self, state: Any, actions: Array) -> tuple[Any, Any]: ...


def rollout(
    env: BatchedEnv, params: ActorCriticParams, env_state: Any, key: Array, n_steps: int
) -> tuple[Any, Trajectory]:
    """Act for ``n_steps`` with the policy ``softmax(policy_logits(params, obs))``.

    Acting never carries gradients: ``params`` is wrapped in ``stop_gradient``, because the
    trajectories are data (the estimators of later lessons hold them fixed).
    """
    params = jax.lax.stop_gradient(params)

    def one_step(state, step_key: Array):
        actions = jax.random.categorical(step_key, policy_logits(params, state.obs))
        next_state, out = env.step(state, actions)
        return next_state, (state.obs, actions, out)

    env_state, (obs, actions, out) = jax.lax.scan(
        one_step, env_state, jax.random.split(key, n_steps)
    )
    traj = Trajectory(
        obs, actions, out.reward, out.discount, out.done, out.finished_return, env_state.obs
    )
    return env_state, traj


def mean_finished_return(traj: Trajectory) -> Array:
    """Mean return of the episodes that ended inside ``traj`` (NaN when none ended)."""
    n_done = traj.dones.sum()
    return jnp.where(n_done > 0, traj.finished_returns.sum() / jnp.maximum(n_done, 1), jnp.nan)


# ----------------------------------------------------------------------------------------------
# Returns (hand-written with lax.scan for teaching; tested against rlax)


def discounted_returns(
    rewards: Array, discounts: Array, bootstrap_value: Array, gamma: Array | float
) -> Array:
    """Discounted returns ``G_t = r_t + γ d_t G_{t+1}``, ``G_T = v(s_T)``.

    Args:
      rewards, discounts: [T, ...] (``discounts`` is 0 where an episode ended).
      bootstrap_value: [...] value of the state after the last step.
      gamma: scalar discount in [0, 1]; may be a traced array (differentiable).
    Returns:
      [T, ...] returns.
    """
    return lambda_returns(rewards, discounts, None, bootstrap_value, gamma, 1.0)


def lambda_returns(
    rewards: Array,
    discounts: Array,
    next_values: Array | None,
    bootstrap_value: Array,
    gamma: Array | float,
    lam: Array | float,
) -> Array:
    """λ-returns ``G_t = r_t + γ d_t [(1 − λ) v(s_{t+1}) + λ G_{t+1}]``, ``G_T = v(s_T)``.

    λ = 1 gives the discounted Monte-Carlo return bootstrapped at T; λ = 0 the one-step TD target.

    Args:
      rewards, discounts: [T, ...].
      next_values: [T, ...] v(s_{t+1}) for each step (None is allowed only when λ = 1).
      bootstrap_value: [...] v(s_T).
      gamma, lam: scalars in [0, 1]; may be traced arrays.
    Returns:
      [T, ...] λ-returns.
    """
    if rewards.shape != discounts.shape:
        raise ValueError(
            "rewards and discounts must have the same shape, "
            f"got {rewards.shape} and {discounts.shape}"
        )
    if bootstrap_value.shape != rewards.shape[1:]:
        raise ValueError(
            f"bootstrap_value must have shape {rewards.shape[1:]} (rewards without time), "
            f"got {bootstrap_value.shape}"
        )
    if next_values is None:
        next_values = jnp.zeros_like(rewards)
    elif next_values.shape != rewards.shape:
        raise ValueError(f"next_values must have shape {rewards.shape}, got {next_values.shape}")
    check_unit_interval("gamma", gamma)
    check_unit_interval("lam", lam)

    def backward(g_next, xs):
        r, d, v_next = xs
        g = r + gamma * d * ((1.0 - lam) * v_next + lam * g_next)
        return g, g

    _, returns = jax.lax.scan(
        backward, bootstrap_value, (rewards, discounts, next_values), reverse=True
    )
    return returns


# ----------------------------------------------------------------------------------------------
# Losses


def policy_gradient_loss(logits: Array, actions: Array, advantages: Array) -> Array:
    """REINFORCE surrogate ``−mean[A_t · log π(a_t|s_t)]``.

    The advantages are weights, not something to optimise: build them from stop-gradient values so
    that they do not depend on the policy parameters. They are deliberately *not* wrapped in
    ``stop_gradient`` here, because a meta-gradient must see how they depend on γ and λ.

    Shapes: logits [..., n_actions], actions [...], advantages [...] -> scalar.
    """
    log_probs = jax.nn.log_softmax(logits)
    chosen = jnp.take_along_axis(log_probs, actions[..., None], axis=-1)[..., 0]
    return -jnp.mean(advantages * chosen)


def entropy(logits: Array) -> Array:
    """``H(π) = −Σ_a π(a) log π(a)``: logits [..., n_actions] -> [...]."""
    log_probs = jax.nn.log_softmax(logits)
    return -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)


class Hyper(NamedTuple):
    """Inner-loss hyper-parameters; each a scalar array so that it can be meta-learned."""

    gamma: Array
    lam: Array
    entropy_cost: Array
    value_cost: Array


def default_hyper(gamma=0.95, lam=0.9, entropy_cost=0.01, value_cost=0.5) -> Hyper:
    """``Hyper`` with float32 scalars (defaults tuned for the 6x6 CPU course setting)."""
    return Hyper(*(jnp.asarray(x, jnp.float32) for x in (gamma, lam, entropy_cost, value_cost)))


def _targets(critic: ActorCriticParams, traj: Trajectory, gamma, lam) -> tuple[Array, Array]:
    """λ-return targets and the baseline v(s_t), both from the value network of ``critic``.

    No stop-gradient here: the callers choose what the critic's values are constants for.
    """
    values = state_value(critic, traj.obs)
    bootstrap = state_value(critic, traj.last_obs)
    next_values = jnp.concatenate([values[1:], bootstrap[None]], axis=0)
    returns = lambda_returns(traj.rewards, traj.discounts, next_values, bootstrap, gamma, lam)
    return returns, values


def a2c_loss(
    params: ActorCriticParams,
    traj: Trajectory,
    hyper: Hyper,
    critic: ActorCriticParams | None = None,
) -> tuple[Array, dict]:
    """Advantage actor-critic loss on one batch.

    ``L = mean[−A_t log π(a_t|s_t)] + c_v mean[(G^λ_t − v(s_t))²] − c_ent mean[H(π(·|s_t))]``
    with ``G^λ`` the λ-return under (γ, λ) and ``A_t = G^λ_t − v(s_t)``. The critic values inside
    the targets and the baseline are constants for ∇_θ (semi-gradient TD), while γ, λ and the
    costs stay differentiable (that is what a meta-gradient needs).

    ``critic``: the weights those values are read from. None: ``stop_gradient(params)``, so no
    derivative at all reaches them. Passing ``params`` themselves from outside ``jax.grad`` keeps
    them constants for ∇_θ yet lets a meta-gradient see how the critic's values depend on η
    through earlier updates (``problems.snake_problem(critic_targets="full")``).
    """
    critic = jax.lax.stop_gradient(params) if critic is None else critic
    returns, baseline = _targets(critic, traj, hyper.gamma, hyper.lam)
    logits = policy_logits(params, traj.obs)
    values = state_value(params, traj.obs)
    return actor_critic_loss(
        logits, traj.actions, values, returns, hyper.value_cost, hyper.entropy_cost, baseline
    )


def actor_critic_loss(
    logits: Array,
    actions: Array,
    values: Array,
    returns: Array,
    value_cost: Array | float,
    entropy_cost: Array | float,
    baseline: Array | None = None,
) -> tuple[Array, dict]:
    """The three A2C terms on given network outputs and return targets.

    ``L = mean[−A_t log π(a_t)] + c_v mean[(G_t − v_t)²] − c_ent mean[H(π)]``, ``A_t = G_t − b_t``
    with the baseline ``b_t = ⊥v_t`` by default (⊥: stop-gradient, so the policy term does not
    train the critic); ``a2c_loss`` passes its own to choose what the baseline is a constant for.

    Shapes: logits [..., n_actions]; actions, values, returns, baseline [...]. Returns
    (loss, terms).
    """
    baseline = jax.lax.stop_gradient(values) if baseline is None else baseline
    pg = policy_gradient_loss(logits, actions, returns - baseline)
    value_loss = jnp.mean((returns - values) ** 2)
    ent = jnp.mean(entropy(logits))
    loss = pg + value_cost * value_loss - entropy_cost * ent
    return loss, {"policy_loss": pg, "value_loss": value_loss, "entropy": ent}


def policy_gradient_outer_loss(
    params: ActorCriticParams, traj: Trajectory, gamma: float = 0.99, lam: float = 1.0
) -> Array:
    """Outer (meta) loss: the policy-gradient loss with fixed reference (γ', λ'), no entropy term.

    ``L_out(θ'; τ') = mean[−A'_t log π_θ'(a_t|s_t)]`` on a batch τ' the inner update has not seen
    (Xu et al. 2018). Its gradient with respect to θ' is the direction that improves the return.
    The critic's values in it (the baseline and the bootstrap) are constants for every derivative,
    meta-gradients included: the baseline is a variance reducer, not part of the objective.
    """
    returns, baseline = _targets(jax.lax.stop_gradient(params), traj, gamma, lam)
    return policy_gradient_loss(policy_logits(params, traj.obs), traj.actions, returns - baseline)


# ----------------------------------------------------------------------------------------------
# Training


class TrainState(NamedTuple):
    params: ActorCriticParams
    opt_state: Any
    env_state: Any  # the environment's state, e.g. envs.snake.SnakeState


class TrainConfig(NamedTuple):
    """Static settings of an actor-critic run (changing one recompiles; hyper-parameters do not)."""

    n_updates: int = 300
    rollout_len: int = 10
    learning_rate: float = 3e-3
    hidden: tuple[int, ...] = (64, 64)


def make_optimizer(learning_rate: float) -> optax.GradientTransformation:
    """RMSProp (as in the paper's follow-up) with global-norm clipping for robustness."""
    return optax.chain(optax.clip_by_global_norm(1.0), optax.rmsprop(learning_rate, decay=0.9))


def make_train(env: BatchedEnv, config: TrainConfig | None = None) -> Callable:
    """Build ``train(key, hyper) -> (TrainState, metrics)``: one compiled ``lax.scan`` over updates.

    ``metrics`` holds per-update arrays [n_updates]: ``episode_return`` (mean return of the episodes
    that ended during that update's rollout, NaN if none), ``loss``, ``entropy``. ``vmap`` the
    returned function over keys (and/or hyper-parameters) to train several seeds at once. Each
    update reports its progress (``course_lib.progress``), so ``progress.progress_bar`` can show it.
    """
    config = config or TrainConfig()
    if config.n_updates < 1 or config.rollout_len < 1:
        raise ValueError(
            f"n_updates and rollout_len must be >= 1, got {config.n_updates}, {config.rollout_len}"
        )
    optimizer = make_optimizer(config.learning_rate)

    def train(key: Array, hyper: Hyper):
        k_init, k_env, k_run = jax.random.split(key, 3)
        params = init_actor_critic(k_init, env.obs_dim, env.n_actions, config.hidden)
        state = TrainState(params, optimizer.init(params), env.reset(k_env))

        def update(state: TrainState, step: tuple[Array, Array]):
            index, step_key = step
            progress.report(index, config.n_updates)
            env_state, traj = rollout(
                env, state.params, state.env_state, step_key, config.rollout_len
            )
            (loss, aux), grads = jax.value_and_grad(a2c_loss, has_aux=True)(
                state.params, traj, hyper
            )
            updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            metrics = {
                "episode_return": mean_finished_return(traj),
                "loss": loss,
                "entropy": aux["entropy"],
            }
            return TrainState(params, opt_state, env_state), metrics

        steps = (jnp.arange(config.n_updates), jax.random.split(k_run, config.n_updates))
        return jax.lax.scan(update, state, steps)

    return train
