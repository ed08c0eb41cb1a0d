"""The one declaration of every configuration key: its default, its type and its meaning.

Everything that reads a config (the loader, the validator, the README's key table, `train.py --help-config`)
derives from ``SCHEMA``; a key that is not declared here does not exist.

Defaults: the methods (RIFLE, the regularizers) default to their authors' rules, so that a user who switches one
on gets the published method; the training protocol defaults to the RIFLE authors' recipe (ResNet-50, ImageNet
weights, SGD momentum 0.9, weight decay 1e-4, batch 32, 40 epochs, lr 0.01) except where their choice would hurt an
arbitrary data set (per-epoch reshuffling, a kept last batch, Inception crops, per-iteration cosine).
``configs/base.yaml`` pins the authors' protocol key by key for the paper tables; ``docs/fidelity.md`` lists
every difference and the key that selects each side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Field:
    """One configuration key.

    ``types`` are the accepted Python types after YAML parsing (``None`` is accepted when ``nullable``);
    ``check`` returns an error message for a value of the right type but out of range, or ``None``.
    ``path_words`` is set on keys that hold a file-system path: the values that name something else instead
    (``'imagenet'``, ``'auto'``). A run's ``config.yaml`` records every path absolute (``absolute_paths``), so the run
    can be resumed, evaluated and analysed from any folder.
    ``normalize`` maps a value to the one spelling every reader sees, before validation (``model.pretrained``: each
    way of saying "no weights" becomes null).
    """

    default: Any
    types: tuple
    doc: str
    nullable: bool = False
    choices: "tuple | Owned | None" = None
    check: Callable[[Any], str | None] | None = None
    path_words: tuple[str, ...] | None = None
    normalize: Callable[[Any], Any] | None = None

    @property
    def is_path(self) -> bool:
        return self.path_words is not None

    @property
    def allowed(self) -> tuple | None:
        """The values the key may take (None: any of its type, or names a registry's own check validates), read
        from the owner for ``Owned`` choices."""
        if isinstance(self.choices, Owned):
            return None if self.choices.registry else self.choices.values
        return self.choices

    @property
    def listed(self) -> tuple | None:
        """The values to show a user (``docs/config.md``, ``--help-config``): ``allowed`` and a registry's names."""
        return self.choices.values if isinstance(self.choices, Owned) else self.choices


class Owned:
    """The choices of a key whose values name what another package implements (an initializer, a regularizer).

    The owning module declares the list once and fills it here with ``register_choices`` when it is imported, so
    the schema, the validation and ``docs/config.md`` read the owner's list and this layer imports nothing above
    it. ``rifle_paddle/__init__`` imports every owner, so any use of the config package sees them all.
    ``registry``: the names of a registry (models, readers), listed for the user but validated by the registry's
    own check (``config.checks.register_check``), which names the close matches and accepts later registrations.
    """

    def __init__(self, owner: str, registry: bool = False):
        self.owner, self.registry = owner, registry
        self._values: tuple | None = None

    @property
    def values(self) -> tuple:
        if self._values is None:
            raise LookupError(f"the choices declared by {self.owner} are not registered: import it (it calls "
                              f"rifle_paddle.config.schema.register_choices)")
        return self._values


def register_choices(dotted: str, values) -> tuple:
    """Make ``values`` the choices of key ``dotted`` (declared ``choices=Owned(<this module>)``); returns them.

    Registering again extends the list (readers each add their label levels), in order, without repeats.
    """
    f = field_of(dotted)
    if f is None or not isinstance(f.choices, Owned):
        raise ValueError(f"{dotted} is not a key with Owned choices in rifle_paddle/config/schema.py")
    values = tuple(values)
    f.choices._values = tuple(dict.fromkeys((f.choices._values or ()) + values))
    return values


def _positive(v):
    return None if v > 0 else "must be > 0"


def _non_negative(v):
    return None if v >= 0 else "must be >= 0"


def _seed(v):
    return None if 0 <= v < 2 ** 32 else "must be in [0, 2**32) (NumPy's seed range)"


def _probability(v):
    return None if 0 <= v < 1 else "must be in [0, 1)"


def _sample_rate(v):
    return None if 0 < v <= 1 else "must be in (0, 1]"


def _non_negative_ints(v):
    if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 0 for e in v):
        return "must be a list of non-negative integers"
    return None


