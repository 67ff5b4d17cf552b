/* kernels/cpu/shape_plan.c — the parameters of Slice, Pad and Split, worked out from attributes
 * (old opsets) or constant inputs (new opsets). Inference derives output shapes from a plan and
 * evaluation walks the same plan, so the two can never disagree. */
#include "kernels/cpu/shape.h"

#include <stdio.h>
#include <string.h>

static int64_t clamp64(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

/* Slice (opset 1-9: attributes starts/ends/axes; 10+: inputs starts, ends, axes?, steps?).
 * Negative starts/ends count from the end; values are clamped to the dimension the way numpy
 * does: [0, dim] for positive steps, [-1, dim-1] for negative steps (so -1 means "before 0"). */
int shape_plan_slice(const bp_node *n, bp_value *const *in, int nin, shape_slice_plan *p, bp_err *e) {
  const bp_value *x = in[0];
  int64_t starts[BP_MAX_RANK], ends[BP_MAX_RANK], axes[BP_MAX_RANK], steps[BP_MAX_RANK];
  int ns = 0, ne = 0, na = -1, nst = -1;
  if (n->opset < 10) {
    const int64_t *a;
    int c;
    if (!(a = bp_attr_ints(n, "starts", &c)) || c > BP_MAX_RANK)
      return SHAPE_ERR(e, n, "attribute 'starts' is missing or too long");
    memcpy(starts, a, sizeof(int64_t) * (size_t)c);
    ns = c;
    if (!(a = bp_attr_ints(n, "ends", &c)) || c > BP_MAX_RANK)
      return SHAPE_ERR(e, n, "attribute 'ends' is missing or too long");
    memcpy(ends, a, sizeof(int64_t) * (size_t)c);
    ne = c;
    if ((a = bp_attr_ints(n, "axes", &c))) {
      if (c > BP_MAX_RANK) return SHAPE_ERR(e, n, "attribute 'axes' is too long");
      memcpy(axes, a, sizeof(int64_t) * (size_t)c);
      na = c;
    }
  } else {
    if (shape_read_ints(n, shape_in(in, nin, 1), "starts", starts, BP_MAX_RANK, &ns, e)) return -1;
    if (shape_read_ints(n, shape_in(in, nin, 2), "ends", ends, BP_MAX_RANK, &ne, e)) return -1;
    if (shape_in(in, nin, 3) && shape_read_ints(n, in[3], "axes", axes, BP_MAX_RANK, &na, e)) return -1;
    if (shape_in(in, nin, 4) && shape_read_ints(n, in[4], "steps", steps, BP_MAX_RANK, &nst, e)) return -1;
  }
  if (ns != ne) return SHAPE_ERR(e, n, "'starts' has %d elements but 'ends' has %d", ns, ne);
  if (na >= 0 && na != ns) return SHAPE_ERR(e, n, "'axes' has %d elements but 'starts' has %d", na, ns);
  if (nst >= 0 && nst != ns) return SHAPE_ERR(e, n, "'steps' has %d elements but 'starts' has %d", nst, ns);
  if (na < 0 && ns > x->rank)
    return SHAPE_ERR(e, n, "%d starts given for an input of rank %d", ns, x->rank);

  for (int i = 0; i < x->rank; i++) {
    p->start[i] = 0;
    p->step[i] = 1;
    p->count[i] = x->dims[i];
  }
  int seen[BP_MAX_RANK] = {0};
  for (int j = 0; j < ns; j++) {
    int64_t axis = na >= 0 ? axes[j] : j;
    if (axis < -x->rank || axis >= x->rank)
      return SHAPE_ERR(e, n, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    if (axis < 0) axis += x->rank;
    if (seen[axis]) return SHAPE_ERR(e, n, "axis %lld is repeated", (long long)axis);
    seen[axis] = 1;
    int64_t st = nst >= 0 ? steps[j] : 1, dim = x->dims[axis], s = starts[j], en = ends[j], cnt;
    if (st == 0) return SHAPE_ERR(e, n, "step 0 on axis %lld", (long long)axis);
    if (s < 0) s += dim;
    if (en < 0) en += dim;
    if (st > 0) {
      s = clamp64(s, 0, dim);
      en = clamp64(en, 0, dim);
      cnt = en > s ? (en - s - 1) / st + 1 : 0;
    } else {
      int64_t ast = st == INT64_MIN ? INT64_MAX : -st;
      s = clamp64(s, 0, dim - 1);
      en = clamp64(en, -1, dim - 1);
      cnt = s > en ? (s - en - 1) / ast + 1 : 0;
    }
    if (cnt == 0) s = 0;
    p->start[axis] = s;
    p->step[axis] = st;
    p->count[axis] = cnt;
  }
  return 0;
}

/* Pad (opset 1: attribute 'paddings'; 2-10: attribute 'pads'; 11+: input 'pads', 18+: input
 * 'axes'). Pads are [x1_begin, x2_begin, ..., x1_end, x2_end]; negative pads crop. */
int shape_plan_pad(const bp_node *n, bp_value *const *in, int nin, shape_pad_plan *p, bp_err *e) {
  const bp_value *x = in[0];
  int r = x->rank;
  int64_t pads[2 * BP_MAX_RANK], axes[BP_MAX_RANK];
  int np = 0, na = -1;
  if (n->opset < 11) {
    int c;
    const int64_t *a = bp_attr_ints(n, n->opset < 2 ? "paddings" : "pads", &c);
    if (!a) return SHAPE_ERR(e, n, "attribute 'pads' is missing");
    if (c > 2 * BP_MAX_RANK) return SHAPE_ERR(e, n, "attribute 'pads' is too long");
    memcpy(pads, a, sizeof(int64_t) * (size_t)c);
    np = c;
  } else {
    if (shape_read_ints(n, shape_in(in, nin, 1), "pads", pads, 2 * BP_MAX_RANK, &np, e)) return -1;
    if (shape_in(in, nin, 3) && shape_read_ints(n, in[3], "axes", axes, BP_MAX_RANK, &na, e)) return -1;
  }
  if (na < 0) {
    na = r;
    for (int i = 0; i < r; i++) axes[i] = i;
  }
  if (np != 2 * na)
    return SHAPE_ERR(e, n, "'pads' has %d elements, expected %d (2 per padded axis)", np, 2 * na);
  for (int i = 0; i < r; i++) p->before[i] = p->after[i] = 0;
  int seen[BP_MAX_RANK] = {0};
  for (int j = 0; j < na; j++) {
    int64_t a;
    char who[160];
    snprintf(who, sizeof who, "node '%s' (%s): 'axes'", n->name ? n->name : "", n->op_type);
    if (bp_norm_axis(axes[j], r, &a, who, e)) return -1;
    if (seen[a]) return SHAPE_ERR(e, n, "axis %lld is repeated", (long long)a);
    seen[a] = 1;
    p->before[a] = pads[j];
    p->after[a] = pads[na + j];
  }
  const char *mode = bp_attr_string(n, "mode", "constant");
  if (strcmp(mode, "constant") == 0) p->mode = SHAPE_PAD_CONSTANT;
  else if (strcmp(mode, "reflect") == 0) p->mode = SHAPE_PAD_REFLECT;
  else if (strcmp(mode, "edge") == 0) p->mode = SHAPE_PAD_EDGE;
  else if (strcmp(mode, "wrap") == 0) p->mode = SHAPE_PAD_WRAP;
  else return SHAPE_ERR(e, n, "unknown mode '%s'", mode);
  for (int i = 0; i < r; i++) {
    int64_t od = x->dims[i] + p->before[i] + p->after[i];
    if (od < 0) return SHAPE_ERR(e, n, "pads crop axis %d (size %lld) below zero", i, (long long)x->dims[i]);
    if (p->mode != SHAPE_PAD_CONSTANT && x->dims[i] == 0 && od > 0)
      return SHAPE_ERR(e, n, "cannot pad empty axis %d in mode '%s'", i, mode);
  }
  return 0;
}

/* Split: sizes from the 'split' attribute (opset < 13) or input (13+); otherwise equal parts
 * over the outputs (or 'num_outputs', opset 18+), the last part smaller when uneven. */
int shape_plan_split(const bp_node *n, bp_value *const *in, int nin, int nout, int64_t *axis,
                     int64_t *sizes, bp_err *e) {
  const bp_value *x = in[0];
  char who[160];
  snprintf(who, sizeof who, "node '%s' (%s): 'axis'", n->name ? n->name : "", n->op_type);
  if (bp_norm_axis(bp_attr_int(n, "axis", 0), x->rank, axis, who, e)) return -1;
  if (x->rank == 0) return SHAPE_ERR(e, n, "cannot split a scalar");
  int64_t dim = x->dims[*axis];
  int have = 0;
  if (n->opset < 13) {
    int c;
    const int64_t *a = bp_attr_ints(n, "split", &c);
    if (a) {
      if (c != nout) return SHAPE_ERR(e, n, "'split' has %d entries for %d outputs", c, nout);
      memcpy(sizes, a, sizeof(int64_t) * (size_t)c);
      have = 1;
    }
  } else if (shape_in(in, nin, 1)) {
    int c;
    /* nout is at most the node's output count; read into a buffer of that size */
    if (shape_read_ints(n, in[1], "split", sizes, nout, &c, e)) return -1;
    if (c != nout) return SHAPE_ERR(e, n, "'split' has %d entries for %d outputs", c, nout);
    have = 1;
  }
  if (have) {
    int64_t sum = 0;
    for (int i = 0; i < nout; i++) {
      if (sizes[i] < 0) return SHAPE_ERR(e, n, "negative split size %lld", (long long)sizes[i]);
      sum += sizes[i];
    }
    if (sum != dim)
      return SHAPE_ERR(e, n, "split sizes sum to %lld but axis %lld has size %lld", (long long)sum,
                       (long long)*axis, (long long)dim);
    return 0;
  }
  int64_t parts = nout;
  if (n->opset >= 18 && bp_node_attr(n, "num_outputs")) {
    parts = bp_attr_int(n, "num_outputs", nout);
    if (parts != nout) return SHAPE_ERR(e, n, "num_outputs=%lld but the node has %d outputs", (long long)parts, nout);
  }
  if (parts <= 0) return SHAPE_ERR(e, n, "no outputs to split into");
  int64_t chunk = (dim + parts - 1) / parts, last = dim - chunk * (parts - 1);
  if (last < 0)
    return SHAPE_ERR(e, n, "axis of size %lld cannot be split into %lld parts of %lld", (long long)dim,
                     (long long)parts, (long long)chunk);
  for (int i = 0; i < nout; i++) sizes[i] = i == nout - 1 ? last : chunk;
  return 0;
}
