"""VGG-19 feature extractor for ESRGAN's perceptual loss (sec 3.3), usable without any download.

The module reproduces torchvision's ``vgg19().features`` layer indices, so a torchvision state dict
(``features.N.weight`` / ``features.N.bias``) loads into it unchanged; the classifier is not built.
Weights come from a local file when the user gives one (safetensors, or a torchvision ``.pth`` read with
``torch.load(weights_only=True)``); otherwise the network is randomly initialised with a fixed seed.
Random-weight VGG features still make a usable perceptual loss for super-resolution (deep random conv
features capture local structure), and they keep the package free of an ImageNet download. The chosen
source is returned as a string for the run metadata.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from srpsa.errors import InputError

__all__ = ["VGG19Features", "build_vgg19_features", "load_vgg19_weights", "random_init_vgg19", "vgg19_layer_names"]

# VGG-19 ("configuration E", Simonyan & Zisserman 2015): conv widths per block, 'M' = 2x2 max-pool.
_CFG: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M",
                         512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]  # fmt: skip


def vgg19_layer_names() -> list[str]:
    """Names of ``features`` in order: ``conv1_1, relu1_1, ..., conv5_4, relu5_4, pool5``.

    The list index of a name is its index in torchvision's ``vgg19().features``.
    """
    names: list[str] = []
    block, conv = 1, 1
    for item in _CFG:
        if item == "M":
            names.append(f"pool{block}")
            block, conv = block + 1, 1
        else:
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
            conv += 1
    return names


class VGG19Features(nn.Module):
    """``vgg19().features`` truncated after ``last_layer``.

    Parameters
    ----------
    last_layer : str
        Name of the last layer kept (see :func:`vgg19_layer_names`). ``"conv5_4"`` (default) gives
        ESRGAN's pre-activation conv5_4 features and drops relu5_4 and pool5, which the loss never needs.

    Notes
    -----
    The input is (B, 3, H, W), already normalised as the weights expect. Use
    :class:`srpsa.losses.perceptual.PerceptualLoss` for grayscale replication and ImageNet normalisation.
    """

    def __init__(self, last_layer: str = "conv5_4") -> None:
        super().__init__()
        names = vgg19_layer_names()
        if last_layer not in names:
            raise ValueError(f"unknown VGG-19 layer {last_layer!r}; choose one of {', '.join(names)}")
        self.last_layer = last_layer
        n_keep = names.index(last_layer) + 1
        layers: list[nn.Module] = []
        cin = 3
        for item in _CFG:  # build only what is kept (conv5_4 spares pool5; early layers spare much more)
            if len(layers) >= n_keep:
                break
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, int(item), 3, 1, 1), nn.ReLU()]
                cin = int(item)
        self.features = nn.Sequential(*layers[:n_keep])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def random_init_vgg19(model: VGG19Features, seed: int = 0) -> None:
    """Initialise ``model`` in place as torchvision does (Kaiming normal, fan_out), from ``seed`` only."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                nn.init.zeros_(m.bias)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"VGG-19 weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except InputError:
        raise
    except Exception as exc:  # corrupted or foreign file: report it in one line
        raise InputError(f"cannot read VGG-19 weights {path}: {exc}") from exc
    if not isinstance(state, dict):
        raise InputError(f"VGG-19 weights {path} do not hold a state dict")
    return state


def load_vgg19_weights(model: VGG19Features, path: str | Path) -> str:
    """Load torchvision-keyed weights (``features.N.weight/bias``) into ``model``; return the file's SHA-256.

    Keys of layers past ``model.last_layer`` and the ``classifier.*`` keys are ignored, so a full
    torchvision checkpoint works. Missing keys or wrong shapes raise :class:`srpsa.errors.InputError`.
    """
    path = Path(path)
    state = _read_state_dict(path)
    wanted = model.state_dict()
    picked: dict[str, torch.Tensor] = {}
    for key, ref in wanted.items():
        if key not in state:
            raise InputError(f"VGG-19 weights {path} lack {key!r} (expected torchvision key names)")
        if tuple(state[key].shape) != tuple(ref.shape):
            raise InputError(f"VGG-19 weights {path}: {key!r} has shape {tuple(state[key].shape)}, "
                             f"expected {tuple(ref.shape)}")  # fmt: skip
        picked[key] = state[key].to(ref.dtype)
    model.load_state_dict(picked)
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_vgg19_features(
    weights: str | Path | None = None, last_layer: str = "conv5_4", seed: int = 0
) -> tuple[VGG19Features, str]:
    """Build a frozen, eval-mode extractor and say where its weights came from.

    Parameters
    ----------
    weights : path or None
        Local VGG-19 weights (``.safetensors`` or torchvision ``.pth``); ``None`` or ``""`` = random.
    last_layer : str
        Last layer kept (default ``"conv5_4"``, before its ReLU).
    seed : int
        Seed of the random initialisation (used only without ``weights``).

    Returns
    -------
    model : VGG19Features
        Parameters have ``requires_grad=False``.
    source : str
        ``"pretrained:<file name>:sha256=<first 16 hex>"`` or ``"random:seed=<seed>"``, for run metadata.
    """
    model = VGG19Features(last_layer)
    if weights:
        sha = load_vgg19_weights(model, weights)
        source = f"pretrained:{Path(weights).name}:sha256={sha[:16]}"
    else:
        random_init_vgg19(model, seed)
        source = f"random:seed={seed}"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, source
