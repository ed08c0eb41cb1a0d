"""The RIFLE authors' fine-tuning pipeline, transcribed from haozhe-an/RIFLE-Paddle-Implementation @ 5985eca.

Files: ``as_data_reader/readers.py`` (R), ``fine_tuning/run.py`` (F), ``fine_tuning/args.py`` (A),
``as_models/resnet.py`` (M), ``as_data_reader/data_path_utils.py`` (U). Every rule cites ``file:line``.
Their layout is kept: a training image leaves the reader as ``[1, 3, H, W]`` float32 (R:67), a batch is a list of
``(image, label)`` pairs (F:83-86).

Their random draws all come from NumPy's global generator (R:49-50, R:75, R:142, F:238), except the shuffle buffer,
which is Python's ``random.shuffle`` inside ``paddle.reader.shuffle`` (F:84). Here each is a method of an injected
object, ``rng`` (``permutation``, ``randint``, ``uniform``, ``normal``) and ``shuffler`` (``shuffle``), so the same
decisions can be replayed. Never imports ``rifle_paddle``.
"""
from __future__ import annotations

import glob
import math
import os

import cv2
import numpy as np

#: R:146 and R:170
IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')
#: R:63-64
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


# ------------------------------------------------------------------------------------------------ the reader
def resize_short(img: np.ndarray, target_size: int) -> np.ndarray:
    """R:10-29 with ``interpolation=None`` (R:158): ``cv2.resize``'s default, bilinear."""
    percent = float(target_size) / min(img.shape[0], img.shape[1])  # R:21
    resized_width = int(round(img.shape[1] * percent))  # R:22
    resized_height = int(round(img.shape[0] * percent))  # R:23
    return cv2.resize(img, (resized_width, resized_height))  # R:28


def crop_image(img: np.ndarray, target_size: int, center: bool, rng) -> np.ndarray:
    """R:32-54: ``w_start`` is drawn before ``h_start``."""
    height, width = img.shape[:2]  # R:43
    size = target_size
    if center:
        w_start = (width - size) // 2  # R:46
        h_start = (height - size) // 2  # R:47
    else:
        w_start = rng.randint(0, width - size + 1)  # R:49
        h_start = rng.randint(0, height - size + 1)  # R:50
    return img[h_start:h_start + size, w_start:w_start + size]  # R:51-53


def preprocess_image(img: np.ndarray, random_mirror: bool, rng) -> np.ndarray:
    """R:57-79: ``[ns, h, w, 3]`` RGB -> ``[ns, 3, h, w]``, /255, minus mean, over std, then the "mirror"."""
    img = img.astype('float32').transpose((0, 3, 1, 2)) / 255  # R:67
    img_mean = np.array(MEAN).reshape((3, 1, 1))  # R:69
    img_std = np.array(STD).reshape((3, 1, 1))  # R:70
    img -= img_mean  # R:71 (in place: float32 stays float32)
    img /= img_std  # R:72
    if random_mirror:  # R:74
        mirror = int(rng.uniform(0, 2))  # R:75
        if mirror == 1:  # R:76
            img = img[:, :, ::-1, :]  # R:77: axis 2 of [ns, 3, h, w] is h
    return img


def find_classes(directory: str):
    """U:22-27: sub-directories, sorted, indexed in that order."""
    classes = [d.name for d in os.scandir(directory) if d.is_dir()]  # U:24
    classes.sort()  # U:25
    return classes, {classes[i]: i for i in range(len(classes))}  # U:26


def get_dataset_info(dataset_dir: str, is_test: bool):
    """R:169-193: ``root/test`` or ``root/train``; per sorted class, ``glob(class/*)`` with an image extension."""
    datasubset_dir = os.path.join(dataset_dir, 'test' if is_test else 'train')  # R:173-176
    class_names, class_to_idx = find_classes(datasubset_dir)  # R:178
    image_paths, labels = [], []
    for class_name in class_names:  # R:182
        for img_path in glob.glob(os.path.join(datasubset_dir, class_name, '*')):  # R:184
            if not img_path.lower().endswith(IMG_EXTENSIONS):  # R:185
                continue
            image_paths.append(img_path)  # R:188
            labels.append(class_to_idx[class_name])  # R:189
    return np.array(image_paths), np.array(labels), len(class_names)  # R:191-193


