"""Paddle's unactionable warnings are kept out of a run's console, and only those."""
import warnings

import paddle

from rifle_paddle.console import paddle_noise_silenced


def _shown(block) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        block()
    return [str(w.message) for w in caught]


def _noisy_step():
    import paddle.tensor.creation as creation
    for flag in ("_warned_in_tensor", "_warned_in_to_tensor"):  # Paddle warns about to_tensor(tensor) once per
        if hasattr(creation, flag):  # process; the flag's name: 3.1 and later, 3.0
            setattr(creation, flag, False)
    bn = paddle.nn.BatchNorm2D(3)
    bn.train()
    bn(paddle.randn([2, 3, 4, 4]))  # Paddle: "When training, we now always track global mean and variance."
    paddle.to_tensor(paddle.to_tensor([1, 2]))  # what hapi's eval_batch does with the labels
    warnings.warn("a warning of our own", UserWarning)


def test_the_paddle_notices_are_shown_without_the_filter():
    shown = _shown(_noisy_step)
    assert any("track global mean and variance" in m for m in shown)
    assert any("copy construct from a tensor" in m for m in shown)


def test_the_filter_hides_exactly_the_paddle_notices():
    def silenced():
        with paddle_noise_silenced():
            _noisy_step()
    assert _shown(silenced) == ["a warning of our own"]
