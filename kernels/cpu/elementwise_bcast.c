/* kernels/cpu/elementwise_bcast.c — the broadcast iterator shared by the elementwise kernels
 * (see elementwise.h), and their common dtype guards. */
#include "kernels/cpu/elementwise.h"

#include <string.h>

void ew_bcast_init(ew_bcast *it, const bp_value *out, const bp_value *const *ins, int nin) {
  int64_t st[EW_MAX_IN][BP_MAX_RANK];
  memset(it, 0, sizeof *it);
  it->nin = nin;
  for (int k = 0; k < nin; k++) bp_broadcast_strides(ins[k], out, st[k]);
  /* Drop size-1 output dims, then merge dim i into the previous kept dim p when every input's
   * stride over p equals its stride over i times dims[i] (contiguous for it, or both 0). */
  int r = 0;
  for (int i = 0; i < out->rank; i++) {
    if (out->dims[i] == 1) continue;
    int merge = r > 0;
    for (int k = 0; k < nin && merge; k++)
      if (it->st[k][r - 1] != st[k][i] * out->dims[i]) merge = 0;
    if (merge) {
      it->dims[r - 1] *= out->dims[i];
      for (int k = 0; k < nin; k++) it->st[k][r - 1] = st[k][i];
    } else {
      it->dims[r] = out->dims[i];
      for (int k = 0; k < nin; k++) it->st[k][r] = st[k][i];
      r++;
    }
  }
  if (r == 0) { /* scalar or all-ones output: one run of one element */
    it->dims[0] = 1;
    for (int k = 0; k < nin; k++) it->st[k][0] = 0;
    r = 1;
  }
  it->rank = r;
  it->inner = it->dims[r - 1];
  it->outer = 1;
  for (int i = 0; i < r - 1; i++) it->outer *= it->dims[i];
  for (int k = 0; k < nin; k++) it->is[k] = it->st[k][r - 1];
}

void ew_bcast_offsets(const ew_bcast *it, int64_t r, int64_t *off) {
  for (int k = 0; k < it->nin; k++) off[k] = 0;
  for (int i = it->rank - 2; i >= 0 && r > 0; i--) {
    int64_t q = r / it->dims[i], j = r - q * it->dims[i];
    for (int k = 0; k < it->nin; k++) off[k] += j * it->st[k][i];
    r = q;
  }
}

int ew_reject_half(const bp_node *n, bp_dtype t, bp_err *e) {
  if (t == BP_F16 || t == BP_BF16)
    return bp_errf(e, "node '%s' (%s): %s compute is not supported", n->name, n->op_type,
                   t == BP_F16 ? "float16" : "bfloat16");
  return 0;
}

int ew_bad_dtype(const bp_node *n, bp_dtype t, bp_err *e) {
  if (ew_reject_half(n, t, e)) return -1;
  return bp_errf(e, "node '%s' (%s): dtype %s is not supported", n->name, n->op_type, bp_dtype_name(t));
}

/* Element copy by size: the dtype does not matter, only its width. */
#define COPY_RUNS(T)                                                                               \
  do {                                                                                             \
    const T *s = src->data;                                                                        \
    T *o = out->data;                                                                              \
    for (int64_t r = 0; r < it.outer; r++) {                                                       \
      ew_bcast_offsets(&it, r, off);                                                               \
      T *orun = o + r * it.inner;                                                                  \
      if (it.is[0]) memcpy(orun, s + off[0], sizeof(T) * (size_t)it.inner);                        \
      else for (int64_t i = 0; i < it.inner; i++) orun[i] = s[off[0]];                             \
    }                                                                                              \
  } while (0)

void ew_broadcast_copy(const bp_value *src, bp_value *out) {
  const bp_value *ins[1] = {src};
  int64_t off[EW_MAX_IN];
  ew_bcast it;
  if (bp_value_numel(out) == 0) return;
  if (bp_same_shape(src, out)) {
    memcpy(out->data, src->data, bp_value_bytes(out));
    return;
  }
  ew_bcast_init(&it, out, ins, 1);
  switch (bp_dtype_size(out->dtype)) {
  case 1: COPY_RUNS(uint8_t); break;
  case 2: COPY_RUNS(uint16_t); break;
  case 4: COPY_RUNS(uint32_t); break;
  case 8: COPY_RUNS(uint64_t); break;
  default: break;
  }
}
