// SPDX-License-Identifier: MIT
// Umbrella header for the tensor-level autograd: tape (nodes, backward sweep, no_grad), var
// (handles, leaves, parameters by reference) and the differentiable ops (incl. apply_layer).
//
//   autograd::tape<double> t;
//   auto x = autograd::leaf(t, input);                        // a copy; x.grad() is owned by the tape
//   auto w = autograd::param(t, my_w, my_w_grad);             // by reference: grads land in my_w_grad
//   auto feats = autograd::apply_layer(t, model.net(), x);    // the model as one node
//   auto loss = autograd::mse(autograd::linear(feats, w), autograd::constant(target));
//   t.backward(loss);                                         // x.grad(), my_w_grad, the model's grads
#pragma once
#include "ops.hpp"
#include "tape.hpp"
#include "variable.hpp"
