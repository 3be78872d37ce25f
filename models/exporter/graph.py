"""A small ONNX graph builder over numpy weights, with the layer numerics of Flax."""

from __future__ import annotations

import numpy as np

OPSET = 17
#: ONNX Runtime's contrib operator domain (FastGelu): bundles run in ONNX Runtime only.
ORT_DOMAIN = 'com.microsoft'
FLOAT_MIN = float(np.finfo(np.float32).min)

_ONNX_TYPES = {
    np.dtype(np.float32): 1,
    np.dtype(np.uint8): 2,
    np.dtype(np.int8): 3,
    np.dtype(np.int16): 5,
    np.dtype(np.int32): 6,
    np.dtype(np.int64): 7,
    np.dtype(np.bool_): 9,
}


def onnx_type(dtype) -> int:
    return _ONNX_TYPES[np.dtype(dtype)]


class Graph:
    """Accumulates nodes and initializers; every op returns the name of its output tensor."""

    def __init__(self, name: str):
        self.name = name
        self.nodes = []
        self.initializers = []
        self.inputs = []
        self.outputs = []
        self._count = 0
        self._consts: dict[tuple, str] = {}
        self._domains: set[str] = set()

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f'{hint}_{self._count}'

    def input(self, name: str, dtype, shape) -> str:
        from onnx import helper

        self.inputs.append(helper.make_tensor_value_info(name, onnx_type(dtype), list(shape)))
        return name

    def output(self, name: str, tensor: str, dtype, shape) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node('Identity', [tensor], [name]))
        self.outputs.append(helper.make_tensor_value_info(name, onnx_type(dtype), list(shape)))

    def const(self, value, dtype=np.float32, name: str | None = None) -> str:
        from onnx import numpy_helper

        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        small = arr.size <= 16
        key = (arr.dtype.str, arr.shape, arr.tobytes()) if small else None
        if key is not None and key in self._consts:
            return self._consts[key]
        tname = self._fresh(name or 'const')
        self.initializers.append(numpy_helper.from_array(arr, tname))
        if key is not None:
            self._consts[key] = tname
        return tname

    def op(self, op_type: str, *inputs: str, outputs: int = 1, domain: str = '', **attrs):
        from onnx import helper

        names = [self._fresh(op_type.lower()) for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, list(inputs), names, domain=domain or None, **attrs))
        if domain:
            self._domains.add(domain)
        return names[0] if outputs == 1 else names

    def model(self, doc: str = ''):
        from onnx import helper

        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid('', OPSET)] + [helper.make_opsetid(d, 1) for d in sorted(self._domains)],
            producer_name='fuse-ros models.exporter',
            doc_string=doc,
        )
        model.ir_version = 8
        return model

    # ---- shape helpers ---------------------------------------------------------
    def reshape(self, x: str, shape) -> str:
        return self.op('Reshape', x, self.const(shape, np.int64))

    def transpose(self, x: str, perm) -> str:
        return self.op('Transpose', x, perm=list(perm))

    def concat(self, xs, axis: int) -> str:
        return xs[0] if len(xs) == 1 else self.op('Concat', *xs, axis=axis)

    def gather(self, x: str, indices, axis: int) -> str:
        return self.op('Gather', x, self.const(indices, np.int64), axis=axis)

    def slice(self, x: str, starts, ends, axes) -> str:
        return self.op(
            'Slice', x, self.const(starts, np.int64), self.const(ends, np.int64), self.const(axes, np.int64)
        )

    def cast(self, x: str, dtype) -> str:
        return self.op('Cast', x, to=onnx_type(dtype))

    # ---- arithmetic -------------------------------------------------------------
    def add(self, a: str, b: str) -> str:
        return self.op('Add', a, b)

    def mul(self, a: str, b: str) -> str:
        return self.op('Mul', a, b)

    def affine(self, x: str, scale: float, shift: float) -> str:
        return self.add(self.mul(x, self.const(scale)), self.const(shift))

    # ---- layers ---------------------------------------------------------------------
    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray | None = None) -> str:
        y = self.op('MatMul', x, self.const(kernel, name='kernel'))
        if bias is not None:
            y = self.add(y, self.const(bias, name='bias'))
        return y

    def layer_norm(self, x: str, scale: np.ndarray, bias: np.ndarray, eps: float) -> str:
        return self.op(
            'LayerNormalization',
            x,
            self.const(scale, name='ln_scale'),
            self.const(bias, name='ln_bias'),
            axis=-1,
            epsilon=float(eps),
        )

    def rms_norm(self, x: str, weight: np.ndarray, eps: float) -> str:
        var = self.op('ReduceMean', self.mul(x, x), axes=[-1], keepdims=1)
        normed = self.op('Div', x, self.op('Sqrt', self.add(var, self.const(eps))))
        return self.mul(normed, self.const(weight, name='rms_weight'))

    def gelu_tanh(self, x: str) -> str:
        # jax.nn.gelu(approximate=True), the Flax default: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
        # ONNX Runtime's FastGelu is that formula in one kernel. As nine elementwise ops
        # (opset 17 has no Gelu, and ONNX Runtime does not fuse the chain) it took about a
        # sixth of the full-size policy graph's time on the CPU; FastGelu is ~15x faster.
        return self.op('FastGelu', x, domain=ORT_DOMAIN)

    def relu(self, x: str) -> str:
        return self.op('Relu', x)

    def conv(self, x: str, kernel_hwio: np.ndarray, bias: np.ndarray | None, strides, pads) -> str:
        """NCHW convolution from a Flax HWIO kernel; pads = (top, left, bottom, right)."""
        w = np.transpose(kernel_hwio, (3, 2, 0, 1))
        ins = [x, self.const(w, name='conv_w')]
        if bias is not None:
            ins.append(self.const(bias, name='conv_b'))
        return self.op('Conv', *ins, kernel_shape=list(w.shape[2:]), strides=list(strides), pads=list(pads))

    def group_norm(self, x: str, channels: int, groups: int, scale, bias, eps: float) -> str:
        """Flax GroupNorm on an NCHW tensor (statistics over each group's channels and all pixels)."""
        g = self.reshape(x, [0, groups, -1])
        mean = self.op('ReduceMean', g, axes=[2], keepdims=1)
        centred = self.op('Sub', g, mean)
        var = self.op('ReduceMean', self.mul(centred, centred), axes=[2], keepdims=1)
        normed = self.op('Div', centred, self.op('Sqrt', self.add(var, self.const(eps))))
        shape = self.op('Shape', x)
        y = self.op('Reshape', normed, shape)
        y = self.mul(y, self.const(np.reshape(scale, (1, channels, 1, 1)), name='gn_scale'))
        return self.add(y, self.const(np.reshape(bias, (1, channels, 1, 1)), name='gn_bias'))

    def attention(
        self,
        q: str,
        k: str,
        v: str,
        heads: int,
        head_dim: int,
        n_q: int,
        n_k: int,
        mask: str | None = None,
        bias: str | None = None,
    ) -> str:
        """Multi-head attention on [B, N, heads*head_dim] tensors (queries already scaled).

        mask: bool, broadcastable to [B, heads, n_q, n_k]; masked logits become float32's minimum,
        as Flax does. bias: float added to the logits (T5's position bias).
        """

        def split(t, n):
            return self.transpose(self.reshape(t, [0, n, heads, head_dim]), (0, 2, 1, 3))

        qh, kh, vh = split(q, n_q), split(k, n_k), split(v, n_k)
        logits = self.op('MatMul', qh, self.transpose(kh, (0, 1, 3, 2)))
        if bias is not None:
            logits = self.add(logits, bias)
        if mask is not None:
            logits = self.op('Where', mask, logits, self.const(FLOAT_MIN))
        weights = self.op('Softmax', logits, axis=-1)
        out = self.op('MatMul', weights, vh)
        return self.reshape(self.transpose(out, (0, 2, 1, 3)), [0, n_q, heads * head_dim])


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Flax/XLA 'SAME' padding (low, high) for one spatial axis: the extra pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv_output_size(size: int, kernel: int, stride: int, pad_low: int, pad_high: int) -> int:
    return (size + pad_low + pad_high - kernel) // stride + 1
