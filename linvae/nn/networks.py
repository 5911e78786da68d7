"""Encoder/decoder networks: MLP, a small CNN and ResNet-18 for 28×28 images (no torchvision)."""
import torch
from torch import nn

__all__ = ["mlp", "CNNEncoder", "CNNDecoder", "ResNet18Encoder", "ResNet18Decoder", "build_encoder",
           "build_decoder"]


def mlp(in_dim, hidden, out_dim, depth=1):
    """``in → hidden (ReLU) × depth → out``; ``hidden=None`` or ``depth=0`` gives a single linear layer."""
    if not hidden or depth == 0:
        return nn.Linear(in_dim, out_dim)
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


class CNNEncoder(nn.Module):
    """``1×28×28 → conv(32, 4, s2) → conv(64, 4, s2) → linear(out)`` (the paper's small CNN)."""

    def __init__(self, out_dim, channels=1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 32, 4, 2, 1), nn.ReLU(),
            nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 7 * 7, out_dim))

    def forward(self, x):
        return self.net(x.reshape(len(x), -1, 28, 28))


class CNNDecoder(nn.Module):
    """Mirror of :class:`CNNEncoder`: ``in → 64×7×7 → deconv(32) → deconv(1)`` → (n, 784)."""

    def __init__(self, in_dim, channels=1):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, 64 * 7 * 7), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
            nn.ConvTranspose2d(32, channels, 4, 2, 1))

    def forward(self, z):
        return self.net(z).reshape(len(z), -1)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3×3 convolutions with batch norm and a shortcut)."""

    def __init__(self, cin, cout, stride=1, upsample=False):
        super().__init__()
        self.up = nn.Upsample(scale_factor=stride, mode="nearest") if upsample and stride > 1 else None
        conv_stride = 1 if upsample else stride
        self.conv1 = nn.Conv2d(cin, cout, 3, conv_stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, conv_stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        if self.up is not None:
            x = self.up(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.short is None else self.short(x)))


_LAYOUT = [(64, 1), (128, 2), (256, 2), (512, 2)]   # ResNet-18: [2, 2, 2, 2] blocks per stage


class ResNet18Encoder(nn.Module):
    """ResNet-18 (BasicBlock, [2, 2, 2, 2]) adapted to 28×28: 3×3 stem, no max-pool;
    28 → 28 → 14 → 7 → 4, global average pool, linear head."""

    def __init__(self, out_dim, channels=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        blocks, cin = [], 64
        for cout, stride in _LAYOUT:
            blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(512, out_dim)

    def forward(self, x):
        h = self.blocks(self.stem(x.reshape(len(x), -1, 28, 28)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class ResNet18Decoder(nn.Module):
    """The encoder mirrored: linear → 512×4×4, up-sampling BasicBlocks 4 → 7 → 14 → 28, 3×3 output conv."""

    def __init__(self, in_dim, channels=1):
        super().__init__()
        self.fc = nn.Linear(in_dim, 512 * 4 * 4)
        blocks, cin = [], 512
        for cout, stride in reversed(_LAYOUT[:-1]):
            blocks += [BasicBlock(cin, cin, 1), BasicBlock(cin, cout, stride, upsample=True)]
            cin = cout
        blocks += [BasicBlock(64, 64, 1), BasicBlock(64, 64, 1)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(64, channels, 3, 1, 1)

    def forward(self, z):
        h = self.fc(z).reshape(len(z), 512, 4, 4)
        h = nn.functional.interpolate(h, size=7, mode="nearest")     # 4 → 7, then ×2 twice: 14, 28
        return self.out(self.blocks(h)).reshape(len(z), -1)


def build_encoder(arch, in_dim, out_dim, hidden=256, depth=1):
    """Encoder ``in_dim → out_dim`` of the given architecture ("mlp", "cnn", "resnet18", "linear")."""
    if arch == "mlp":
        return mlp(in_dim, hidden, out_dim, depth)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if in_dim != 784:
        raise ValueError(f"arch={arch!r} needs 28×28 images (784 inputs), got {in_dim}")
    return CNNEncoder(out_dim) if arch == "cnn" else ResNet18Encoder(out_dim)


def build_decoder(arch, in_dim, out_dim, hidden=256, depth=1):
    """Decoder ``in_dim → out_dim`` of the given architecture."""
    if arch == "mlp":
        return mlp(in_dim, hidden, out_dim, depth)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if out_dim != 784:
        raise ValueError(f"arch={arch!r} decodes 28×28 images (784 outputs), got {out_dim}")
    return CNNDecoder(in_dim) if arch == "cnn" else ResNet18Decoder(in_dim)
