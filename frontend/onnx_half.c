/* frontend/onnx_half.c — half-precision exports (model.half() / .to(torch.bfloat16) before
 * torch.onnx.export) computed in float32.
 *
 * The loader already widens float16/bfloat16 initializers and Constant values to float32 (the CPU
 * kernels compute in float32). What is left of the half type in such a file is where the exporter
 * wrote it explicitly: Cast(to=FLOAT16|BFLOAT16) nodes (TorchScript casts its mask and position
 * tables to the model's dtype) and the declared dtype of the graph's outputs. Both become float32,
 * so the whole model runs and trains in float32 (float32 master weights, as mixed-precision training
 * keeps them); results differ from a half-precision run by half-precision rounding. A graph input
 * declared half stays half (its data would have to be given as such): bp_graph_check_ops and the
 * kernels then name the node that cannot compute it. */
#include "frontend/onnx_load.h"

#include <stdio.h>
#include <string.h>

static int is_half(int64_t onnx_type) { return onnx_type == BP_F16 || onnx_type == BP_BF16; }

int bp_onnx_widen_half(bp_graph *g, int *changed) {
  int n = 0;
  for (int i = 0; i < g->nnodes; i++) {
    bp_node *nd = g->nodes[i];
    if (strcmp(nd->op_type, "Cast") != 0 || (nd->domain && *nd->domain)) continue;
    for (int a = 0; a < nd->nattr; a++)
      if (!strcmp(nd->attrs[a].name, "to") && nd->attrs[a].type == BP_ATTR_INT && is_half(nd->attrs[a].i)) {
        nd->attrs[a].i = BP_F32;
        n++;
      }
  }
  for (int i = 0; i < g->noutputs; i++) {
    bp_tensor *t = g->tensors[g->outputs[i]];
    if (t->producer >= 0 && is_half(t->v.dtype)) {
      t->v.dtype = BP_F32;
      n++;
    }
  }
  if (changed) *changed = n;
  return 0;
}
