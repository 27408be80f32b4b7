"""Independent Python reference of the image losses (docs/method.md step 8; ts/losses.ts states
the definitions): MSE, SSIM (11×11 Gaussian σ 1.5, valid, C1 = (0.01·2)², C2 = (0.03·2)²), the
image-gradient L1, and the weight-free perceptual substitute (1 − SSIM) + gradient L1."""
import torch
import torch.nn.functional as F


def gaussian_window(channels, dtype):
    x = torch.arange(11, dtype=torch.float64) - 5
    g = torch.exp(-(x ** 2) / (2 * 1.5 ** 2))
    g = g / g.sum()
    return torch.outer(g, g).to(dtype).expand(channels, 1, 11, 11).contiguous()


def image_losses(a, b):
    c = a.shape[1]
    w = gaussian_window(c, a.dtype)
    blur = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731
    c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
    mx, my = blur(a), blur(b)
    sxx, syy, sxy = blur(a * a) - mx * mx, blur(b * b) - my * my, blur(a * b) - mx * my
    ssim_map = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    per = lambda t: t.flatten(1).mean(1)  # noqa: E731
    gx = lambda t: t[:, :, :, 1:] - t[:, :, :, :-1]  # noqa: E731
    gy = lambda t: t[:, :, 1:, :] - t[:, :, :-1, :]  # noqa: E731
    grad = 0.5 * (per((gx(a) - gx(b)).abs()) + per((gy(a) - gy(b)).abs()))
    ssim = per(ssim_map)
    return {"mse": per((a - b) ** 2), "ssim": ssim, "gradL1": grad, "perceptual": (1 - ssim) + grad}