class ReaderConfig:
    """R:123-167. The list is permuted once, when the reader is built (R:142), and read in that order every epoch."""

    def __init__(self, dataset_dir: str, is_test: bool, rng, target_size: int = 256, crop_size: int = 224):
        image_paths, labels, self.num_classes = get_dataset_info(dataset_dir, is_test)  # R:141
        random_per = rng.permutation(range(len(image_paths)))  # R:142
        self.image_paths = image_paths[random_per]  # R:143
        self.labels = labels[random_per]  # R:144
        self.is_test = is_test  # R:145
        self.rng = rng
        # R:148 defaults 256 / 224; a test passes smaller ones to scale the protocol down
        self.target_size, self.crop_size = target_size, crop_size

    def reader(self):
        """R:149-167; yields ``(image [1, 3, h, w], label, path)`` (the path added, so a test can name the image)."""
        for i, img_path in enumerate(self.image_paths):  # R:150
            if not img_path.lower().endswith(IMG_EXTENSIONS):  # R:151
                continue
            img = read(img_path, self.is_test, self.rng, self.target_size, self.crop_size)
            if img is None:  # R:155-157
                continue
            yield img, self.labels[i], img_path  # R:165


def read(img_path: str, is_test: bool, rng, target_size: int = 256, crop_size: int = 224):
    """R:154-163 for one image: decode (BGR), resize the short side, crop (random for training), BGR -> RGB, a batch
    of one, ``preprocess_image`` (normalize, then the mirror for training). None if OpenCV cannot read it."""
    img = cv2.imread(img_path)  # R:154
    if img is None:  # R:155
        return None
    return read_pixels(img, is_test, rng, target_size, crop_size)


def read_pixels(img: np.ndarray, is_test: bool, rng, target_size: int = 256, crop_size: int = 224):
    """R:158-163 on decoded BGR pixels."""
    img = resize_short(img, target_size)  # R:158
    img = crop_image(img, crop_size, center=is_test, rng=rng)  # R:159
    img = img[:, :, ::-1]  # R:160
    img = np.expand_dims(img, axis=0)  # R:161
    return preprocess_image(img, not is_test, rng)  # R:163


def shuffle(reader, buf_size: int, shuffler):
    """``paddle.reader.shuffle(reader, buf_size)`` of Paddle 1.x (F:84, ``buf_size=batch_size``): fill a buffer of
    ``buf_size`` items, ``random.shuffle`` it, yield it; the remainder is shuffled and yielded at the end."""
    buf = []
    for item in reader:
        buf.append(item)
        if len(buf) >= buf_size:
            shuffler.shuffle(buf)
            yield from buf
            buf = []
    if buf:
        shuffler.shuffle(buf)
        yield from buf


def batch(reader, batch_size: int, drop_last: bool = True):
    """``paddle.batch(reader, batch_size, drop_last=True)`` (F:83-86): the last incomplete batch is dropped.
    (``paddle.reader.buffered``, F:82, only prefetches in a thread: it changes no order.)"""
    out = []
    for item in reader:
        out.append(item)
        if len(out) == batch_size:
            yield out
            out = []
    if out and not drop_last:
        yield out


# ------------------------------------------------------------------------------------------------ the schedule
def step_each_epoch(num_test_images: int, batch_size: int) -> float:
    """F:117, evaluated after F:89 has rebound ``reader_config`` to the TEST split: ``ceil(N_test / batch)``."""
    return float(np.ceil(num_test_images / batch_size))


