/* kernels/cpu/shape_copy.c — ops whose output is the input's bytes unchanged (Identity and the
 * reshaping ops Reshape/Flatten/Squeeze/Unsqueeze: row-major order is kept, only the shape that
 * inference gave the output differs), constants, and Shape/Size, which read only the shape. */
#include "kernels/cpu/shape.h"

#include <string.h>

SHAPE_EVAL(bp_eval_identity) {
  (void)ctx, (void)nin, (void)nout;
  if (shape_check_movable(n, in[0], "input", e)) return -1;
  size_t bytes = bp_value_bytes(in[0]);
  if (bytes != bp_value_bytes(out[0])) return SHAPE_ERR(e, n, "output size differs from input size");
  if (bytes && out[0]->data != in[0]->data) memcpy(out[0]->data, in[0]->data, bytes);
  return 0;
}

/* Constant: the value comes from exactly one of the value* attributes (checked by inference). */
SHAPE_EVAL(bp_eval_constant) {
  (void)ctx, (void)in, (void)nin, (void)nout;
  bp_value *o = out[0];
  const bp_attr *a;
  if ((a = bp_node_attr(n, "value")) && a->type == BP_ATTR_TENSOR && a->t) {
    if (a->t->dtype != o->dtype || bp_value_bytes(a->t) != bp_value_bytes(o))
      return SHAPE_ERR(e, n, "output does not match the 'value' tensor");
    if (bp_value_bytes(o)) {
      if (!a->t->data) return SHAPE_ERR(e, n, "attribute 'value' has no data");
      memcpy(o->data, a->t->data, bp_value_bytes(o));
    }
  } else if ((a = bp_node_attr(n, "value_float")) && a->type == BP_ATTR_FLOAT) {
    ((float *)o->data)[0] = a->f;
  } else if ((a = bp_node_attr(n, "value_floats")) && a->type == BP_ATTR_FLOATS) {
    if (a->n) memcpy(o->data, a->floats, sizeof(float) * (size_t)a->n);
  } else if ((a = bp_node_attr(n, "value_int")) && a->type == BP_ATTR_INT) {
    ((int64_t *)o->data)[0] = a->i;
  } else if ((a = bp_node_attr(n, "value_ints")) && a->type == BP_ATTR_INTS) {
    if (a->n) memcpy(o->data, a->ints, sizeof(int64_t) * (size_t)a->n);
  } else {
    return SHAPE_ERR(e, n, "no supported value attribute");
  }
  return 0;
}

/* ConstantOfShape: every element is the one element of attribute 'value' (default float 0). */
SHAPE_EVAL(bp_eval_constant_of_shape) {
  (void)ctx, (void)in, (void)nin, (void)nout;
  bp_value *o = out[0];
  const bp_attr *a = bp_node_attr(n, "value");
  int64_t cnt = bp_value_numel(o);
  if (!a || a->type != BP_ATTR_TENSOR || !a->t) {
    memset(o->data, 0, bp_value_bytes(o)); /* default: float32 zeros */
    return 0;
  }
  size_t es = bp_dtype_size(o->dtype);
  if (a->t->dtype != o->dtype || bp_value_numel(a->t) != 1 || !a->t->data)
    return SHAPE_ERR(e, n, "attribute 'value' must be a one-element tensor of the output dtype");
  const char *v = a->t->data;
  char *d = o->data;
  if (es == 4) {
    uint32_t x;
    memcpy(&x, v, 4);
    for (int64_t i = 0; i < cnt; i++) ((uint32_t *)o->data)[i] = x;
  } else {
    for (int64_t i = 0; i < cnt; i++) memcpy(d + (size_t)i * es, v, es);
  }
  return 0;
}

/* Shape (opset 15+: the dims in [start, end), clamped like a slice). Reads only in[0]'s shape:
 * the folding pass calls this with in[0]->data possibly NULL. */
SHAPE_EVAL(bp_eval_shape) {
  (void)ctx, (void)nin, (void)nout;
  int r = in[0]->rank;
  int64_t start = n->opset >= 15 ? bp_attr_int(n, "start", 0) : 0;
  int64_t end = n->opset >= 15 ? bp_attr_int(n, "end", r) : r;
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = start < 0 ? 0 : start > r ? r : start;
  end = end < 0 ? 0 : end > r ? r : end;
  if (bp_value_numel(out[0]) != (end > start ? end - start : 0))
    return SHAPE_ERR(e, n, "output length does not match the input's rank");
  for (int64_t i = start; i < end; i++) ((int64_t *)out[0]->data)[i - start] = in[0]->dims[i];
  return 0;
}

/* Size: number of elements as an int64 scalar. Like Shape, never reads in[0]->data. */
SHAPE_EVAL(bp_eval_size) {
  (void)ctx, (void)n, (void)nin, (void)nout, (void)e;
  ((int64_t *)out[0]->data)[0] = bp_value_numel(in[0]);
  return 0;
}
