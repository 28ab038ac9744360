"""What every graded check must do, as tests generated for each lesson's table of exercises.

``CORRECT = {exercise: (check, reference answer)}`` and
``WRONG = {case: (exercise, plausible wrong answer, phrase its message must contain)}``.
"""

import pytest


def harness_tests(correct, wrong, *, calls=1, wrong_phrases=()):
    """Three parametrized tests: the right answer passes with one line per call, each wrong answer
    fails with one plain sentence, an unstarted exercise says what to do."""

    @pytest.mark.parametrize("exercise", sorted(correct))
    def test_correct_answer_passes_with_one_line(exercise, capsys):
        check, answer = correct[exercise]
        for _ in range(calls):  # fresh random inputs on every call
            check(answer)
        assert capsys.readouterr().out == f"Exercise {exercise} passed\n" * calls

    @pytest.mark.parametrize("case", sorted(wrong))
    def test_plausible_wrong_answer_fails_with_a_plain_sentence(case, capsys):
        exercise, wrong_answer, says = wrong[case]
        check, _ = correct[exercise]
        with pytest.raises(AssertionError) as failure:
            check(wrong_answer)
        message = str(failure.value)
        assert message.startswith(f"Exercise {exercise}: for "), message
        assert says in message, message
        assert all(phrase in message for phrase in wrong_phrases), message
        assert "\n" not in message
        assert capsys.readouterr().out == ""

    @pytest.mark.parametrize("exercise", sorted(correct))
    def test_unstarted_exercise_says_what_to_do(exercise):
        def stub(*args):
            # YOUR CODE HERE
            raise NotImplementedError()

        check, _ = correct[exercise]
        with pytest.raises(AssertionError) as failure:
            check(stub)
        assert str(failure.value) == (
            f"Exercise {exercise} is not done yet: "
            "replace `raise NotImplementedError()` with your code."
        )
        assert failure.value.__suppress_context__ and failure.value.__cause__ is None
        # In Jupyter the failure shows as its sentence alone, without grading's frames.
        assert failure.value._render_traceback_() == [f"ExerciseFailed: {failure.value}"]

    return (
        test_correct_answer_passes_with_one_line,
        test_plausible_wrong_answer_fails_with_a_plain_sentence,
        test_unstarted_exercise_says_what_to_do,
    )
