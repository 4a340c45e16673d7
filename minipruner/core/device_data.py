"""An image training set kept on the device, augmented and shuffled there in batch.

The CPU path (:func:`minipruner.core.train.batches` over a torchvision dataset) decodes, pads,
crops, flips and normalises one image at a time in the training process; on a fast GPU that,
not the network, sets the pace of a CIFAR-10 epoch. :class:`DeviceDataset` instead holds the
whole set on the device as one ``uint8`` tensor ``(N, C, H, W)`` with its labels and does, per
mini-batch of ``B`` examples, with a handful of tensor operations:

1. pad every image with ``p`` zero pixels on each side (``(H + 2p) x (W + 2p)``);
2. crop ``H x W`` at the offset ``(dy, dx)``, each drawn uniformly from ``{0, ..., 2p}``, so
   ``crop[c, i, j] = padded[c, dy + i, dx + j]`` (``(2p + 1)^2`` offsets, 81 for ``p = 4``);
3. flip the crop horizontally, ``out[c, i, j] = crop[c, i, W - 1 - j]``, when the example's
   Bernoulli(1/2) draw is 1;
4. normalise per channel, ``(out / 255 - mean[c]) / std[c]``, in float32.

This is the augmentation of the CPU path (torchvision's ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``): the padding is black
before normalisation in both. The two paths draw their random numbers differently, so they
give different (equally distributed) augmentations for the same seed.

All random numbers come from a ``torch.Generator`` passed in (its own device, the CPU for a
CPU generator), so a seed fixes every batch and the draws do not depend on the device the
data lives on. One epoch draws, in this order, a permutation of the ``N`` examples
(``torch.randperm``), then ``N`` crop offsets ``(dy, dx)`` and ``N`` flips for the positions
of that order (:func:`draw_crop_flip`); it yields ``ceil(N / B)`` batches that visit every
example exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset, Subset, TensorDataset

PADDING = 4
"""Zero padding of the paper's random crop (CIFAR-10: 32 x 32 crops of 40 x 40 images)."""


@dataclass(frozen=True)
class CropFlip:
    """Per-example augmentation draws: crop offsets ``dy``, ``dx`` in ``{0, ..., 2p}`` and
    ``flip`` (bool, True = mirror horizontally), each a tensor of shape ``(B,)``."""

    dy: Tensor
    dx: Tensor
    flip: Tensor

    def to(self, device: torch.device | str) -> CropFlip:
        """The same draws on ``device``."""
        return CropFlip(self.dy.to(device), self.dx.to(device), self.flip.to(device))

    def __getitem__(self, index: slice | Tensor) -> CropFlip:
        """The draws of the examples at ``index``."""
        return CropFlip(self.dy[index], self.dx[index], self.flip[index])


