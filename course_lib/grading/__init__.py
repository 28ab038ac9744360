"""Graded exercises: compare a learner's function with the reference on fresh random inputs.

Every exercise in the course is a function the learner writes in a notebook cell, followed by a
check cell::

    course_lib.grading.check_discounted_returns(discounted_returns)

A check draws fresh random inputs on every call (plus a few fixed edge cases), calls the learner's
function and the reference, compares shapes, then values. It prints one line, ``Exercise 2.1
passed``, or raises ``AssertionError`` with one plain sentence naming the input, the expected
answer, what came back and a hint. Errors raised by the learner's code are reported the same way
(their type and message, not a wall of JAX internals).

Modules: ``core`` (``compare_functions``, ``ExerciseFailed``, ``Comparison`` and the ``graded``
decorator that makes a check), ``inputs`` (random input samplers), and one module per group of
lessons, listed in ``_CHECKS`` below. A lesson group's module, with its references and the
environments they need, is imported when one of its checks is first used: lesson 00 loads no
environment.

Writing a lesson with these checks:

- Each ``check_*`` docstring gives the exact signature the learner's function must have: keep the
  exercise cell's ``def`` line identical to it, and put only the body between the nbgrader markers.
- Exercise cells only *define* functions. Cells after an exercise must not call the learner's
  function (call the ``course_lib`` version instead): a learner who has not solved it yet should
  see only the check cell fail.
- Exercise numbers are ``"<lesson>.<n>"``, e.g. lesson 02's first check is ``"2.1"``.
- To add an exercise: in its lesson group's module, write ``@graded("5.3") def check_x(rng)``
  returning a ``Comparison`` (reference, input sampler, hint, edge cases, known mistakes), add
  its name to ``_CHECKS`` and a correct and some wrong answers to the lesson group's test file.

The references are the library's own functions (``course_lib.agents``, ``course_lib.metagrad``,
``course_lib.experiments``) or JAX itself, so an exercise and the library always mean the same
thing.
"""

from course_lib import lazy
from course_lib.grading.core import ExerciseFailed, compare_functions

# Each lesson group's module and its checks, loaded on first use (PEP 562 ``__getattr__``).
_CHECKS = {
    "jax_basics": ("check_discounted_sum", "check_gamma_gradients"),
    "policy_gradients": (
        "check_log_prob_gradient",
        "check_reward_to_go",
        "check_reinforce_loss",
        "check_discounted_returns",
        "check_lambda_returns",
        "check_actor_critic_loss",
    ),
    "one_step": ("check_one_step_meta_gradient", "check_central_differences"),
    "multi_step": (
        "check_meta_gradient_through_batches",
        "check_forward_meta_gradients_through_batches",
        "check_variance_and_snr",
    ),
    "mixing_estimator": (
        "check_mix_meta_gradients",
        "check_geometric_weights",
        "check_mixed_meta_gradient",
        "check_optimal_weights",
    ),
    "capstone": (
        "check_estimator_weights",
        "check_variance_ratio",
        "check_paired_difference",
        "check_debiased_snr",
        "check_choose_estimator",
        "check_predicted_travel",
    ),
    "beyond": ("check_sampling_correction", "check_antithetic_es"),
}
_MODULE_OF = {name: module for module, names in _CHECKS.items() for name in names}

__all__ = ["ExerciseFailed", "compare_functions", *_MODULE_OF]


__getattr__, __dir__ = lazy.attributes(__name__, _MODULE_OF)