def cosine_decay(learning_rate: float, global_step: int, step_each_epoch: float, epochs: int) -> float:
    """``fluid.layers.cosine_decay`` (F:120): ``cur_epoch = floor(global_step / step_each_epoch)``,
    ``lr * 0.5 * (cos(cur_epoch * pi / epochs) + 1)``; ``global_step`` counts from 0 (the first ``exe.run``, F:175,
    sees 0) and is never clipped at ``epochs``."""
    cur_epoch = math.floor(global_step / step_each_epoch)
    return learning_rate * 0.5 * (math.cos(cur_epoch * math.pi / epochs) + 1)


def epoch_steps(num_train_images: int, batch_size: int) -> int:
    """F:83-86 with ``drop_last=True``: ``floor(N_train / batch)`` batches an epoch."""
    return num_train_images // batch_size


def reinit_after(e_id: int, num_epoch: int, cyclic_num: int) -> bool:
    """F:229-231: after epoch ``e_id`` (its training, F:215, and its test, F:218-219), re-draw the fc when
    ``(e_id + 1) % (num_epoch // cyclic_num) == 0``, unless ``e_id > num_epoch - 5``."""
    return (e_id + 1) % (num_epoch // cyclic_num) == 0 and not e_id > num_epoch - 5


def redraw_fc(shapes: dict[str, tuple], rng) -> dict[str, np.ndarray]:
    """F:232-238: every parameter with 'fc' in its name (weight ``[in, C]``, then bias ``[C]``, the order
    ``all_parameters()`` lists them) from ``np.random.normal(0, sqrt(2 / shape[0]), shape)``, as float32."""
    return {name: np.array(rng.normal(0, np.sqrt(2 / shape[0]), shape), dtype=np.float32)
            for name, shape in shapes.items()}


def initial_fc_bound(fan_in: int) -> float:
    """M:84-89: the fc weight starts ``Uniform(-stdv, stdv)``, ``stdv = 1 / sqrt(fan_in)``; its bias has no
    initializer, so fluid's default, 0."""
    return 1.0 / math.sqrt(fan_in * 1.0)


def loads(name: str, trainable: bool, exists: bool = True) -> bool:
    """F:141-150: the pretrained predicate. Not 'fc', and only variables that exist in the pretrained directory and
    are trainable: batch-norm moving mean/variance (not trainable) keep their initial 0 and 1."""
    if 'fc' in name:  # F:143
        return False
    return exists and trainable  # F:148


def momentum_step(param: np.ndarray, grad: np.ndarray, velocity: np.ndarray, lr: float, momentum: float = 0.9,
                  wd: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """F:118-123: ``fluid.optimizer.Momentum(momentum=0.9, regularization=L2Decay(wd))``. The regularizer adds
    ``wd * param`` to the gradient of every parameter before the momentum op; the op is
    ``velocity = momentum * velocity + grad``, ``param -= lr * velocity`` (no Nesterov)."""
    grad = grad + wd * param
    velocity = momentum * velocity + grad
    return param - lr * velocity, velocity


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """F:103-104: ``mean(cross_entropy(softmax(logits), label))``."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return float(-np.log(p[np.arange(len(labels)), labels]).mean())


def tests_after(e_id: int, num_epoch: int) -> bool:
    """F:218: test when ``e_id % max(num_epoch // 10, 1) == 0`` or after the last epoch."""
    return e_id % max(num_epoch // 10, 1) == 0 or e_id == num_epoch - 1


#: A:14-30, the defaults the README's commands keep (README:32-33 set only dataset, epochs, batch, fc_reinit,
#: cyclic_num); the momentum is F:121
DEFAULTS = {"batch_size": 32, "test_batch_size": 100, "wd_rate": 1e-4, "num_epoch": 40, "lr_init": 0.01,
            "cyclic_num": 2, "momentum": 0.9}


# ------------------------------------------------------------------------------------------------ the loop
def fine_tune(network, pretrained: dict, initial_fc: dict, dataset_dir: str, rng, shuffler, *, num_epoch: int,
              cyclic_num: int, batch_size: int = 32, lr_init: float = 0.01, wd_rate: float = 1e-4,
              target_size: int = 256, crop_size: int = 224, fc_reinit: bool = True, feed=None):
    """F:48-239 with ``--fc_reinit 1``: one generator of events, so a test can compare each with our engine's.

    ``network`` is a Paddle dygraph network with ``fc.*`` parameters standing in for M:30-111 (the network's
    arithmetic is Paddle's in both, and is not what this oracle checks); ``pretrained`` a state dict; ``initial_fc``
    the fc's initial values (M:84-89 draws them with Paddle's own initializer, not NumPy's, so the caller passes
    them and this checks they are in M:84's range). Events: ``("init", state)``, ``("step", paths, labels, images,
    lr)`` per batch and ``("epoch", e_id, state)`` after each epoch's training (before F:229's re-draw).
    ``feed(images)``, if given, returns the array the network is fed instead of ``images`` (a test compares the
    two and feeds the engine's, equal to float32 rounding, so that rounding cannot grow into the weights).
    """
    import paddle
    import paddle.nn.functional as F

    train_config = ReaderConfig(dataset_dir, False, rng, target_size, crop_size)  # F:80
    test_config = ReaderConfig(dataset_dir, True, rng, target_size, crop_size)  # F:89: reader_config rebound
    stair = step_each_epoch(len(test_config.image_paths), batch_size)  # F:117 (after F:89)

    # F:127-129: trainable variables (Paddle keeps batch-norm moving statistics as non-trainable parameters)
    params = {name: p for name, p in network.named_parameters() if p.trainable}
    state = network.state_dict()
    for name, value in pretrained.items():  # F:150 with the predicate F:141-148
        if name in state and loads(name, trainable=name in params):
            state[name].set_value(value)
    for name, value in initial_fc.items():  # M:84-89
        assert 'fc' in name
        if name.endswith('bias'):
            assert not np.any(value), "fluid.layers.fc's bias starts at 0"
        else:
            assert np.abs(value).max() <= initial_fc_bound(value.shape[0]), name
        state[name].set_value(value)
    yield ("init", {k: v.numpy().copy() for k, v in network.state_dict().items()})

    velocity = {name: np.zeros(p.shape, np.float32) for name, p in params.items()}
    global_step = 0
    network.train()
    for e_id in range(num_epoch):  # F:214
        batches = batch(shuffle(train_config.reader(), batch_size, shuffler), batch_size, drop_last=True)  # F:83-86
        for data in batches:  # F:174
            images = np.concatenate([d[0] for d in data])  # DataFeeder: [N, 3, h, w]
            labels = np.array([d[1] for d in data])
            lr = cosine_decay(lr_init, global_step, stair, num_epoch)  # F:120
            logits = network(paddle.to_tensor(images if feed is None else feed(images)))
            out = F.softmax(logits)  # F:103
            picked = paddle.take_along_axis(out, paddle.to_tensor(labels.reshape(-1, 1)), axis=1)
            cost = paddle.mean(-paddle.log(picked))  # F:104
            cost.backward()
            with paddle.no_grad():
                for name, p in params.items():  # F:118-123, every trainable parameter
                    new, velocity[name] = momentum_step(p.numpy(), p.grad.numpy(), velocity[name], lr,
                                                        DEFAULTS["momentum"], wd_rate)
                    p.set_value(new.astype(np.float32))
                    p.clear_gradient()
            yield ("step", [d[2] for d in data], labels, images, lr)
            global_step += 1
        yield ("epoch", e_id, {k: v.numpy().copy() for k, v in network.state_dict().items()})
        if fc_reinit and reinit_after(e_id, num_epoch, cyclic_num):  # F:229-231
            fc = {name: tuple(p.shape) for name, p in params.items() if 'fc' in name}  # F:232-233
            for name, value in redraw_fc(fc, rng).items():  # F:236-238
                params[name].set_value(value)
