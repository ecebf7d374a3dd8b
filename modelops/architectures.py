"""YOLOv8n and OSNet x0_25 in PyTorch, with their published topology.

Used offline (no model hub reachable) to export ONNX files with the true shapes and
compute cost. Weights are deterministic (seeded) and *untrained*: the detector's class
bias starts where Ultralytics initialises it, so it detects nothing, which is honest;
real weights come from ``scripts/download_models.sh`` or a trained demo model.

YOLOv8n (Ultralytics yolov8.yaml, scale n: depth 0.33, width 0.25): 3.2 M parameters,
8.7 GFLOPs at 640, output [N, 4 + classes, 8400] (cx, cy, w, h in input pixels, then
per-class sigmoid scores). OSNet x0_25 (Zhou et al. 2019, channels 16/64/96/128):
input [N, 3, 256, 128] normalised RGB, output [N, 512].
"""
from __future__ import annotations

import math

import torch
from torch import nn

# --------------------------------------------------------------------------- YOLOv8


class Conv(nn.Module):
    """Conv2d + BatchNorm + SiLU, 'same' padding."""

    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, shortcut: bool):
        super().__init__()
        self.cv1 = Conv(c1, c2, 3)
        self.cv2 = Conv(c2, c2, 3)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C2f(nn.Module):
    """CSP bottleneck with two convolutions, every bottleneck's output concatenated."""

    def __init__(self, c1: int, c2: int, n: int, shortcut: bool):
        super().__init__()
        self.c = c2 // 2
        self.cv1 = Conv(c1, 2 * self.c, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        for m in self.m:
            y.append(m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1: int, c2: int, k: int = 5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1)
        self.cv2 = Conv(c_ * 4, c2, 1)
        self.m = nn.MaxPool2d(k, 1, k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        for _ in range(3):
            y.append(self.m(y[-1]))
        return self.cv2(torch.cat(y, 1))


class Detect(nn.Module):
    """Anchor-free head with distribution focal loss (DFL) box regression."""

    reg_max = 16

    def __init__(self, nc: int, ch: tuple[int, ...], strides=(8, 16, 32)):
        super().__init__()
        self.nc = nc
        self.strides = strides
        c2 = max(16, ch[0] // 4, self.reg_max * 4)
        c3 = max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.register_buffer("proj", torch.arange(self.reg_max, dtype=torch.float32), persistent=False)
        for a, b, s in zip(self.cv2, self.cv3, strides):  # Ultralytics' bias initialisation
            a[-1].bias.data[:] = 1.0
            b[-1].bias.data[:] = math.log(5 / nc / (640 / s) ** 2)

    def forward(self, feats):
        n = feats[0].shape[0]
        boxes, scores, anchors, stride_t = [], [], [], []
        for i, x in enumerate(feats):
            h, w = x.shape[2:]
            boxes.append(self.cv2[i](x).view(n, 4 * self.reg_max, -1))
            scores.append(self.cv3[i](x).view(n, self.nc, -1))
            sy, sx = torch.meshgrid(torch.arange(h, dtype=torch.float32) + 0.5,
                                    torch.arange(w, dtype=torch.float32) + 0.5, indexing="ij")
            anchors.append(torch.stack((sx, sy), 0).view(2, -1))
            stride_t.append(torch.full((1, h * w), float(self.strides[i])))
        box = torch.cat(boxes, 2)  # [n, 64, A]
        anchor = torch.cat(anchors, 1).unsqueeze(0)  # [1, 2, A]
        stride = torch.cat(stride_t, 1).unsqueeze(0)  # [1, 1, A]
        a = box.shape[2]
        dist = box.view(n, 4, self.reg_max, a).softmax(2).transpose(2, 3).matmul(self.proj).view(n, 4, a)
        lt, rb = dist[:, :2], dist[:, 2:]
        x1y1, x2y2 = anchor - lt, anchor + rb
        xywh = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * stride
        return torch.cat((xywh, torch.cat(scores, 2).sigmoid()), 1)


class YOLOv8(nn.Module):
    """YOLOv8 detection model; ``width``/``depth`` 0.25/0.33 give the n scale."""

    def __init__(self, nc: int = 80, width: float = 0.25, depth: float = 0.33):
        super().__init__()

        def c(x: int) -> int:
            return int(math.ceil(min(x, 1024) * width / 8) * 8)

        def d(x: int) -> int:
            return max(round(x * depth), 1)

        self.b0, self.b1 = Conv(3, c(64), 3, 2), Conv(c(64), c(128), 3, 2)
        self.b2 = C2f(c(128), c(128), d(3), True)
        self.b3, self.b4 = Conv(c(128), c(256), 3, 2), C2f(c(256), c(256), d(6), True)
        self.b5, self.b6 = Conv(c(256), c(512), 3, 2), C2f(c(512), c(512), d(6), True)
        self.b7, self.b8 = Conv(c(512), c(1024), 3, 2), C2f(c(1024), c(1024), d(3), True)
        self.b9 = SPPF(c(1024), c(1024))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.h12 = C2f(c(1024) + c(512), c(512), d(3), False)
        self.h15 = C2f(c(512) + c(256), c(256), d(3), False)
        self.h16 = Conv(c(256), c(256), 3, 2)
        self.h18 = C2f(c(256) + c(512), c(512), d(3), False)
        self.h19 = Conv(c(512), c(512), 3, 2)
        self.h21 = C2f(c(512) + c(1024), c(1024), d(3), False)
        self.detect = Detect(nc, (c(256), c(512), c(1024)))

    def forward(self, x):
        p3 = self.b4(self.b3(self.b2(self.b1(self.b0(x)))))
        p4 = self.b6(self.b5(p3))
        p5 = self.b9(self.b8(self.b7(p4)))
        h12 = self.h12(torch.cat((self.up(p5), p4), 1))
        h15 = self.h15(torch.cat((self.up(h12), p3), 1))
        h18 = self.h18(torch.cat((self.h16(h15), h12), 1))
        h21 = self.h21(torch.cat((self.h19(h18), p5), 1))
        return self.detect([h15, h18, h21])


# --------------------------------------------------------------------------- OSNet


class ConvBN(nn.Sequential):
    def __init__(self, c1: int, c2: int, k: int = 1, s: int = 1, p: int = 0, relu: bool = True):
        layers = [nn.Conv2d(c1, c2, k, s, p, bias=False), nn.BatchNorm2d(c2)]
        super().__init__(*layers, *([nn.ReLU(inplace=True)] if relu else []))


class LightConv3x3(nn.Sequential):
    """Pointwise then depthwise 3x3 (OSNet's lite 3x3)."""

    def __init__(self, c1: int, c2: int):
        super().__init__(nn.Conv2d(c1, c2, 1, bias=False), nn.Conv2d(c2, c2, 3, 1, 1, bias=False, groups=c2),
                         nn.BatchNorm2d(c2), nn.ReLU(inplace=True))


class ChannelGate(nn.Module):
    """Unified aggregation gate shared by the omni-scale streams."""

    def __init__(self, c: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(c // reduction, 1), 1)
        self.fc2 = nn.Conv2d(max(c // reduction, 1), c, 1)

    def forward(self, x):
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * g


class OSBlock(nn.Module):
    def __init__(self, c1: int, c2: int):
        super().__init__()
        mid = c2 // 4
        self.conv1 = ConvBN(c1, mid)
        self.streams = nn.ModuleList(nn.Sequential(*(LightConv3x3(mid, mid) for _ in range(t))) for t in (1, 2, 3, 4))
        self.gate = ChannelGate(mid)
        self.conv3 = ConvBN(mid, c2, relu=False)
        self.downsample = ConvBN(c1, c2, relu=False) if c1 != c2 else None

    def forward(self, x):
        x1 = self.conv1(x)
        x2 = sum(self.gate(s(x1)) for s in self.streams)
        identity = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv3(x2) + identity)


class OSNet(nn.Module):
    """OSNet x0_25 feature extractor (eval mode returns the 512-d embedding, unnormalised)."""

    def __init__(self, channels=(16, 64, 96, 128), layers=(2, 2, 2), feature_dim: int = 512):
        super().__init__()
        c0, c1, c2, c3 = channels
        self.conv1 = ConvBN(3, c0, 7, 2, 3)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.conv2 = nn.Sequential(OSBlock(c0, c1), *(OSBlock(c1, c1) for _ in range(layers[0] - 1)),
                                   ConvBN(c1, c1), nn.AvgPool2d(2, 2))
        self.conv3 = nn.Sequential(OSBlock(c1, c2), *(OSBlock(c2, c2) for _ in range(layers[1] - 1)),
                                   ConvBN(c2, c2), nn.AvgPool2d(2, 2))
        self.conv4 = nn.Sequential(OSBlock(c2, c3), *(OSBlock(c3, c3) for _ in range(layers[2] - 1)))
        self.conv5 = ConvBN(c3, c3)
        self.fc = nn.Sequential(nn.Linear(c3, feature_dim), nn.BatchNorm1d(feature_dim), nn.ReLU(inplace=True))

    def forward(self, x):
        x = self.conv5(self.conv4(self.conv3(self.conv2(self.pool(self.conv1(x))))))
        return self.fc(x.mean((2, 3)))


def count_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
