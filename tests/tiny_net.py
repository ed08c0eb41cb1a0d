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


class TinyResNet(nn.Layer):
    """A ResNet in miniature (stem conv-BN-ReLU-max-pool, one basic block of 8 channels, one of 16 with a strided
    projection shortcut, average pool, ``fc``): the batch norm, residual adds and pooling of a ResNet in 7k
    parameters. The end-to-end trace against the authors' pipeline uses it: with 11M parameters (ResNet-18) a
    one-ulp difference flips the odd ReLU and grows past 1e-5 within three steps."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        from paddle.vision.models.resnet import BasicBlock
        self.conv1 = nn.Conv2D(3, 8, 3, padding=1, bias_attr=False)
        self.bn1 = nn.BatchNorm2D(8)
        self.pool = nn.MaxPool2D(2)
        self.layer1 = BasicBlock(8, 8)
        self.layer2 = BasicBlock(8, 16, stride=2, downsample=nn.Sequential(
            nn.Conv2D(8, 16, 1, stride=2, bias_attr=False), nn.BatchNorm2D(16)))
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.pool(F.relu(self.bn1(self.conv1(x))))))
        return self.fc(x.mean(axis=[2, 3]))
