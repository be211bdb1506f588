"""Denoising diffusion (Ho et al. 2020) in pixel space with a U-Net, class conditioning and
classifier-free guidance (Ho & Salimans 2022).

Training (`loss`): draw t ~ U{0..T-1} and eps ~ N(0, I), form x_t = sqrt(a_t) x0 + sqrt(1 - a_t) eps
(a_t = alpha_bar_t) and regress the U-Net output on eps ("epsilon") or on v = sqrt(a_t) eps -
sqrt(1 - a_t) x0 ("v_prediction", Salimans & Ho 2022). Optional min-SNR-gamma weighting (Hang et al.
2023) caps the weight of low-noise steps. With `cond_drop_prob` > 0 the label is replaced by the "no class"
token that often, so one network learns both p(x | y) and p(x).

Sampling (`sample`): DDIM or DDPM steps (sampler.py); with guidance scale w the model output is
uncond + w (cond - uncond), both halves in one batched call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from genloom.models.diffusion.sampler import SAMPLERS, DDIMSampler, DDPMSampler, beta_schedule
from genloom.nn.unet import UNet


@dataclass
class DiffusionConfig:
    channels: int = 1  # image channels (set from the data)
    image_size: int = 28  # image side (set from the data; must divide by 2^(levels-1))
    num_classes: int = 10  # classes in the data (set from the data)
    conditional: bool = True  # class embedding in the U-Net (and classifier-free guidance)
    unet_channels: int = 32  # width of the U-Net's first level
    levels: int = 2  # resolution levels of the U-Net; the width doubles at each
    blocks_per_level: int = 1  # residual blocks per level on the way down
    patch_size: int = 1  # pixel patches folded into channels: 2 runs the U-Net at half resolution (unet.py)
    ema_decay: float | None = None  # keep an exponential moving average of the U-Net for sampling (0.999)
    dropout: float = 0.0  # inside residual blocks
    num_train_timesteps: int = 1000  # T
    schedule: Literal["linear", "cosine"] = "linear"  # beta schedule
    prediction: Literal["epsilon", "v_prediction"] = "epsilon"  # what the U-Net predicts
    min_snr_gamma: float | None = None  # min-SNR loss weighting (5 in the paper); None: plain MSE
    cond_drop_prob: float = 0.1  # label dropout for classifier-free guidance (0: none)
    sampler: Literal["ddim", "ddpm"] = "ddim"  # default sampler of `sample`
    sample_steps: int = 50  # default number of sampling steps
    guidance_scale: float = 2.0  # default classifier-free guidance w (1: no guidance)

    def __post_init__(self) -> None:
        if self.levels < 1 or self.unet_channels <= 0 or self.blocks_per_level < 1:
            raise ValueError("levels, unet_channels and blocks_per_level must be positive")
        if self.patch_size < 1:
            raise ValueError(f"patch_size must be >= 1, got {self.patch_size}")
        side = self.patch_size * 2 ** (self.levels - 1)
        if self.image_size % side != 0:
            raise ValueError(f"image_size {self.image_size} must divide by patch_size * 2^(levels-1) = {side}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        if not 0 <= self.cond_drop_prob < 1:
            raise ValueError(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")
        if self.num_train_timesteps < 2:
            raise ValueError(f"num_train_timesteps must be >= 2, got {self.num_train_timesteps}")
        if self.conditional and self.num_classes <= 0:
            raise ValueError("conditional needs labelled data (num_classes > 0); set model.conditional=false")


class Diffusion(nn.Module):
    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.config = cfg
        self.unet = UNet(
            cfg.channels,
            cfg.unet_channels,
            tuple(2**i for i in range(cfg.levels)),
            cfg.blocks_per_level,
            cfg.num_classes if cfg.conditional else 0,
            cfg.dropout,
            cfg.patch_size,
        )
        # EMA of the U-Net's weights (sampling uses it): a frozen copy (requires_grad off, so the
        # optimizer never sees it), saved and restored with the run like any other weight
        self.ema_unet: UNet | None = None
        if cfg.ema_decay is not None:
            self.ema_unet = copy.deepcopy(self.unet).requires_grad_(False)
            self.ema_steps: torch.Tensor
            self.register_buffer("ema_steps", torch.zeros((), dtype=torch.long))
        alphas_cumprod = torch.cumprod(1 - beta_schedule(cfg.schedule, cfg.num_train_timesteps), dim=0)
        self.alphas_cumprod: torch.Tensor
        self.register_buffer("alphas_cumprod", alphas_cumprod, persistent=False)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.unet.parameters())

    @torch.no_grad()
    def after_optimizer_step(self) -> None:
        """EMA update, called by the training loop after each optimizer step. The decay ramps up as
        (1 + n) / (10 + n) to `ema_decay`, so the average does not start out dominated by the random
        initial weights (the warm-up of Tarvainen & Valpola's mean teacher and most diffusion code)."""
        if self.ema_unet is None or self.config.ema_decay is None:
            return
        self.ema_steps += 1
        n = float(self.ema_steps)
        decay = min(self.config.ema_decay, (1 + n) / (10 + n))
        ema: list[torch.Tensor] = list(self.ema_unet.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in self.unet.parameters()], 1 - decay)

    def _sampling_unet(self) -> UNet:
        return self.ema_unet if self.ema_unet is not None else self.unet

    def _null_label(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.config.num_classes, dtype=torch.long)

    def loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x0, labels = batch
        cfg = self.config
        B = len(x0)
        t = torch.randint(0, cfg.num_train_timesteps, (B,))
        eps = torch.randn_like(x0)
        a = self.alphas_cumprod[t][:, None, None, None]  # (B, 1, 1, 1)
        x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps  # q(x_t | x0), eq. (4)
        cond: torch.Tensor | None = None
        if cfg.conditional:
            drop = torch.rand(B) < cfg.cond_drop_prob
            cond = torch.where(drop, self._null_label(B), labels)
        target = eps if cfg.prediction == "epsilon" else a.sqrt() * eps - (1 - a).sqrt() * x0
        out = self.unet(x_t, t, cond)
        per_image = F.mse_loss(out.float(), target, reduction="none").flatten(1).mean(1)  # (B,)
        if cfg.min_snr_gamma is not None:
            snr = (a / (1 - a)).flatten()
            weight = snr.clamp(max=cfg.min_snr_gamma) / (snr if cfg.prediction == "epsilon" else snr + 1)
            per_image = per_image * weight
        loss = per_image.mean()
        return loss, {"mse": loss.detach()}

    def model_output(
        self, x: torch.Tensor, t: torch.Tensor | int, labels: torch.Tensor | None, guidance_scale: float
    ) -> torch.Tensor:
        """The U-Net output at x_t, with classifier-free guidance when conditional and w != 1."""
        B = len(x)
        t_batch = torch.full((B,), int(t), dtype=torch.long)
        unet = self._sampling_unet()
        if not self.config.conditional:
            return unet(x, t_batch, None)
        assert labels is not None
        if guidance_scale == 1.0:
            return unet(x, t_batch, labels)
        both = unet(torch.cat([x, x]), torch.cat([t_batch, t_batch]), torch.cat([labels, self._null_label(B)]))
        cond, uncond = both.chunk(2)
        return uncond + guidance_scale * (cond - uncond)  # eq. (6), Ho & Salimans 2022

    @torch.inference_mode()  # no autograd bookkeeping at all (no_grad still bumps version counters)
    def sample(
        self,
        n: int,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        sampler: Literal["ddim", "ddpm"] | None = None,
        callback: Callable[[int, torch.Tensor], None] | None = None,
    ) -> torch.Tensor:
        """n images (n, C, S, S) in [-1, 1]. `callback(i, x0_estimate)` sees every step (denoising strips)."""
        cfg = self.config
        scheduler: DDIMSampler | DDPMSampler = SAMPLERS[sampler or cfg.sampler](
            cfg.num_train_timesteps, cfg.schedule, cfg.prediction
        )
        scheduler.set_timesteps(steps or cfg.sample_steps)
        w = cfg.guidance_scale if guidance_scale is None else guidance_scale
        x = torch.randn(n, cfg.channels, cfg.image_size, cfg.image_size, generator=generator)
        for i, t in enumerate(scheduler.timesteps):
            out = scheduler.step(self.model_output(x, t, labels, w), t, x, generator=generator)
            x = out.prev_sample
            if callback is not None:
                callback(i, out.pred_original_sample)
        return x.clamp(-1, 1)
