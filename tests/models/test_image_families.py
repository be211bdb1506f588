"""Every image family on its debug preset: forward, finite loss, backward, a short sample of the right shape;
plus the family-specific exactness checks (flow inverse and log-det, PixelCNN causality, GAN's own step)."""

import dataclasses
import math

import pytest
import torch

from genloom.config import build
from genloom.data.images import ImageData, ImageDataConfig, load_images
from genloom.models import FAMILIES
from genloom.models.flow.model import Flow, FlowConfig, squeeze, unsqueeze
from genloom.models.pixelcnn.model import PixelCNN, PixelCNNConfig

IMAGE_FAMILIES = [name for name, fam in FAMILIES.items() if fam.modality == "image"]


@pytest.fixture(scope="module")
def digits() -> ImageData:
    return ImageData(load_images(ImageDataConfig(source="digits")))


def debug_model(name: str, **overrides):
    fam = FAMILIES[name]
    cfg = build(fam.config, fam.presets["debug"]["model"], "model")
    cfg = dataclasses.replace(cfg, channels=1, image_size=8, num_classes=10, **overrides)
    torch.manual_seed(0)
    return fam.model(cfg)


@pytest.mark.parametrize("name", IMAGE_FAMILIES)
def test_debug_smoke(name, digits):
    model = debug_model(name)
    batch = digits.get_batch("train", 8, torch.Generator().manual_seed(0))
    loss, terms = model.loss(batch)
    assert loss.dim() == 0 and math.isfinite(loss.item())
    assert all(math.isfinite(float(v)) for v in terms.values())
    if hasattr(model, "train_step"):
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        before = [p.detach().clone() for p in model.parameters()]
        g_loss, _ = model.train_step(batch, optimizer)
        assert math.isfinite(float(g_loss))
        moved = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
        assert any(moved[: len(list(model.generator.parameters()))])  # the generator learned
        assert any(moved[len(list(model.generator.parameters())) :])  # and so did the discriminator
    else:
        loss.backward()
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    kwargs = {"steps": 2} if name == "diffusion" else {}
    labels = torch.tensor([3, 7])
    images = model.sample(2, labels, generator=torch.Generator().manual_seed(0), **kwargs)
    assert images.shape == (2, 1, 8, 8)
    assert images.min() >= -1 and images.max() <= 1 and torch.isfinite(images).all()


@pytest.mark.parametrize("conditional", [False, True])
def test_flow_is_invertible(conditional):
    torch.manual_seed(0)
    flow = Flow(FlowConfig(channels=1, image_size=8, num_classes=3, conditional=conditional, steps=2, hidden=8))
    for p in flow.parameters():  # move away from the identity initialisation
        p.data += 0.05 * torch.randn_like(p)
    z = torch.randn(3, 1, 8, 8)
    labels = torch.tensor([0, 1, 2])
    latents, _ = flow.to_latents(z, labels)
    assert sum(u[0].numel() for u in latents) == 64  # a bijection keeps the dimension
    back = flow.from_latents(latents, labels)
    torch.testing.assert_close(back, z, atol=1e-4, rtol=1e-4)


def test_flow_log_det_matches_autograd_jacobian():
    torch.manual_seed(0)
    flow = Flow(FlowConfig(channels=1, image_size=4, num_classes=0, levels=2, steps=2, hidden=4)).double()
    for p in flow.parameters():
        p.data += 0.1 * torch.randn_like(p)
    z = torch.randn(1, 1, 4, 4, dtype=torch.float64)

    def flat(x):
        latents, _ = flow.to_latents(x.view(1, 1, 4, 4), None)
        return torch.cat([u.flatten() for u in latents])

    jacobian = torch.autograd.functional.jacobian(flat, z.flatten())  # (16, 16)
    _, logdet = flow.to_latents(z, None)
    assert torch.linalg.slogdet(jacobian)[1].item() == pytest.approx(logdet.item(), abs=1e-8)