def draw_crop_flip(n: int, generator: torch.Generator, padding: int = PADDING) -> CropFlip:
    """Draw ``n`` independent crop offsets and flips from ``generator``, on its device.

    ``dy`` and ``dx`` are uniform on ``{0, ..., 2 * padding}`` (``torch.randint``, ``dy``
    first) and ``flip`` is Bernoulli(1/2) (``torch.randint(0, 2)``, drawn after both)."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    device = generator.device
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator, device=device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return CropFlip(offsets[0], offsets[1], flip)


def crop_flip(x: Tensor, draws: CropFlip, padding: int = PADDING) -> Tensor:
    """Crop and flip a batch ``x`` of shape ``(B, C, H, W)`` (any dtype) as ``draws`` say.

    With ``padded`` = ``x`` zero-padded by ``padding`` pixels on each side, returns ``out``
    of ``x``'s shape and dtype with
    ``out[b, c, i, j] = padded[b, c, dy[b] + i, dx[b] + j]`` when ``flip[b]`` is False and
    ``out[b, c, i, j] = padded[b, c, dy[b] + i, dx[b] + W - 1 - j]`` when it is True: the
    ``H x W`` window at offset ``(dy, dx)``, mirrored left-right when flipped. One gather
    for the whole batch."""
    if x.dim() != 4:
        raise ValueError(f"expected a batch (B, C, H, W), got shape {tuple(x.shape)}")
    b, c, h, w = x.shape
    if not len(draws.dy) == len(draws.dx) == len(draws.flip) == b:
        raise ValueError(f"need one draw per example ({b}), got {len(draws.dy)}")
    draws = draws.to(x.device)
    padded = F.pad(x, (padding, padding, padding, padding)) if padding else x
    rows = draws.dy[:, None] + torch.arange(h, device=x.device)  # (B, H)
    j = torch.arange(w, device=x.device)
    cols = draws.dx[:, None] + torch.where(draws.flip[:, None], w - 1 - j, j)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


def random_crop_flip(x: Tensor, generator: torch.Generator, padding: int = PADDING) -> Tensor:
    """``crop_flip(x, draw_crop_flip(len(x), generator, padding), padding)``: every image
    of ``x`` (``(B, C, H, W)``, e.g. uint8) cropped at a uniform random offset of its
    zero-padded copy and flipped with probability 1/2, independently per image."""
    return crop_flip(x, draw_crop_flip(len(x), generator, padding), padding)


def normalise(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """``(x / 255 - mean[c]) / std[c]`` per channel, in float32: torchvision's
    ``ToTensor()`` (``x.float().div(255)``) then ``Normalize(mean, std)``, the same
    operations in the same order. ``x``: uint8 ``(B, C, H, W)``; ``mean``, ``std``: ``(C,)``."""
    return (x.float().div(255) - mean[:, None, None]) / std[:, None, None]


class DeviceDataset:
    """A labelled image set held on one device; batches are augmented there.

    ``images``: ``(N, C, H, W)`` uint8 pixels (then ``mean`` and ``std``, shape ``(C,)``,
    normalise every batch, see :func:`normalise`), or float32 inputs already normalised
    (then ``mean`` and ``std`` are None and augmentation is refused: zero padding would not
    be black). ``labels``: ``(N,)`` int64. ``augment``: whether the source dataset's own
    transform augments (its CPU path crops and flips), which :func:`minipruner.core.train.train`
    follows; ``padding`` is the crop's zero padding."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Tensor | None = None,
        std: Tensor | None = None,
        augment: bool = False,
        padding: int = PADDING,
    ) -> None:
        if images.dim() != 4 or len(images) != len(labels):
            raise ValueError(
                f"need images (N, C, H, W) and N labels, got {tuple(images.shape)} and "
                f"{tuple(labels.shape)}"
            )
        if images.dtype == torch.uint8:
            if mean is None or std is None:
                raise ValueError("uint8 images need the normalisation's mean and std")
            if mean.shape != (images.shape[1],) or std.shape != (images.shape[1],):
                raise ValueError(f"mean and std need one value per channel ({images.shape[1]})")
        elif mean is not None or std is not None:
            raise ValueError("mean and std only apply to uint8 images")
        if augment and images.dtype != torch.uint8:
            raise ValueError("augmentation needs uint8 pixels (the padding must be black)")
        self.images = images
        self.labels = labels.long().to(images.device)
        self.mean = None if mean is None else mean.to(images.device, torch.float32)
        self.std = None if std is None else std.to(images.device, torch.float32)
        self.augment = augment
        self.padding = padding

    @classmethod
    def from_dataset(
        cls,
        data: Dataset,
        device: torch.device | str,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> DeviceDataset:
        """Copy ``data`` to ``device`` once.

        ``data`` is a torchvision image dataset (``.data`` uint8 ``(N, H, W, C)`` or
        ``(N, H, W)``, ``.targets``), a ``Subset`` of one, or a ``TensorDataset`` (uint8
        ``(N, C, H, W)`` pixels, or float inputs used as they are). ``mean`` and ``std``
        default to those of the ``Normalize`` in the dataset's transform, and ``augment`` is
        True when that transform contains a random crop or flip; the device path then
        applies the paper's crop (``padding`` 4) and flip, whatever the transform's
        parameters. The source dataset is not changed."""
        images, labels, transform = _pixels(data)
        steps = list(getattr(transform, "transforms", [transform] if transform else []))
        names = {type(t).__name__ for t in steps}
        if mean is None and std is None and images.dtype == torch.uint8:
            found = [t for t in steps if type(t).__name__ == "Normalize"]
            if not found:
                raise ValueError("the dataset's transform has no Normalize: pass mean and std")
            mean, std = found[0].mean, found[0].std
        augment = bool(names & {"RandomCrop", "RandomHorizontalFlip"})
        device = torch.device(device)
        return cls(
            images.to(device),
            labels.to(device),
            None if mean is None else torch.tensor(mean),
            None if std is None else torch.tensor(std),
            augment=augment,
        )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        """The device holding the images."""
        return self.images.device

    def inputs(self, index: Tensor, draws: CropFlip | None = None) -> Tensor:
        """The network inputs of the examples at ``index``: cropped and flipped as
        ``draws`` say (none: as stored), then normalised (uint8 images), in float32."""
        x = self.images[index]
        if draws is not None:
            if x.dtype != torch.uint8:
                raise ValueError("augmentation needs uint8 pixels (the padding must be black)")
            x = crop_flip(x, draws, self.padding)
        if self.mean is not None and self.std is not None:
            return normalise(x, self.mean, self.std)
        return x

    def epoch_batches(
        self, batch_size: int, generator: torch.Generator, augment: bool = True
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """One shuffled, augmented epoch: ``(x, y)`` batches on :attr:`device`.

        Draws ``order = randperm(N)`` from ``generator``, then (if ``augment``)
        ``draw_crop_flip(N, generator, padding)``; batch ``k`` holds the examples
        ``order[k*B : (k+1)*B]`` (the last one may be smaller), example ``order[i]`` cropped
        and flipped by draw ``i``. Every example appears exactly once per epoch."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        n = len(self)
        order = torch.randperm(n, generator=generator, device=generator.device)
        draws = draw_crop_flip(n, generator, self.padding).to(self.device) if augment else None
        order = order.to(self.device)
        for k in range(math.ceil(n / batch_size)):
            part = slice(k * batch_size, (k + 1) * batch_size)
            index = order[part]
            yield self.inputs(index, None if draws is None else draws[part]), self.labels[index]

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``(x, y)`` batches in storage order, not augmented (for evaluation)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        for start in range(0, len(self), batch_size):
            index = torch.arange(start, min(start + batch_size, len(self)), device=self.device)
            yield self.inputs(index), self.labels[index]


def on_device(data: Dataset | DeviceDataset, device: torch.device | str) -> DeviceDataset:
    """``data`` as a :class:`DeviceDataset` on ``device``: moved if it is one already, else
    copied with :meth:`DeviceDataset.from_dataset`."""
    device = torch.device(device)
    if not isinstance(data, DeviceDataset):
        return DeviceDataset.from_dataset(data, device)
    if data.device == device:
        return data
    return DeviceDataset(
        data.images.to(device),
        data.labels.to(device),
        data.mean,
        data.std,
        augment=data.augment,
        padding=data.padding,
    )


def _pixels(data: Dataset) -> tuple[Tensor, Tensor, object]:
    """``(images (N, C, H, W), labels (N,) int64, transform or None)`` of ``data`` on the CPU,
    images as stored (uint8 pixels of a torchvision dataset)."""
    if isinstance(data, Subset):
        images, labels, transform = _pixels(data.dataset)
        index = torch.as_tensor(data.indices, dtype=torch.long)
        return images[index], labels[index], transform
    if isinstance(data, TensorDataset):
        return data.tensors[0], data.tensors[1].long(), None
    if hasattr(data, "data") and hasattr(data, "targets"):
        pixels = data.data
        images = torch.from_numpy(pixels) if isinstance(pixels, np.ndarray) else pixels
        if images.dim() == 3:  # (N, H, W): one channel
            images = images.unsqueeze(1)
        elif images.dim() == 4:  # (N, H, W, C), as torchvision's CIFAR stores it
            images = images.permute(0, 3, 1, 2)
        else:
            raise ValueError(f"cannot read images of shape {tuple(images.shape)}")
        labels = torch.as_tensor(data.targets, dtype=torch.long)
        return images.contiguous(), labels, getattr(data, "transform", None)
    raise TypeError(
        f"cannot copy a {type(data).__name__} to the device: need a torchvision image "
        "dataset (.data, .targets), a Subset of one, or a TensorDataset"
    )