def _class_selection(v):
    if not v or not all((isinstance(e, int) and not isinstance(e, bool) and e >= 0) or (isinstance(e, str) and e)
                        for e in v):
        return "must be a non-empty list of class indices (>= 0) or class names"
    if len(set(v)) != len(v):
        return "must not name a class twice"
    return None


def _crop_scale(v):
    if len(v) != 2 or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
        return "must be a list of two numbers [min, max]"
    return None if 0 < v[0] <= v[1] <= 1 else "must satisfy 0 < min <= max <= 1"


def _triple(v):
    if len(v) != 3 or not all(isinstance(e, (int, float)) and not isinstance(e, bool) for e in v):
        return "must be a list of three numbers"
    return None


def _layer_names(v):
    if not v or not all(isinstance(e, str) and e for e in v):
        return "must be a non-empty list of sub-layer names (e.g. [layer3, layer4])"
    return None


INT = (int,)
FLOAT = (int, float)
STR = (str,)
BOOL = (bool,)
LIST = (list,)


#: The ways a config says "no pretrained weights" in ``model.pretrained`` besides YAML null and false: these words,
#: in any case, and the empty string. :func:`no_weights` is the one test of them; the loader stores each as null.
NO_WEIGHTS_WORDS = ("none", "null", "false", "")


def no_weights(spec: Any) -> bool:
    """Whether ``model.pretrained`` (as written, or as loaded: null) means training from scratch."""
    return spec is None or spec is False or (isinstance(spec, str) and spec.strip().lower() in NO_WEIGHTS_WORDS)


def _weights_or_none(spec: Any) -> Any:
    return None if no_weights(spec) else spec

