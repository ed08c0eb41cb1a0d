"""The regularization tricks RIFLE is compared with (Li et al., ICML 2020, Sec. 4), as config switches.

Each trick is one module and one switch in the ``tricks`` config section; the cyclic learning rate, the fifth
baseline, is a learning-rate schedule (``train.lr_schedule: cyclic``, see ``engine/optim.py``). Every trick is a
no-op in evaluation, leaves the state-dict keys of the network unchanged (checkpoints stay plain ResNet
checkpoints) and combines with RIFLE, which keeps re-drawing the real classifier parameters.

- ``dropout``           dropout on the classifier input            (``dropout.py``)
- ``dropconnect``       random masks on the classifier weights     (``dropconnect.py``)
- ``stochastic_depth``  residual branches dropped, linear in depth (``stochastic_depth.py``)
- ``disturb_label``     training labels replaced at random         (``disturb_label.py``)

The engine calls ``install_tricks`` on the built (pretrained) network and ``wrap_train_step`` on its training
step with its ``tricks`` section; one's own code calls them with the section's keys as keywords, every trick off
unless switched on (``install_tricks(network, dropout=True, dropout_rate=0.3)``).
"""
from __future__ import annotations

from paddle import nn

from ..config.checks import register_check
from ..config.keywords import keyword_section
from ..models.classifier import find_classifier
from .disturb_label import DisturbLabel, disturb_labels
from .dropconnect import DropConnectLinear, install_dropconnect
from .dropout import ClassifierInputDropout, install_dropout
from .stochastic_depth import ResidualDrop, install_stochastic_depth, linear_drop_rates, residual_blocks


def tricks_section(tricks_cfg: dict | None, switches: dict, caller: str) -> dict:
    """The complete ``tricks`` section of ``tricks_cfg`` (None: every trick off) and ``switches`` (its keys as
    keywords, which win), the schema's defaults for the rest; refused if a trick is on with a zero rate."""
    tricks = keyword_section("tricks", {**(tricks_cfg or {}), **switches}, caller)
    useless = switched_on_without_effect(tricks)
    if useless:
        raise ValueError(f"{caller}(): {'; '.join(useless)}")
    return tricks


def switched_on_without_effect(tricks: dict) -> list[str]:
    """A trick turned on with a zero rate silently trains the baseline it was meant to be compared with."""
    rates = {"dropout": "dropout_rate", "dropconnect": "dropconnect_rate",
             "stochastic_depth": "stochastic_depth_rate", "disturb_label": "disturb_label_alpha"}
    return [f"tricks.{switch}=true but tricks.{rate}=0 (no effect): set a rate > 0 or turn the switch off"
            for switch, rate in rates.items() if tricks[switch] and tricks[rate] == 0]


@register_check
def _trick_problems(cfg: dict, purpose: str | None) -> list[str]:
    return switched_on_without_effect(cfg["tricks"]) if purpose is None else []


def install_tricks(network: nn.Layer, tricks_cfg: dict | None = None, head_name: str | None = None,
                   **switches) -> list[str]:
    """Install the enabled network-side tricks on ``network``; returns one line per trick.

    The tricks are a ``tricks`` config section (``tricks_cfg``) and/or its keys as keywords (``dropout=True,
    dropout_rate=0.3``); what neither sets is off, the rates the schema's defaults. ``disturb_label`` acts on the
    labels: ``wrap_train_step`` installs it. Order matters only in that DropConnect replaces the classifier layer,
    so it goes first and input dropout is then attached to the replacement.
    """
    if switches.get("disturb_label"):  # a keyword that would do nothing here
        raise TypeError("install_tricks() does not install disturb_label, which acts on the labels: "
                        "wrap_train_step(train_step, num_classes=..., disturb_label=True)")
    tricks_cfg = tricks_section(tricks_cfg, switches, "install_tricks")
    installed = []
    head_name, _ = find_classifier(network, head_name)
    if tricks_cfg["dropconnect"]:
        install_dropconnect(network, head_name, tricks_cfg["dropconnect_rate"])
        installed.append(f"DropConnect p={tricks_cfg['dropconnect_rate']} on the weights of '{head_name}'")
    if tricks_cfg["dropout"]:
        install_dropout(find_classifier(network, head_name)[1], tricks_cfg["dropout_rate"])
        installed.append(f"dropout p={tricks_cfg['dropout_rate']} on the input of '{head_name}'")
    if tricks_cfg["stochastic_depth"]:
        hooks = install_stochastic_depth(network, tricks_cfg["stochastic_depth_rate"])
        installed.append(f"stochastic depth on {len(hooks)} residual blocks, drop rate "
                         f"{hooks[0][1].rate:.3f} ({hooks[0][0]}) to {hooks[-1][1].rate:.3f} ({hooks[-1][0]})")
    return installed


def wrap_train_step(train_step, tricks_cfg: dict | None = None, num_classes: int | None = None, **switches):
    """The training step with the enabled label-side tricks around it (``train_step`` None: the plain step);
    the tricks as in ``install_tricks`` (``wrap_train_step(None, num_classes=10, disturb_label=True)``)."""
    tricks_cfg = tricks_section(tricks_cfg, switches, "wrap_train_step")
    if tricks_cfg["disturb_label"]:
        if not num_classes:
            raise ValueError("wrap_train_step(): disturb_label needs num_classes (labels are re-drawn over them)")
        return DisturbLabel(tricks_cfg["disturb_label_alpha"], num_classes, inner=train_step)
    return train_step


__all__ = ["ClassifierInputDropout", "DisturbLabel", "DropConnectLinear", "ResidualDrop", "disturb_labels",
           "install_dropconnect", "install_dropout", "install_stochastic_depth", "install_tricks",
           "linear_drop_rates", "residual_blocks", "switched_on_without_effect", "wrap_train_step"]
