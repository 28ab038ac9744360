"""Concrete meta-problems: what ``course_lib.metagrad``'s estimators run on.

A meta-problem bundles pure functions and data (docs/notation.md §1):

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
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib.checks import check_choice, check_int
from course_lib.envs import bandit, quadratic

if TYPE_CHECKING:  # the Snake builder imports these itself, so the toys never load jumanji
    from course_lib import agents
    from course_lib.envs.snake import SnakeState


class ExactHooks(NamedTuple):
    """What exact enumeration needs (toy problems with finitely many batches, docs/notation.md §5).

    ``enumerate_batches(n_steps)``: every sequence of inner batches, fields [n_paths, n_steps, ...];
    ``batch_log_prob(state, batch)``: log P(batch | state), differentiable in state;
    ``expected_outer_loss(state)``: E_τ'[L_out(state; τ')], exact.
    """

    enumerate_batches: Callable[[int], Any]
    batch_log_prob: Callable[[Any, Any], jax.Array]
    expected_outer_loss: Callable[[Any], jax.Array]


class GaussianHooks(NamedTuple):
    """What exact references need on a problem driven by Gaussian noise (docs/notation.md §5).

    The contract: ``sample`` returns a standard-normal batch ξ of shape ``noise_shape`` whatever
    the state, and leaves the state unchanged; and for a fixed η every g_k is a polynomial of
    degree at most 2 in the noise ξ_0..ξ_k (SGD on a quadratic: θ_k and dθ_k/dη are affine in the
    noise, g_k is their product). Then g_k's moments follow exactly from its value, gradient and
    Hessian at ξ = 0, and since the noise does not depend on η, E[g_k] = g*_k.

    ``noise_shape``: the shape of one batch;
    ``expected_losses(eta, horizon)``: E[L_out(θ_k; τ_k)] for k = 1..horizon, [horizon], exact and
    differentiable in η.
    """

    noise_shape: tuple[int, ...]
    expected_losses: Callable[[jax.Array, int], jax.Array]


@dataclasses.dataclass(frozen=True, eq=False)
class MetaProblem:
    """A meta-learning problem: initial state, sampler, inner update, outer loss (see module doc).

    ``meta_names[i]`` names ``eta[i]``; ``eta0`` [n_eta] is the default starting point;
    ``hyper_parameters(eta)`` [n_eta] maps the unconstrained η to the values the inner update uses
    (e.g. exp for a learning rate, sigmoid for a discount). ``exact`` is set only on toy problems
    with exact references: ``ExactHooks`` where every trajectory can be enumerated,
    ``GaussianHooks`` where the data are Gaussian noise. ``settings`` records what built the
    problem.

    Two optional facts serve the estimators that look at the outer loss's value, not only its
    gradient (``course_lib.estimators``, the sampling correction of ``metagrad``):
    ``outer_loss_is_cost`` says the value of L_out(θ; τ) is a sample of the cost being minimised
    (its mean is E[L_out(θ)]), not a surrogate built for its gradient (Snake's policy-gradient loss
    is one); ``batch_log_prob(state, batch)`` is log P(τ | θ) of a sampled batch under the policy
    that drew it, differentiable in the state (docs/notation.md §2).
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
    exact: ExactHooks | GaussianHooks | None = None
    outer_loss_is_cost: bool = False
    batch_log_prob: Callable[[Any, Any], jax.Array] | None = None

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
    """The enumerable bandit (docs/notation.md §5): an exact oracle by listing every trajectory.

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
    learns slowly, so every extra step changes θ and the effects of docs/notation.md §2 are plain
    at k_max = 8: the variance of g_k grows about 14x from k = 1 to 8, the distance of E[g_k] to the
    8-step target ∇_η E[L_8] falls from 92% to 20% of its norm, and uniform or λ-return mixes have
    a lower MSE against that target than either g_1 or g_8. (At θ_0 = 0 the entropy gradient
    vanishes, so g_1 would have a zero entropy component.)

    Its meta-gradients all point one way: both meta-parameters push the one preference of a 2-arm
    policy, so cos(E g_k, g*_8) = 1 for every k, and the SNR of g_k *rises* with k (about 0.17 at
    k = 1, 1.0 at k = 8). It teaches enumeration, not the trade-off between direction and noise:
    ``quadratic_problem`` is the toy where more steps turn the direction right and cost SNR.
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
        outer_loss_is_cost=True,
        batch_log_prob=exact.batch_log_prob,
    )


def quadratic_problem(
    curvatures: tuple[float, ...] = (1.0, 0.1),
    learning_rate: float = 0.2,
    noise: float = 0.4,
    theta0: tuple[float, ...] = (1.0, 3.0),
    k_max: int = 8,
    horizon: int = 100,
) -> MetaProblem:
    """The noisy quadratic of Wu et al. (2018): a toy where the myopic meta-gradient misleads.

    θ ∈ R^d with curvatures h (``envs.quadratic``); one batch is ξ ~ N(0, I_d). Inner update: one
    SGD step on L(θ; ξ) = ½ Σ_i h_i θ_i² + σ ξ·θ with a learning rate per coordinate,

        θ' = θ − α ⊙ (h ⊙ θ + σ ξ),    α_i = exp(η_i),

    outer loss L(θ_k; ξ_k) on the next batch (its expectation is ½ Σ_i h_i θ_k,i²). The noise does
    not depend on θ, so E[g_k] = g*_k; the exact references are Gaussian (``GaussianHooks``):
    g*_k for any horizon from the second-moment recursion, the moments of g_1..g_k from quadratic
    forms in the noise (docs/notation.md §5).

    Args:
      curvatures: h_i > 0, one per coordinate (meta-parameter i is log α_i of coordinate i).
      learning_rate: every α_i at ``eta0``.
      noise: σ >= 0, the gradient noise's standard deviation per coordinate.
      theta0: θ_0, one value per coordinate.
      k_max: the largest K the lessons look ahead (recorded in ``settings``, used by no function).
      horizon: H, the long horizon whose g*_H is the fixed target (recorded likewise).

    Why these defaults (searched over curvatures, noise, learning rate, θ_0 and H): a steep
    coordinate (h = 1) far from its minimum and a shallow one (h = 0.1) farther still. Over a few
    steps the steep coordinate's progress dominates, and g_1 asks for a larger step there; by
    H = 100 it has long sat at its noise floor, where a smaller step is better, while the shallow
    one (time constant 1/(αh) = 50 steps) is still learning, and its progress dominates g*_H. So
    E[g_1] points away from g*_H and, as k grows to k_max = 8, exactly:

        cos(E g_k, g*_H)   −0.28 (k = 1) rising at every k to +0.69 (k = 8)
        SNR of g_k          2.0  (k = 1) falling at every k to  0.22 (k = 8)
        right_direction     19%  (k = 1) rising to 66% (k = 8, sampled)
        scale_free_mse      1.0 for k <= 4, 0.915 at k = 8; the optimal mix of g_6..g_8: 0.88

    The window for H is real: at H ≳ 150 the shallow coordinate has converged too, and every
    target asks for smaller steps. tests/test_quadratic.py checks these properties.
    """
    h = np.asarray(curvatures, dtype=float)
    if h.ndim != 1 or h.size < 1 or not np.all(np.isfinite(h) & (h > 0)):
        raise ValueError(f"curvatures must list at least one finite value > 0, got {curvatures!r}")
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ValueError(
            f"learning_rate must be > 0 (it is learnt through exp), got {learning_rate!r}"
        )
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    theta0_arr = np.asarray(theta0, dtype=float)
    if theta0_arr.shape != h.shape or not np.all(np.isfinite(theta0_arr)):
        raise ValueError(
            f"theta0 must hold one finite value per curvature ({h.size}), got {theta0!r}"
        )
    k_max = check_int("k_max", k_max)
    horizon = check_int("horizon", horizon, minimum=k_max)

    dtype = jnp.zeros(()).dtype
    h_, theta0_ = jnp.asarray(h, dtype), jnp.asarray(theta0_arr, dtype)
    noise_ = jnp.asarray(noise, dtype)

    def sample(theta, key):
        return quadratic.sample_noise(key, h.size, dtype), theta

    def inner_update(theta, xi, eta):
        return quadratic.sgd_step(theta, xi, jnp.exp(eta), h_, noise_)

    def outer_loss(theta, xi):
        return quadratic.noisy_loss(theta, xi, h_, noise_)

    def expected_losses(eta, horizon):
        return quadratic.expected_losses(theta0_, jnp.exp(eta), h_, noise_, horizon)

    settings = dict(
        curvatures=tuple(float(x) for x in h),
        learning_rate=float(learning_rate),
        noise=float(noise),
        theta0=tuple(float(x) for x in theta0_arr),
        k_max=k_max,
        horizon=horizon,
    )
    return MetaProblem(
        name="quadratic",
        meta_names=tuple(f"log_learning_rate_{i}" for i in range(h.size)),
        eta0=jnp.full(h.size, np.log(learning_rate), dtype),
        init_state=theta0_,
        sample=sample,
        inner_update=inner_update,
        outer_loss=outer_loss,
        hyper_parameters=jnp.exp,
        settings=settings,
        exact=GaussianHooks(noise_shape=(h.size,), expected_losses=expected_losses),
        outer_loss_is_cost=True,
        # the noise's density: no θ in it, so the sampling correction is zero here
        batch_log_prob=lambda theta, xi: -0.5 * jnp.sum(xi**2 + jnp.log(2 * jnp.pi)),
    )


class SnakeAgentState(NamedTuple):
    """What the Snake inner loop carries: network weights, optimiser state, the boards."""

    params: agents.ActorCriticParams
    opt_state: Any
    env_state: SnakeState


SNAKE_OPTIMIZERS = ("sgd", "rmsprop")
CRITIC_TARGETS = ("semi", "full")


def _logit(x: float) -> float:
    return float(np.log(x) - np.log1p(-x))


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

    if optimizer not in SNAKE_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {SNAKE_OPTIMIZERS}, got {optimizer!r}")
    check_choice("critic_targets", critic_targets, CRITIC_TARGETS)
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
        # the weights read outside jax.grad: constants for ∇_θ, still functions of η
        critic = state.params if critic_targets == "full" else None
        grads, _ = jax.grad(agents.a2c_loss, has_aux=True)(state.params, traj, hyper, critic)
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
        critic_targets=critic_targets,
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
    "quadratic": quadratic_problem,
    "snake": snake_problem,
}