SCHEMA: dict[str, dict[str, Field]] = {
    "run": {
        "name": Field(None, STR, "Run name; outputs go to <output_dir>/<name>. Default: <config stem>-<timestamp>.",
                      nullable=True),
        "output_dir": Field("output", STR, "Parent directory of all run directories.", path_words=()),
        "cell": Field(None, STR, "The table cell the run belongs to, '<dataset>/<method>' (every generated table "
                      "config sets it). The report groups runs by it and run.seed, never by folder names; null: an "
                      "ad-hoc run, reported under data.name and a method named after its switches.", nullable=True),
        "seed": Field(42, INT, "Seed for Python, NumPy and Paddle; also seeds RIFLE's re-initializations.",
                      check=_seed),
        "device": Field("auto", STR, "'auto' (GPU when Paddle was built with CUDA), 'cpu' or 'gpu'.",
                        choices=("auto", "cpu", "gpu")),
        "overwrite": Field(False, BOOL, "Allow writing into an existing, non-empty run directory."),
        "cpu_threads": Field(None, INT, "Threads of Paddle's CPU kernels (which use one unless told). Null: "
                             "$RIFLE_PADDLE_CPU_THREADS if set (the sweep's --workers sets cores // workers), else "
                             "every core. Ignored on a GPU.", nullable=True, check=_positive),
    },
    "model": {
        "arch": Field("resnet50", STR, "Backbone name from the model registry.",
                      choices=Owned("rifle_paddle/models/registry.py", registry=True)),
        "pretrained": Field("imagenet", STR, "'imagenet' (official Paddle weights, cached), a path to a .pdparams "
                            "file, or null for none (also spelled none, false or ''; stored as null). The classifier "
                            "is never loaded from it.", nullable=True, path_words=("imagenet", *NO_WEIGHTS_WORDS),
                            normalize=_weights_or_none),
        "num_classes": Field(None, INT, "Classifier outputs; inferred from the training data when null.",
                             nullable=True, check=_positive),
        "head": Field(None, STR, "Name of the classifier sub-layer (RIFLE's target). Null: the model's own "
                      "get_classifier(), else the last Linear layer.", nullable=True),
        "head_init": Field("authors", STR, "Initial classifier: 'authors' (weight U(-1/sqrt(fan_in), "
                           "1/sqrt(fan_in)), bias 0, as the RIFLE authors' fc) or 'paddle' (Paddle's Linear "
                           "default: Xavier-uniform weight, bias 0).",
                            choices=Owned("rifle_paddle/models/classifier.py")),
        "pretrained_bn_stats": Field(True, BOOL, "Load the pretrained batch-norm running mean/variance. The RIFLE "
                                     "authors' loader loads trainable variables only, so theirs start at 0/1 and "
                                     "are re-estimated during training (false). Applied to the network being "
                                     "fine-tuned only, never to a regularizer's frozen teacher."),
        "checkpoint": Field(None, STR, "Weights to evaluate (eval.py) — a run directory or a .pdparams file.",
                            nullable=True, path_words=()),
    },
    "data": {
        "name": Field("folder", STR, "Data set reader from the data registry (datasets/ describes each).",
                      choices=Owned("rifle_paddle/data/registry.py", registry=True)),
        "root": Field(None, STR, "Data set root directory.", nullable=True, path_words=()),
        "train_list": Field(None, STR, "File list (`path label` lines) for the training split "
                            "('filelist' reader); relative to root.", nullable=True),
        "test_list": Field(None, STR, "File list for the test split ('filelist' reader); relative to root.",
                           nullable=True),
        "classes": Field(None, LIST, "Train and test on these classes only (indices or names, as the reader "
                         "lists them), relabeled 0..k-1 in the order given; null: all. Splits one data set into "
                         "disjoint source and target tasks.", nullable=True, check=_class_selection),
        "image_size": Field(224, INT, "Side of the square crop fed to the network.", check=_positive),
        "resize_size": Field(256, INT, "Shorter side after resizing, before the evaluation center crop.",
                             check=_positive),
        "train_transform": Field("random_resized_crop", STR, "Training augmentation: 'random_resized_crop' "
                                 "(Inception crop of data.crop_scale of the area, resized to image_size, + "
                                 "data.flip) or 'authors' (resize the shorter side to resize_size, random "
                                 "image_size crop, + data.flip: the RIFLE authors' reader).",
                                 choices=("random_resized_crop", "authors")),
        "flip": Field("horizontal", STR, "Training flip of either transform, drawn per image with p = 0.5: "
                      "'horizontal' (a left-right mirror), 'vertical' (upside down: the RIFLE authors' reader, "
                      "whose img[:, :, ::-1, :] on [N, 3, H, W] reverses the rows) or 'none'.",
                      choices=("horizontal", "vertical", "none")),
        "resampling": Field("antialiased", STR, "How images are shrunk: 'antialiased' (integer-block averaging, "
                            "then bilinear; large JPEGs decoded at a reduced scale) or 'bilinear' (a full decode and "
                            "plain cv2.resize, as the RIFLE authors' reader; aliases when shrinking 2x or more).",
                            choices=("antialiased", "bilinear")),
        "exif_orientation": Field("ignore", STR, "A JPEG's EXIF orientation tag: 'ignore' it (the pixels as stored, "
                                  "as PIL, torchvision and the DELTA authors read them; large JPEGs may be decoded "
                                  "at a reduced scale) or 'apply' it (turn the pixels as cv2.imread does in the RIFLE "
                                  "authors' reader; every file is decoded in full).", choices=("ignore", "apply")),
        "order": Field("reshuffle", STR, "Training order: 'reshuffle' (a new seeded permutation every epoch) or "
                       "'fixed' (the RIFLE authors' reader: one seeded permutation for the whole run, so every epoch "
                       "has the same batches in the same order; only the order inside a batch changes).",
                       choices=("reshuffle", "fixed")),
        "drop_last": Field(False, BOOL, "Drop the last incomplete training batch every epoch (the authors). false: "
                           "keep it, unless it would hold a single image (batch norm cannot train on one)."),
        "crop_scale": Field([0.08, 1.0], LIST, "Training random-resized-crop: [min, max] fraction of the image "
                            "area kept (Inception's 0.08-1 by default; raise min for tiny images).",
                            check=_crop_scale),
        "mean": Field([0.485, 0.456, 0.406], LIST, "Per-channel RGB mean (0-1 scale).", check=_triple),
        "std": Field([0.229, 0.224, 0.225], LIST, "Per-channel RGB std (0-1 scale).", check=_triple),
        "batch_size": Field(32, INT, "Training batch size per device.", check=_positive),
        "eval_batch_size": Field(100, INT, "Evaluation batch size per device.", check=_positive),
        "num_workers": Field(4, INT, "DataLoader worker processes (0: load in the main process).",
                             check=_non_negative),
        "sample_rate": Field(1.0, FLOAT, "Fraction of training images kept per class (stratified, seeded by "
                             "sample_seed; 0.15/0.3/0.5 subsets are nested).", check=_sample_rate),
        "train_per_class": Field(None, INT, "Keep at most N training images per class (seeded, after "
                                 "sample_rate). caltech256 draws its training split this way and requires it "
                                 "(30 or 60 in the papers).", nullable=True, check=_positive),
        "test_per_class": Field(None, INT, "Test at most N images per class (seeded like train_per_class); null: "
                                "all. caltech256: drawn from the images not used for training (20 in "
                                "L2-SP/DELTA; null: all the rest).", nullable=True, check=_positive),
        "sample_seed": Field(None, INT, "Seed of every per-class draw (sample_rate, train_per_class, Caltech-256's "
                             "split); null: run.seed. Fix it to keep the same images across run seeds.",
                             nullable=True, check=_seed),
        "label_level": Field(None, STR, "Label granularity. fgvc_aircraft: variant (100 classes, default), family "
                             "(70), manufacturer (30); cifar100: fine (100, default), coarse (20).", nullable=True,
                             choices=Owned("rifle_paddle/data/registry.py")),
        "trainval": Field(True, BOOL, "fgvc_aircraft, flowers102: train on the official train + val splits (the "
                          "usual fine-tuning protocol); false: train split only."),
        "remove_banner": Field(True, BOOL, "fgvc_aircraft: cut the 20-pixel copyright banner off the bottom of "
                               "every image, as the data set's README asks."),
        "strict": Field(False, BOOL, "Stop at the first unreadable image. false: replace it by another image of "
                        "its class, warn, and report all such files after each epoch."),
    },
    "train": {
        "epochs": Field(40, INT, "Number of epochs.", check=_positive),
        "lr": Field(0.01, FLOAT, "Peak learning rate.", check=_positive),
        "lr_schedule": Field("cosine", STR, "'cosine' (per-iteration cosine decay to 0), 'cosine_epoch' (the RIFLE "
                             "authors' fluid cosine_decay: constant within a stair, lr/2 (cos(pi floor(step / "
                             "stair) / E) + 1), the stair set by lr_stair), 'constant', or 'cyclic' (Smith's cyclical learning rate, a "
                             "RIFLE baseline; see cyclic_*).", choices=("cosine", "cosine_epoch", "constant", "cyclic")),
        "lr_stair": Field("train_split", STR, "lr_schedule=cosine_epoch: the split whose size N sets the stair, "
                          "ceil(N / batch_size) steps (N per process on several cards): 'train_split' (a stair is "
                          "one epoch, or one step longer when the last batch is dropped) or 'test_split' (the RIFLE "
                          "authors' run.py, which computes step_each_epoch after rebinding its reader to the test "
                          "split: stairs unrelated to the epochs, and more than one cosine where the test split is "
                          "smaller than the training split).", choices=("train_split", "test_split")),
        "cyclic_base_lr_ratio": Field(0.1, FLOAT, "lr_schedule=cyclic: lowest learning rate of a cycle, as a "
                                      "fraction of train.lr (the peak).", check=_probability),
        "cyclic_step_epochs": Field(5.0, FLOAT, "lr_schedule=cyclic: epochs from the lowest to the peak learning "
                                    "rate (Smith's stepsize; a cycle is twice this: 10 epochs, i.e. 4 cycles in "
                                    "40 epochs).", check=_positive),
        "cyclic_mode": Field("triangular", STR, "lr_schedule=cyclic: 'triangular' (constant amplitude) or "
                             "'triangular2' (amplitude halved every cycle).", choices=("triangular", "triangular2")),
        "warmup_epochs": Field(0, INT, "Linear warm-up epochs before the schedule.", check=_non_negative),
        "momentum": Field(0.9, FLOAT, "SGD momentum.", check=_probability),
        "weight_decay": Field(1e-4, FLOAT, "L2 weight decay applied by the optimizer (coupled: added to the "
                              "gradient), to every parameter. Under DTNH it is added after the projection, outside "
                              "the never-hurt guarantee; the DELTA authors use none with L2-SP/DELTA.",
                              check=_non_negative),
        "label_smoothing": Field(0.0, FLOAT, "Label smoothing epsilon for the cross-entropy.",
                                 check=_probability),
        "grad_clip": Field(None, FLOAT, "Clip gradients by global norm (null: off).", nullable=True,
                           check=_positive),
        "amp": Field(False, BOOL, "Mixed precision (GPU only)."),
        "amp_level": Field("O1", STR, "Paddle AMP level.", choices=("O1", "O2")),
        "sync_bn": Field(False, BOOL, "Several cards: synchronized batch norm, statistics over the global batch "
                         "(GPU only). With data.batch_size = the one-card batch / cards it reproduces a one-card "
                         "run (docs/gpu.md). Without it each card normalizes its own batch."),
        "eval_freq": Field(1, INT, "Evaluate every N epochs (and after the last).", check=_positive),
        "log_freq": Field(10, INT, "Every N optimizer steps: the progress line, the throughput line (images/s, "
                          "the loader's share) and, with log.visualdl, the per-step VisualDL scalars (train_step/ loss, "
                          "accuracy, lr; throughput/).", check=_positive),
        "save_best": Field(True, BOOL, "Keep the checkpoint with the best test top-1 as best.pdparams."),
        "resume": Field(None, STR, "Continue an interrupted run from its newest checkpoint: a run directory, or "
                        "'auto' (<output_dir>/<name> if it has a checkpoint; starts it if it holds no result yet, "
                        "refuses a folder with results but no intact checkpoint). The config must match "
                        "the run's except for execution keys (num_workers, device, log/eval frequency, ...). "
                        "`rifle-train --resume <run dir>` sets it and reads the run's config.yaml.", nullable=True,
                        path_words=("auto",)),
        "resume_data_changed": Field("refuse", STR, "A resume whose data differs from the run's (images added or "
                                     "removed, per-class counts, file list: recorded in every checkpoint): 'refuse' "
                                     "it, or 'allow' it with a warning (the rest of the run is then not the run "
                                     "that stopped). Another class list is always refused.",
                                     choices=("refuse", "allow")),
        "nan_policy": Field("stop", STR, "On a NaN/Inf training loss: 'stop' the run (naming the step and the last "
                            "good checkpoint) or 'skip' the batch without an optimizer step (counted in "
                            "metrics.json; 10 in a row still stop).",
                            choices=Owned("rifle_paddle/engine/nonfinite.py")),
    },
    "rifle": {
        "enabled": Field(False, BOOL, "Re-initialize the classifier during fine-tuning (RIFLE)."),
        "num_reinits": Field(3, INT, "The authors' cyclic_num - 1: re-initialize at the start of every epoch that is "
                             "a multiple of epochs//(num_reinits+1) and leaves min_tail_epochs after it (their "
                             "rule exactly; short runs may get fewer, with a warning).", check=_non_negative),
        "epochs": Field(None, LIST, "Explicit re-initializations, each given as the number of epochs finished "
                        "before it (the 0-based index of the epoch it precedes): [10, 20, 30] re-draws before the "
                        "console's epochs 11, 21 and 31 (overrides num_reinits).", nullable=True, check=_non_negative_ints),
        "min_tail_epochs": Field(4, INT, "Epochs that must follow the last re-initialization so the head "
                                 "converges (the authors': 4, from their 'e > E - 5' rule).", check=_non_negative),
        "min_tail_steps": Field(0, INT, "Optimizer steps that must follow the last re-initialization (raises "
                                "min_tail_epochs on short epochs; 0: none). Training starts with a warning when the "
                                "tail is shorter than the threshold the CPU evidence set (SHORT_TAIL_STEPS in "
                                "rifle_paddle/callbacks/rifle.py; docs/evidence.md).",
                                check=_non_negative),
        "init": Field("authors", STR, "How the head is re-drawn: 'authors' (each parameter p from N(0, "
                      "sqrt(2/p.shape[0])): weight sqrt(2/fan_in), bias sqrt(2/num_classes)), 'he_normal' (weight "
                      "and bias N(0, sqrt(2/fan_in))), 'uniform' (weight and bias U(+-1/sqrt(fan_in))) or "
                      "'paddletransfer' (weight only, U(+-1/sqrt(num_classes)); bias kept).",
                      choices=Owned("rifle_paddle/callbacks/rifle.py")),
        "reset_optimizer_state": Field(False, BOOL, "Zero the optimizer's accumulators (momentum) of the "
                                       "re-initialized parameters (our option; the authors keep them)."),
        "layer": Field(None, STR, "Sub-layer to re-initialize; null: the model's classifier.", nullable=True),
    },
    "tricks": {
        "dropout": Field(False, BOOL, "Dropout on the classifier input (Srivastava et al., 2014); a RIFLE baseline."),
        "dropout_rate": Field(0.5, FLOAT, "Probability of dropping a classifier input feature.",
                              check=_probability),
        "dropconnect": Field(False, BOOL, "DropConnect on the classifier weights (Wan et al., 2013); a RIFLE "
                             "baseline."),
        "dropconnect_rate": Field(0.5, FLOAT, "Probability of dropping a classifier weight (one mask per batch).",
                                  check=_probability),
        "stochastic_depth": Field(False, BOOL, "Drop ResNet residual branches at random (Huang et al., 2016); a "
                                  "RIFLE baseline."),
        "stochastic_depth_rate": Field(0.5, FLOAT, "Drop probability of the deepest residual block; block l of L "
                                       "drops with rate * l / L (Huang et al.'s survival p_L = 0.5).",
                                       check=_probability),
        "disturb_label": Field(False, BOOL, "Replace training labels at random (DisturbLabel, Xie et al., 2016); "
                               "a RIFLE baseline."),
        "disturb_label_alpha": Field(0.1, FLOAT, "Probability that a label is re-drawn uniformly over all classes "
                                     "(so it changes with alpha * (1 - 1/K)).", check=_probability),
    },
    "regularizer": {
        "name": Field("none", STR, "Transfer regularizer added to the task loss: 'l2sp' (L2-SP, Li et al. 2018), "
                      "'delta' (DELTA, Li et al. 2019), 'kd' (feature distillation from the frozen pretrained "
                      "network), 'bss' (Batch Spectral Shrinkage, Chen et al. 2019) or 'none'. Plain L2 is "
                      "train.weight_decay.", choices=Owned("rifle_paddle/regularizers/__init__.py")),
        "alpha": Field(None, FLOAT, "Weight of the regularizer's main term (L2-SP: distance to the pretrained "
                       "weights; DELTA/kd: feature-map distance; BSS: eta). Null: the method's default (l2sp, "
                       "delta, kd 0.01; bss 0.001).", nullable=True, check=_non_negative),
        "beta": Field(None, FLOAT, "Weight of beta/2 ||w_head||^2 on the new classifier. Null: the method's "
                      "default (l2sp, delta 0.01; kd, bss 0).", nullable=True, check=_non_negative),
        "layers": Field(None, LIST, "delta/kd: sub-layers whose output feature maps are compared with the "
                        "pretrained network's. Null: delta the last convolution of each ResNet stage's last block "
                        "(the DELTA authors' layer1.2.conv3 ... on ResNet-50, before BN and the residual add), kd "
                        "[layer4]. [layer1, layer2, layer3, layer4] compares the stage outputs instead.",
                        nullable=True, check=_layer_names),
        "feature_reduction": Field("sum", STR, "delta/kd: how the feature term combines the images of a batch: "
                                   "'sum' (the DELTA authors and tllib) or 'mean' (independent of the batch size; "
                                   "alpha then acts batch_size times weaker). On N cards: the global batch, as on "
                                   "one card (docs/gpu.md).",
                                   choices=Owned("rifle_paddle/regularizers/feature_distillation.py")),
        "feature_positions": Field("mean", STR, "delta/kd: how the feature term combines the positions of a "
                                   "feature map: 'mean' (DELTA's 1/(h w); kd then weighs every layer alike) or "
                                   "'sum' (the DELTA authors' unweighted reg_fea_map, train.py lines 156-162, the "
                                   "paper configs' kd).",
                                   choices=Owned("rifle_paddle/regularizers/feature_distillation.py")),
        "bss_k": Field(1, INT, "bss: number of smallest singular values penalized.", check=_positive),
        "delta_attention": Field("supervised", STR, "delta: channel weights from the pretrained network's "
                                 "per-channel importance for the target task ('supervised', the paper) or all "
                                 "equal ('uniform').", choices=Owned("rifle_paddle/regularizers/delta.py")),
        "attention_probe": Field("authors", STR, "delta: the classifier that scores the channels: 'authors' (a new "
                                 "fc trained 10 epochs on the training loader over a frozen copy of the pretrained "
                                 "network, as channel_eval.py) or 'fast' (a linear probe fitted with Adam on the "
                                 "features of the scoring batches; seconds instead of 10 forward epochs).",
                                 choices=Owned("rifle_paddle/regularizers/delta.py")),
        "attention_batches": Field(4, INT, "delta: training batches used to score the channels, once before "
                                   "training (one frozen forward per channel and batch; 4 as the DELTA authors).",
                                   check=_positive),
    },
    "dtnh": {
        "enabled": Field(False, BOOL, "DTNH (Wan et al. 2019): compute the task and regularizer gradients "
                         "separately and drop the part of the regularizer's that opposes the task's."),
        "granularity": Field("layer", STR, "Decompose per 'layer' (default) or once over the whole parameter "
                             "vector ('global').", choices=Owned("rifle_paddle/regularizers/dtnh.py")),
    },
    "log": {
        "visualdl": Field(True, BOOL, "Write VisualDL logs to <run>/vdl."),
    },
}


def defaults() -> dict:
    """A fresh nested dict of every default (lists copied, so callers may mutate it)."""
    return {section: {key: (list(f.default) if isinstance(f.default, list) else f.default)
                      for key, f in fields.items()}
            for section, fields in SCHEMA.items()}


def all_keys() -> list[str]:
    return [f"{section}.{key}" for section, fields in SCHEMA.items() for key in fields]


def field_of(dotted: str) -> Field | None:
    section, _, key = dotted.partition(".")
    return SCHEMA.get(section, {}).get(key)


@dataclass
class ConfigError(Exception):
    """Every problem found in a config at once, so a user fixes them in one edit."""

    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        head = "invalid configuration" if len(self.problems) == 1 else \
            f"invalid configuration ({len(self.problems)} problems)"
        return head + ":\n" + "\n".join(f"  - {p}" for p in self.problems)
