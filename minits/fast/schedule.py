"""The order in which FastSequential runs its layers, and backward in that order.

- pool_first_order: a ReLU directly followed by a MaxPool2d runs *after* the
  pooling. The two commute, max_w relu(x_w) = relu(max_w x_w), since relu is
  monotone, so the output is the same, and so is every gradient: a window whose
  maximum is positive sends dout to the same element either way (ties included:
  the first maximum in both orders), and one whose maximum is <= 0 sends nothing
  either way (the ReLU's derivative at 0 is 0). With 2 x 2 pooling the ReLU then
  sees a quarter of the data.
- layers_backward(..., input_grad=False) stops at the first parametrised layer and
  skips its input gradient: training never needs dL/dx of the data, and for a first
  convolution it is the costliest product.
"""

from ..layers import MaxPool2d, ReLU
from .dense import FastReLU
from .layer import FastLayer
from .pool import FastMaxPool2d


def pool_first_order(layers):
    """The order in which FastSequential runs the layers (indices into layers): as
    listed, except that ReLU, MaxPool2d pairs run pooling first.

    Must give the outputs and gradients of the listed order bit for bit (see the
    module docstring). Exact types only: a subclass may change what the layer computes.
    """
    order = list(range(len(layers)))
    for i in range(len(order) - 1):
        if (order[i] == i and type(layers[i]) in (ReLU, FastReLU)
                and type(layers[i + 1]) in (MaxPool2d, FastMaxPool2d)):
            order[i], order[i + 1] = i + 1, i
    return order


def layers_backward(layers, order, dX, input_grad=True):
    """Backward through layers in the reverse of order, the order forward ran them.

    Must give what Sequential.backward gives from the same layer backward passes, bit
    for bit: the reverse of pool_first_order is as good as the reverse of the listed
    order (module docstring), and the only difference is that the first parametrised
    layer's input gradient is skipped when input_grad=False (a fast layer's backward
    then skips the product; any other layer computes it, and it is dropped).

    Inputs:
        layers: the model's layers; order: the forward's order (pool_first_order)
        dX: dL/dX, (N, K)
    Returns:
        dL/dx, shaped like the model's input, or None when input_grad=False
    """
    first = next((i for i in order if layers[i].params), order[0])
    d = dX
    for i in reversed(order):
        if i == first and not input_grad:
            if isinstance(layers[i], FastLayer):
                layers[i].backward(d, input_grad=False)
            else:
                layers[i].backward(d)
            return None
        d = layers[i].backward(d)
    return d
