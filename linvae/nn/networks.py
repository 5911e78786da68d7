"""Encoder/decoder networks: MLP, a small CNN and ResNet-18 for 28×28 images (no torchvision)."""
import torch
from torch import nn

__all__ = ["mlp", "CNNEncoder", "CNNDecoder", "ResNet18Encoder", "ResNet18Decoder",
           "ResNet18CifarEncoder", "ResNet18CifarDecoder", "build_encoder",
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

    def forward(self, x, size=None):
        if self.up is not None:
            x = nn.functional.interpolate(x, size=size, mode="nearest") if size else self.up(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.short is None else self.short(x)))


_LAYOUT = [(64, 1), (128, 2), (256, 2), (512, 2)]   # ResNet-18: [2, 2, 2, 2] blocks per stage


def _stages(cin):
    """The four ResNet-18 stages ([2, 2, 2, 2] BasicBlocks) starting from ``cin`` channels."""
    blocks = []
    for cout, stride in _LAYOUT:
        blocks += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
        cin = cout
    return nn.Sequential(*blocks)


def _up_stages():
    """The four stages mirrored: 512 → 256 → 128 → 64 channels, each stage but the last up-sampling ×2."""
    blocks, cin = [], 512
    for cout, stride in reversed(_LAYOUT[:-1]):
        blocks += [BasicBlock(cin, cin, 1), BasicBlock(cin, cout, stride, upsample=True)]
        cin = cout
    return blocks


class ResNet18Encoder(nn.Module):
    """ResNet-18 with the standard (ImageNet, torchvision) layout on 28×28 inputs.

    7×7 stride-2 stem and 3×3 stride-2 max-pool (28 → 14 → 7), then the four [2, 2, 2, 2]
    BasicBlock stages at 7, 4, 2 and 1 px with 64, 128, 256 and 512 channels, global average pool
    and a linear head: about 70 MFLOP per image forward.
    """

    def __init__(self, out_dim, channels=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        self.blocks = _stages(64)
        self.head = nn.Linear(512, out_dim)

    def forward(self, x):
        h = self.blocks(self.stem(x.reshape(len(x), -1, 28, 28)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class ResNet18Decoder(nn.Module):
    """:class:`ResNet18Encoder` mirrored: linear → 512×1×1, four BasicBlock stages up-sampling
    1 → 2 → 4 → 7 px (512 → 256 → 128 → 64 channels), then two stride-2 transposed convolutions
    (the stem's two down-samplings mirrored) 7 → 14 → 28 px: about 80 MFLOP per image forward."""

    def __init__(self, in_dim, channels=1):
        super().__init__()
        self.fc = nn.Linear(in_dim, 512)
        blocks, cin = [BasicBlock(512, 512, 1)], 512
        for cout in (256, 128, 64):
            blocks += [BasicBlock(cin, cout, 2, upsample=True), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.ReLU(),
                                 nn.ConvTranspose2d(32, channels, 4, 2, 1))

    def forward(self, z):
        h = self.fc(z).reshape(len(z), 512, 1, 1)
        for block in self.blocks:
            # the up-sampling blocks undo the encoder's 7 → 4 → 2 → 1: 1 → 2 → 4 → 7
            h = block(h, size=7 if block.up is not None and h.shape[-1] == 4 else None)
        return self.out(h).reshape(len(z), -1)


class ResNet18CifarEncoder(nn.Module):
    """ResNet-18 with the CIFAR layout (the previous default, ``arch="resnet18_cifar"``): 3×3
    stride-1 stem, no max-pool, stages at 28, 14, 7 and 4 px — about 0.9 GFLOP per image forward."""

    def __init__(self, out_dim, channels=1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.blocks = _stages(64)
        self.head = nn.Linear(512, out_dim)

    def forward(self, x):
        h = self.blocks(self.stem(x.reshape(len(x), -1, 28, 28)))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(h, 1), 1))


class ResNet18CifarDecoder(nn.Module):
    """:class:`ResNet18CifarEncoder` mirrored: linear → 512×4×4, up-sampling BasicBlocks
    4 → 7 → 14 → 28, 3×3 output conv (its up-sampling stages run 512/256/128 channels at 7/14/28 px:
    about 3 GFLOP per image forward)."""

    def __init__(self, in_dim, channels=1):
        super().__init__()
        self.fc = nn.Linear(in_dim, 512 * 4 * 4)
        self.blocks = nn.Sequential(*_up_stages(), BasicBlock(64, 64, 1), BasicBlock(64, 64, 1))
        self.out = nn.Conv2d(64, channels, 3, 1, 1)

    def forward(self, z):
        h = self.fc(z).reshape(len(z), 512, 4, 4)
        h = nn.functional.interpolate(h, size=7, mode="nearest")     # 4 → 7, then ×2 twice: 14, 28
        return self.out(self.blocks(h)).reshape(len(z), -1)


_IMAGE_NETS = {"cnn": (CNNEncoder, CNNDecoder), "resnet18": (ResNet18Encoder, ResNet18Decoder),
               "resnet18_cifar": (ResNet18CifarEncoder, ResNet18CifarDecoder)}


def build_encoder(arch, in_dim, out_dim, hidden=256, depth=1):
    """Encoder ``in_dim → out_dim`` of the given architecture ("mlp", "cnn", "resnet18", "resnet18_cifar", "linear")."""
    if arch == "mlp":
        return mlp(in_dim, hidden, out_dim, depth)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if in_dim != 784:
        raise ValueError(f"arch={arch!r} needs 28×28 images (784 inputs), got {in_dim}")
    return _IMAGE_NETS[arch][0](out_dim)


def build_decoder(arch, in_dim, out_dim, hidden=256, depth=1):
    """Decoder ``in_dim → out_dim`` of the given architecture."""
    if arch == "mlp":
        return mlp(in_dim, hidden, out_dim, depth)
    if arch == "linear":
        return nn.Linear(in_dim, out_dim, bias=False)
    if out_dim != 784:
        raise ValueError(f"arch={arch!r} decodes 28×28 images (784 outputs), got {out_dim}")
    return _IMAGE_NETS[arch][1](in_dim)