def test_flow_variational_dequantizer_density_matches_torch_distributions():
    """log q(u | x) of the Flow++ dequantizer equals a logistic-normal's log density at the u it drew."""
    torch.manual_seed(0)
    flow = Flow(FlowConfig(channels=1, image_size=4, num_classes=0, steps=1, hidden=4, dequantization="variational"))
    for p in flow.dequantizer.parameters():  # away from the zero init, so mean and sigma vary per pixel
        p.data += 0.1 * torch.randn_like(p)
    x = torch.randint(0, 256, (3, 1, 4, 4)).float() / 127.5 - 1
    torch.manual_seed(1)
    u, log_q = flow.dequantizer(x)
    mean, log_sigma = flow.dequantizer.net(squeeze(x)).chunk(2, dim=1)
    q = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(unsqueeze(mean), unsqueeze(log_sigma).exp()),
        [torch.distributions.SigmoidTransform()],
    )
    assert ((u > 0) & (u < 1)).all()
    torch.testing.assert_close(log_q, q.log_prob(u).flatten(1).sum(1), atol=2e-3, rtol=1e-4)


def test_flow_variational_dequantization_tightens_the_bound_by_training():
    """A flow whose density is a narrow bump inside grey level 0: uniform u wastes most draws outside the
    bump; training only the dequantizer must move q(u | x) onto it and tighten the bound by bits."""
    torch.manual_seed(0)
    cfg = FlowConfig(channels=1, image_size=4, num_classes=0, steps=1, hidden=4, dequantization="variational")
    flow = Flow(cfg)
    p0 = 0.05 + 0.9 * (0.5 / 256)  # the middle of level 0 after the logit transform's squeeze
    z0, scale = math.log(p0 / (1 - p0)), 200.0
    first = flow.levels[0][0].actnorm  # latents = rotations of scale * (z - z0): a bump of std 1/scale at z0
    first.log_scale.data.fill_(math.log(scale))
    first.bias.data.fill_(-scale * z0)
    x = -torch.ones(32, 1, 4, 4)  # every pixel at level 0
    uniform = Flow(dataclasses.replace(cfg, dequantization="uniform"))
    uniform.load_state_dict(flow.state_dict(), strict=False)
    with torch.no_grad():
        before = uniform.bits_per_dim(x, None).mean().item()
    opt = torch.optim.Adam(flow.dequantizer.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        flow.bits_per_dim(x, None).mean().backward()
        opt.step()
    with torch.no_grad():
        after = flow.bits_per_dim(x, None).mean().item()
    assert after < before - 1.0


def test_pixelcnn_has_no_blind_spot_and_never_sees_the_future():
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(channels=1, image_size=9, num_classes=0, conditional=False, hidden=8, layers=3))
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    i, j = 6, 4
    x = torch.randn(1, 1, 9, 9, requires_grad=True)
    logits = model(x, None)  # (1, 256, 1, 9, 9)
    logits[0, :, 0, i, j].sum().backward()
    grad = x.grad[0, 0].abs()
    order = torch.arange(81).view(9, 9)
    future = order >= i * 9 + j  # the pixel itself and everything after it in raster order
    assert torch.all(grad[future] == 0)  # exactly zero: no information from the future
    assert grad[i, j - 1] > 0 and grad[i - 1, j] > 0
    assert grad[i - 1, j + 2] > 0 and grad[i - 2, j + 3] > 0  # above and to the right: where PixelCNN was blind


@pytest.mark.parametrize("channels", [1, 3])
def test_pixelcnn_pixel_by_pixel_logits_equal_the_full_forward(channels):
    """The sampler's incremental computation (each layer at the new pixel only, from its kept inputs) gives
    the logits of the full forward pass at every pixel, when the pixels are filled from a known image."""
    torch.manual_seed(0)
    cfg = PixelCNNConfig(channels=channels, image_size=7, num_classes=10, hidden=8, layers=2, kernel_size=5)
    model = PixelCNN(cfg)
    for p in model.parameters():
        p.data += 0.1 * torch.randn_like(p)
    target = torch.randint(0, 256, (3, channels, 7, 7)).float() / 127.5 - 1
    y = torch.tensor([1, 4, 9])
    seen = torch.zeros(3, 256, channels, 7, 7)

    def fill(i: int, j: int, logits: torch.Tensor) -> None:
        seen[:, :, :, i, j] = logits
        x[:, :, i, j] = target[:, :, i, j]

    x = torch.zeros_like(target)
    with torch.no_grad():
        model.raster_logits(x, y, fill)
        torch.testing.assert_close(seen, model(target, y), atol=1e-5, rtol=1e-5)


