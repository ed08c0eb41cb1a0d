"""The smallest networks the tests share: one with a regularizable feature and a separate head (the regularizer
tests), and a one-neuron linear model whose loss is its mean output (AMP and multi-card tests)."""
import paddle
import paddle.nn.functional as F
from paddle import nn


class Tiny(nn.Layer):
    """x [B, 4] -> body (Linear 4->3, the regularized feature) -> ReLU -> fc (Linear 3->2, the new head)."""

    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 3)
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(F.relu(self.body(x)))


def _mean_output(output, label):
    return output.mean()


def linear_model(amp_configs=None, nan_policy: str = "stop"):
    """``TransferModel`` over ``Linear(2, 1)`` (seeded), SGD at 0.1, loss = mean output: the gradient of the weight
    is the batch's mean input, so a step is computable by hand."""
    from rifle_paddle.engine.model import TransferModel
    from rifle_paddle.engine.nonfinite import NonFiniteLossGuard
    paddle.seed(0)
    net = nn.Linear(2, 1)
    model = TransferModel(net)
    model.prepare(paddle.optimizer.SGD(0.1, parameters=net.parameters()), _mean_output, amp_configs=amp_configs)
    model.nonfinite = NonFiniteLossGuard(nan_policy)
    return model
