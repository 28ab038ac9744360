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
    mean = value.reshape(-1) + 0.5 * jnp.trace(hessian, axis1=1, axis2=2)
    cov = gradient @ gradient.T + 0.5 * jnp.einsum("iab,jba->ij", hessian, hessian)
    return mean.reshape(value.shape), cov.reshape(value.shape + value.shape)
