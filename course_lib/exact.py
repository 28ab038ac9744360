"""Exact moments of a quadratic function of standard-normal noise (docs/notation.md §5).

For ξ ~ N(0, I_n) and each output q_i(ξ) = c_i + a_iᵀξ + ½ ξᵀA_iξ (A_i symmetric),

    E q_i = c_i + ½ tr A_i,        Cov(q_i, q_j) = a_iᵀa_j + ½ tr(A_i A_j),

since odd moments of ξ vanish and Cov(ξᵀAξ, ξᵀBξ) = 2 tr(AB). c, a and A are the value, gradient
and Hessian at ξ = 0, which autodiff gives exactly: for a function that *is* a polynomial of degree
at most 2 in ξ (a meta-gradient of SGD on a quadratic), the moments are exact, not approximations.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def quadratic_form_moments(fn: Callable[[jax.Array], jax.Array], dim: int, dtype=jnp.float32):
    """Mean and covariance of ``fn(ξ)`` for ξ ~ N(0, I_dim), exact when ``fn`` is quadratic in ξ.

    Args:
      fn: [dim] -> [*out], a polynomial of degree <= 2 in its argument (not checked: for any other
        function the result is the moments of its second-order Taylor expansion at 0).
      dim: the length of ξ.
    Returns: mean [*out], cov [*out, *out].
    """
    zero = jnp.zeros(dim, dtype)
    value = fn(zero)
    flat = lambda xi: fn(xi).reshape(-1)
    gradient = jax.jacfwd(flat)(zero)  # [m, dim]
    hessian = jax.jacfwd(jax.jacfwd(flat))(zero)  # [m, dim, dim]
    return _moments(value, gradient, hessian)


def _moments(value, gradient, hessian):
    """The moments of the module doc from c (``value`` [*out]), a [m, dim] and A [m, dim, dim]."""
    mean = value.reshape(-1) + 0.5 * jnp.trace(hessian, axis1=1, axis2=2)
    cov = gradient @ gradient.T + 0.5 * jnp.einsum("iab,jba->ij", hessian, hessian)
    return mean.reshape(value.shape), cov.reshape(value.shape + value.shape)


def quadratic_form_moments_from_values(
    fn: Callable[[jax.Array], jax.Array], dim: int, dtype=jnp.float32
):
    """``quadratic_form_moments`` from values of ``fn`` alone, at 0, ±e_i and e_i + e_j.

    A polynomial of degree <= 2 is fixed by those values (1 + 2 dim + dim², vmapped):

        a_i = (q(e_i) − q(−e_i)) / 2,    A_ij = q(e_i + e_j) − q(e_i) − q(e_j) + q(0),

    exactly, up to rounding. For functions whose derivatives in ξ are not those of their values:
    an estimator built with ``stop_gradient`` (e.g. the trace of ``course_lib.estimators``) has
    the right derivative in η but cuts the noise's path through θ as well, which autodiff in ξ
    would follow. Same arguments and returns as ``quadratic_form_moments``.
    """
    eye = jnp.eye(dim, dtype=dtype)
    flat = jax.vmap(lambda xi: fn(xi).reshape(-1))
    value = fn(jnp.zeros(dim, dtype))
    centre = value.reshape(-1)
    plus, minus = flat(eye), flat(-eye)  # [dim, m]
    pairs = flat((eye[:, None, :] + eye[None, :, :]).reshape(-1, dim)).reshape(dim, dim, -1)
    hessian = pairs - plus[:, None] - plus[None, :] + centre
    return _moments(value, ((plus - minus) / 2).T, jnp.moveaxis(hessian, -1, 0))
