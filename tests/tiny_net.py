"""The smallest network with a regularizable feature and a separate head, shared by the regularizer tests."""
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
