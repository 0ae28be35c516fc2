"""Losses of the GANs against hand-computed values; the VGG-19 perceptual extractor and its weights."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from srpsa.errors import InputError
from srpsa.losses import (
    ESRGANGeneratorLoss,
    GANLoss,
    PerceptualLoss,
    Pix2PixGeneratorLoss,
    PixelLoss,
    RelativisticAverageLoss,
    pix2pix_discriminator_loss,
    rmse_loss,
)
from srpsa.models.vgg import VGG19Features, build_vgg19_features, random_init_vgg19, vgg19_layer_names


pytestmark = pytest.mark.usefixtures("torch_one_thread")

def _bce(z: float, t: float) -> float:
    """Binary cross-entropy of logit ``z`` against target ``t``, written out."""
    s = 1.0 / (1.0 + math.exp(-z))
    return -(t * math.log(s) + (1 - t) * math.log(1 - s))


# ------------------------------------------------------------------------------------------- pixel
def test_rmse_is_eq1_per_image_then_mean() -> None:
    target = torch.zeros(2, 1, 2, 2)
    pred = torch.tensor([[[[1.0, 1.0], [1.0, 1.0]]], [[[0.0, 2.0], [2.0, 0.0]]]])
    # image 1: sqrt(mean(1)) = 1; image 2: sqrt((4 + 4) / 4) = sqrt(2); batch mean (1 + sqrt 2) / 2
    assert float(rmse_loss(pred, target)) == pytest.approx((1 + math.sqrt(2)) / 2, abs=1e-6)
    # not the RMSE of the pooled batch, sqrt((4 + 8) / 8)
    assert float(rmse_loss(pred, target)) != pytest.approx(math.sqrt(12 / 8), abs=1e-3)
    assert float(PixelLoss("l1")(pred, target)) == pytest.approx(8 / 8)
    assert float(PixelLoss("l2")(pred, target)) == pytest.approx(12 / 8)
    with pytest.raises(ValueError):
        PixelLoss("ssim")


def test_rmse_gradient_is_finite_at_zero_error() -> None:
    pred = torch.rand(2, 1, 4, 4, requires_grad=True)
    loss = rmse_loss(pred, pred.detach().clone())
    assert float(loss.detach()) == pytest.approx(1e-4, abs=1e-6)  # sqrt(eps)
    loss.backward()
    assert torch.isfinite(pred.grad).all() and float(pred.grad.abs().max()) == 0.0
    p = pred.detach().clone().requires_grad_(True)
    rmse_loss(p, p.detach(), eps=0.0).backward()
    assert torch.isnan(p.grad).all()  # what the eps prevents


# --------------------------------------------------------------------------------------------- GAN
def test_vanilla_gan_loss_and_one_sided_label_smoothing() -> None:
    gan = GANLoss("vanilla", d_real_label=0.9)
    z = torch.tensor([2.0, -1.0])
    assert float(gan(z, True, is_disc=True)) == pytest.approx((_bce(2, 0.9) + _bce(-1, 0.9)) / 2, rel=1e-5)
    assert float(gan(z, False, is_disc=True)) == pytest.approx((_bce(2, 0) + _bce(-1, 0)) / 2, rel=1e-5)
    # the generator always aims at the unsmoothed real label
    assert float(gan(z, True, is_disc=False)) == pytest.approx((_bce(2, 1) + _bce(-1, 1)) / 2, rel=1e-5)
    assert gan.target_value(False, True) == 0.0  # fakes are never smoothed


def test_lsgan_and_hinge_losses() -> None:
    z = torch.tensor([2.0, -0.5])
    ls = GANLoss("lsgan", d_real_label=0.9)
    assert float(ls(z, True, is_disc=True)) == pytest.approx(((2 - 0.9) ** 2 + (-0.5 - 0.9) ** 2) / 2)
    assert float(ls(z, False, is_disc=True)) == pytest.approx((4 + 0.25) / 2)
    assert float(ls(z, True)) == pytest.approx((1 + 2.25) / 2)
    hinge = GANLoss("hinge", d_real_label=0.9)
    assert float(hinge(z, True, is_disc=True)) == pytest.approx((0 + 1.5) / 2)  # relu(1 - z)
    assert float(hinge(z, False, is_disc=True)) == pytest.approx((3 + 0.5) / 2)  # relu(1 + z)
    assert float(hinge(z, True)) == pytest.approx(-0.75)  # generator: -mean(z)
    with pytest.raises(ValueError):
        GANLoss("wgan")


def test_relativistic_average_loss_by_hand() -> None:
    real = torch.tensor([[1.0], [3.0]])
    fake = torch.tensor([[0.0], [-2.0]])
    # mean fake = -1, mean real = 2: relative real logits [2, 4], relative fake logits [-2, -4]
    ra = RelativisticAverageLoss()
    d = 0.5 * ((_bce(2, 1) + _bce(4, 1)) / 2 + (_bce(-2, 0) + _bce(-4, 0)) / 2)
    g = 0.5 * ((_bce(2, 0) + _bce(4, 0)) / 2 + (_bce(-2, 1) + _bce(-4, 1)) / 2)
    assert float(ra(real, fake, is_disc=True)) == pytest.approx(d, rel=1e-5)
    assert float(ra(real, fake, is_disc=False)) == pytest.approx(g, rel=1e-5)
    smooth = RelativisticAverageLoss(d_real_label=0.9)
    d_s = 0.5 * ((_bce(2, 0.9) + _bce(4, 0.9)) / 2 + (_bce(-2, 0) + _bce(-4, 0)) / 2)
    assert float(smooth(real, fake, is_disc=True)) == pytest.approx(d_s, rel=1e-5)
    assert float(smooth(real, fake, is_disc=False)) == pytest.approx(g, rel=1e-5)  # G unaffected


def test_pix2pix_objectives() -> None:
    gan = GANLoss("vanilla", d_real_label=0.9)
    logits = torch.tensor([[[[0.5]]]])
    fake, target = torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5)
    total, parts = Pix2PixGeneratorLoss(gan, "rmse", lambda_pixel=5.0)(logits, fake, target)
    assert float(parts["gan"]) == pytest.approx(_bce(0.5, 1.0), rel=1e-5)
    assert float(parts["pixel"]) == pytest.approx(0.5, abs=1e-6)
    assert float(total) == pytest.approx(_bce(0.5, 1.0) + 5 * 0.5, rel=1e-5)
    d = pix2pix_discriminator_loss(gan, torch.tensor([1.0]), torch.tensor([-1.0]))
    assert float(d) == pytest.approx(0.5 * (_bce(1, 0.9) + _bce(-1, 0)), rel=1e-5)


def test_esrgan_generator_objective_eq3() -> None:
    per = PerceptualLoss.build(layer="conv1_2", seed=0)
    loss = ESRGANGeneratorLoss(per)  # paper weights: lambda 0.05, eta 0.01
    assert (loss.lambda_gan, loss.eta_l1) == (0.05, 0.01)
    real_logits, fake_logits = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [-2.0]])
    fake = torch.rand(2, 1, 16, 16, requires_grad=True)
    target = torch.rand(2, 1, 16, 16)
    total, parts = loss(real_logits, fake_logits, fake, target)
    expected = parts["perceptual"] + 0.05 * parts["gan"] + 0.01 * parts["l1"]
    assert float(total.detach()) == pytest.approx(float(expected), rel=1e-6)
    assert float(parts["l1"]) == pytest.approx(float((fake - target).abs().mean().detach()), rel=1e-6)
    assert float(parts["gan"]) == pytest.approx(float(RelativisticAverageLoss()(real_logits, fake_logits, False)))
    total.backward()
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    assert all(p.grad is None for p in per.parameters())  # the VGG stays frozen


# -------------------------------------------------------------------------------------- perceptual
def test_vgg_layer_names_follow_torchvision_indices() -> None:
    names = vgg19_layer_names()
    assert len(names) == 37
    assert names[0] == "conv1_1" and names[4] == "pool1" and names[34] == "conv5_4" and names[36] == "pool5"
    m = VGG19Features("conv5_4")
    assert len(m.features) == 35  # truncated right after conv5_4: no relu5_4 / pool5
    convs = [k for k in m.state_dict() if k.endswith(".weight")]
    assert convs[0] == "features.0.weight" and convs[-1] == "features.34.weight" and len(convs) == 16
    with pytest.raises(ValueError):
        VGG19Features("conv6_1")


def test_random_perceptual_loss_is_seeded_and_documented() -> None:
    a = PerceptualLoss.build(layer="conv2_1", seed=3)
    b = PerceptualLoss.build(layer="conv2_1", seed=3)
    assert a.source == "random:seed=3" and not a.normalize
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb) and not pa.requires_grad
    x = torch.rand(1, 1, 16, 16)
    assert float(a(x, x)) == 0.0
    assert torch.allclose(a.features(x), a.features(x.expand(-1, 3, -1, -1)))  # gray -> 3 channels
    assert float(a(x, torch.rand(1, 1, 16, 16))) > 0.0


def test_vgg_loads_torchvision_state_dict(tmp_path: Path) -> None:
    src = VGG19Features("conv3_1")
    random_init_vgg19(src, seed=11)
    state = {k: v.clone() for k, v in src.state_dict().items()}
    assert set(state) == {f"features.{i}.{p}" for i in (0, 2, 5, 7, 10) for p in ("weight", "bias")}
    extra = {"classifier.0.weight": torch.zeros(4, 4), "features.34.weight": torch.zeros(2, 2, 3, 3)}
    save_file({**state, **extra}, str(tmp_path / "vgg19.safetensors"))
    torch.save({**state, **extra}, tmp_path / "vgg19.pth")
    for name in ("vgg19.safetensors", "vgg19.pth"):
        model, source = build_vgg19_features(tmp_path / name, last_layer="conv3_1", seed=0)
        assert source.startswith(f"pretrained:{name}:sha256=")
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k])
    loss = PerceptualLoss.build(tmp_path / "vgg19.safetensors", layer="conv3_1")
    assert loss.normalize  # ImageNet normalisation only for pretrained weights
    save_file({k: v for k, v in state.items() if k != "features.7.weight"}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(InputError, match="features.7.weight"):
        build_vgg19_features(tmp_path / "partial.safetensors", last_layer="conv3_1")
    with pytest.raises(InputError, match="not found"):
        build_vgg19_features(tmp_path / "missing.pth")
