"""Noise schedules and the two samplers of the diffusion family, following diffusers' scheduler contract:
`set_timesteps(n)`, the `.timesteps` tensor, and `step(model_output, t, sample, generator=...)` returning an
object with `.prev_sample`. A sampler holds the schedule, never weights.

- `beta_schedule`: "linear" (Ho et al. 2020: beta from 1e-4 to 0.02) or "cosine" (Nichol & Dhariwal 2021,
  eq. 17, betas clipped at 0.999) — the same float32 arithmetic as diffusers' "linear" and
  "squaredcos_cap_v2", so the samplers below reproduce diffusers' DDIMScheduler exactly
  (tests/models/test_diffusion.py).
- `DDPMSampler`: ancestral sampling, eq. (6)-(7) of Ho et al. 2020, on any sub-sequence of timesteps.
- `DDIMSampler`: Song et al. 2021, eq. (12); eta = 0 is deterministic.
Both accept "epsilon" and "v_prediction" model outputs (v = sqrt(a) eps - sqrt(1 - a) x0, Salimans & Ho 2022).
Timesteps are spaced "leading" (diffusers' default): t = i * (T // n), i = n-1 … 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

Prediction = Literal["epsilon", "v_prediction"]


def beta_schedule(kind: Literal["linear", "cosine"], num_train_timesteps: int) -> torch.Tensor:
    """(T,) float32 betas."""
    if kind == "linear":
        scale = 1000 / num_train_timesteps  # keeps the schedule's ends when T differs from 1000
        return torch.linspace(scale * 1e-4, scale * 0.02, num_train_timesteps, dtype=torch.float32)

    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    betas = [
        min(1 - alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps), 0.999)
        for i in range(num_train_timesteps)
    ]
    return torch.tensor(betas, dtype=torch.float32)


@dataclass
class SamplerOutput:
    prev_sample: torch.Tensor  # x_{t-1} (or x at the previous chosen timestep)
    pred_original_sample: torch.Tensor  # the model's estimate of x0 at this step


class _Sampler:
    """The schedule, the chosen timesteps, and the x0 / eps conversions both samplers share."""

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: Literal["linear", "cosine"] = "linear",
        prediction_type: Prediction = "epsilon",
        clip_sample: bool = False,
    ) -> None:
        self.num_train_timesteps = num_train_timesteps
        self.betas = beta_schedule(schedule, num_train_timesteps)
        self.alphas_cumprod = torch.cumprod(1.0 - self.betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0)  # "set_alpha_to_one": the step past t = 0 is clean
        self.prediction_type = prediction_type
        self.clip_sample = clip_sample
        self.num_inference_steps = num_train_timesteps
        self.timesteps = torch.arange(num_train_timesteps - 1, -1, -1)

    def set_timesteps(self, num_inference_steps: int) -> None:
        """Choose `num_inference_steps` evenly spaced ("leading") timesteps, largest first."""
        if not 0 < num_inference_steps <= self.num_train_timesteps:
            raise ValueError(f"steps must be between 1 and {self.num_train_timesteps}, got {num_inference_steps}")
        self.num_inference_steps = num_inference_steps
        ratio = self.num_train_timesteps // num_inference_steps
        self.timesteps = (torch.arange(num_inference_steps) * ratio).flip(0)  # e.g. 980, 960, ..., 0

    def _alphas(self, t: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        prev_t = t - self.num_train_timesteps // self.num_inference_steps
        a_t = self.alphas_cumprod[t]
        a_prev = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        return a_t, a_prev, prev_t

    def _x0_eps(
        self, model_output: torch.Tensor, sample: torch.Tensor, a_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted x0, predicted eps) from the model output at a timestep with alpha_bar a_t."""
        b_t = 1 - a_t
        if self.prediction_type == "epsilon":
            x0 = (sample - b_t**0.5 * model_output) / a_t**0.5  # eq. (15), Ho et al. 2020
            eps = model_output
        else:
            x0 = a_t**0.5 * sample - b_t**0.5 * model_output  # v-prediction, Salimans & Ho 2022
            eps = a_t**0.5 * model_output + b_t**0.5 * sample
        if self.clip_sample:
            x0 = x0.clamp(-1, 1)
        return x0, eps


class DDIMSampler(_Sampler):
    """Denoising diffusion implicit models (Song et al. 2021).

    For eta = 0 (deterministic DDIM) `set_timesteps` computes every step's four coefficients at once, with
    the same float32 operations diffusers applies one 0-dim tensor at a time, so a step is five tensor
    operations on the sample and gives the same bits (tests/models/test_diffusion.py).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._coefficients: dict[int, tuple[float, float, float, float]] = {}  # per timestep (set_timesteps)

    def set_timesteps(self, num_inference_steps: int) -> None:
        super().set_timesteps(num_inference_steps)
        prev = self.timesteps - self.num_train_timesteps // num_inference_steps
        a_t = self.alphas_cumprod[self.timesteps]
        a_prev = torch.where(prev >= 0, self.alphas_cumprod[prev.clamp(min=0)], self.final_alpha_cumprod)
        columns = (a_t**0.5, (1 - a_t) ** 0.5, a_prev**0.5, (1 - a_prev) ** 0.5)  # float32, like diffusers
        self._coefficients = dict(
            zip(self.timesteps.tolist(), zip(*(c.tolist() for c in columns), strict=True), strict=True)
        )

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        eta: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> SamplerOutput:
        """x_t -> x_prev by eq. (12): sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma^2) eps + sigma z."""
        t = int(timestep)
        if eta == 0 and not self.clip_sample and t in self._coefficients:
            sqrt_a, sqrt_b, sqrt_a_prev, direction = self._coefficients[t]
            if self.prediction_type == "epsilon":
                x0 = (sample - sqrt_b * model_output) / sqrt_a
                eps = model_output
            else:
                x0 = sqrt_a * sample - sqrt_b * model_output
                eps = sqrt_a * model_output + sqrt_b * sample
            return SamplerOutput(sqrt_a_prev * x0 + direction * eps, x0)
        a_t, a_prev, _ = self._alphas(t)
        x0, eps = self._x0_eps(model_output, sample, a_t)
        variance = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)  # eq. (16)
        std = eta * variance**0.5
        prev = a_prev**0.5 * x0 + (1 - a_prev - std**2) ** 0.5 * eps
        if eta > 0:
            prev = prev + std * torch.randn(sample.shape, generator=generator, dtype=sample.dtype)
        return SamplerOutput(prev, x0)


class DDPMSampler(_Sampler):
    """Ancestral sampling from the learned reverse process (Ho et al. 2020)."""

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> SamplerOutput:
        """x_t -> x_prev ~ N(mu_tilde(x_t, x0), beta_tilde): eq. (6)-(7) of Ho et al. 2020."""
        t = int(timestep)
        a_t, a_prev, _ = self._alphas(t)
        alpha = a_t / a_prev  # the one-step alpha between the two chosen timesteps
        beta = 1 - alpha
        x0, _ = self._x0_eps(model_output, sample, a_t)
        mean = (a_prev**0.5 * beta / (1 - a_t)) * x0 + (alpha**0.5 * (1 - a_prev) / (1 - a_t)) * sample
        if t > 0:
            variance = ((1 - a_prev) / (1 - a_t) * beta).clamp(min=1e-20)  # beta_tilde
            mean = mean + variance**0.5 * torch.randn(sample.shape, generator=generator, dtype=sample.dtype)
        return SamplerOutput(mean, x0)


SAMPLERS: dict[str, type[DDIMSampler] | type[DDPMSampler]] = {"ddim": DDIMSampler, "ddpm": DDPMSampler}