def test_pixelcnn_bits_per_dim_is_exact_log_likelihood(digits):
    model = debug_model("pixelcnn")
    x, y = digits.get_batch("test", 4, torch.Generator().manual_seed(1))
    logits = model(x, y).double().log_softmax(dim=1)  # (B, 256, C, H, W)
    levels = ((x + 1) * 127.5).round().long()
    log_p = logits.gather(1, levels[:, None]).flatten(1).sum(1)  # log p(x) = sum of the factors
    expected = -log_p / (64 * math.log(2))
    torch.testing.assert_close(model.bits_per_dim(x, y).double(), expected, atol=1e-4, rtol=1e-5)


def test_vae_elbo_is_a_bound_made_of_its_terms(digits):
    model = debug_model("vae")
    x, y = digits.get_batch("test", 16, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    rec, kl = model.elbo_terms(x, y)
    assert torch.all(kl >= 0) and torch.all(rec <= 0)
    torch.manual_seed(0)
    loss, terms = model.loss((x, y))
    assert float(loss) == pytest.approx(float(terms["reconstruction"] + terms["kl"]), rel=1e-5)


def test_gan_wgan_gp_step(digits):
    model = debug_model("gan", loss="wgan-gp")
    batch = digits.get_batch("train", 8, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g_loss, terms = model.train_step(batch, optimizer)
    assert math.isfinite(float(g_loss)) and math.isfinite(float(terms["d_loss"]))


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_gan_auxiliary_classifier(digits, loss):
    """AC-GAN: the critic's classifier learns from real images only, the generator from its CE on fakes."""
    x, y = digits.get_batch("train", 8, torch.Generator().manual_seed(0))
    plain, aux = debug_model("gan", loss=loss), debug_model("gan", loss=loss, aux_weight=2.0)
    assert plain.discriminator.classifier is None and aux.discriminator.classifier is not None
    aux.load_state_dict(plain.state_dict(), strict=False)  # same networks; aux adds the classifier
    fake = aux.generator(torch.randn(8, aux.config.latent_dim), y).detach()
    torch.manual_seed(1)
    d_plain = plain.discriminator_loss(x, fake, y)
    torch.manual_seed(1)  # the same gradient-penalty draws
    d_aux = aux.discriminator_loss(x, fake, y)
    ce_real = torch.nn.functional.cross_entropy(aux.discriminator.classifier(aux.discriminator.features(x)), y)
    torch.testing.assert_close(d_aux - d_plain, 2.0 * ce_real)
    g_gap = aux.generator_loss(fake, y) - plain.generator_loss(fake, y)
    ce_fake = torch.nn.functional.cross_entropy(aux.discriminator.classifier(aux.discriminator.features(fake)), y)
    torch.testing.assert_close(g_gap, 2.0 * ce_fake)
    before = aux.discriminator.classifier.weight.clone()
    aux.train_step((x, y), torch.optim.AdamW(aux.parameters(), lr=1e-2))
    assert not torch.equal(before, aux.discriminator.classifier.weight)
    with pytest.raises(ValueError, match="aux_weight"):
        debug_model("gan", aux_weight=-1.0)


def test_pixelcnn_samples_on_one_thread_and_gives_the_callers_threads_back():
    model = PixelCNN(PixelCNNConfig(channels=1, image_size=5, num_classes=0, conditional=False, hidden=8, layers=1))
    before = torch.get_num_threads()
    seen: list[int] = []
    real = model.raster_logits

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    model.raster_logits = spy  # type: ignore[method-assign]
    torch.set_num_threads(2)
    try:
        x = model.sample(3, generator=torch.Generator().manual_seed(0))
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert x.shape == (3, 1, 5, 5) and x.min() >= -1 and x.max() <= 1
