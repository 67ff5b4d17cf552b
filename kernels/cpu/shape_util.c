/* kernels/cpu/shape_util.c — helpers of the shape ops: reading integer tensors (shape-determining
 * inputs), dtype checks, and the strided copy that every reordering op is built on. */
#include "kernels/cpu/shape.h"

#include <string.h>

int shape_read_ints(const bp_node *n, const bp_value *v, const char *what, int64_t *out, int max,
                    int *count, bp_err *e) {
  if (!v) return SHAPE_ERR(e, n, "input '%s' is required", what);
  /* an empty tensor is fully known from its shape, whether or not it has a data pointer */
  if (!v->data && !(v->rank >= 0 && bp_value_numel(v) == 0))
    return SHAPE_ERR(e, n, "input '%s' is not a compile-time constant", what);
  if (!bp_dtype_is_int(v->dtype))
    return SHAPE_ERR(e, n, "input '%s' must be an integer tensor, got %s", what, bp_dtype_name(v->dtype));
  if (v->rank > 1) return SHAPE_ERR(e, n, "input '%s' must be a scalar or 1-D, got rank %d", what, v->rank);
  int64_t k = bp_value_numel(v);
  if (k > max) return SHAPE_ERR(e, n, "input '%s' has %lld elements, at most %d supported", what, (long long)k, max);
  for (int64_t i = 0; i < k; i++) out[i] = bp_get_i64(v->data, v->dtype, i);
  *count = (int)k;
  return 0;
}

int shape_read_scalar_int(const bp_node *n, const bp_value *v, const char *what, int64_t *out, bp_err *e) {
  if (!v || !v->data) return SHAPE_ERR(e, n, "input '%s' has no value", what);
  if (!bp_dtype_is_int(v->dtype))
    return SHAPE_ERR(e, n, "input '%s' must be an integer tensor, got %s", what, bp_dtype_name(v->dtype));
  if (bp_value_numel(v) != 1) return SHAPE_ERR(e, n, "input '%s' must hold exactly one element", what);
  *out = bp_get_i64(v->data, v->dtype, 0);
  return 0;
}

int shape_check_movable(const bp_node *n, const bp_value *v, const char *what, bp_err *e) {
  if (!v) return SHAPE_ERR(e, n, "input '%s' is required", what);
  if (bp_dtype_size(v->dtype) == 0)
    return SHAPE_ERR(e, n, "input '%s' has unsupported dtype %s", what, bp_dtype_name(v->dtype));
  return 0;
}

void shape_strides(int rank, const int64_t *dims, int64_t *strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

/* One innermost row: n elements, strides in elements. Contiguous rows are memcpy, broadcast
 * rows (source stride 0) are fills, the rest typed loops. */
static void copy_row(char *dst, int64_t ds, const char *src, int64_t ss, int64_t n, size_t es) {
  if (ds == 1 && ss == 1) {
    memcpy(dst, src, (size_t)n * es);
    return;
  }
#define ROW(T)                                                                  \
  do {                                                                          \
    T *d = (T *)(void *)dst;                                                    \
    const T *s = (const T *)(const void *)src;                                  \
    if (ss == 0) {                                                              \
      T x = *s;                                                                 \
      for (int64_t i = 0; i < n; i++) d[i * ds] = x;                            \
    } else {                                                                    \
      for (int64_t i = 0; i < n; i++) d[i * ds] = s[i * ss];                    \
    }                                                                           \
  } while (0)
  switch (es) {
  case 1: ROW(uint8_t); break;
  case 2: ROW(uint16_t); break;
  case 4: ROW(uint32_t); break;
  case 8: ROW(uint64_t); break;
  default:
    for (int64_t i = 0; i < n; i++) memcpy(dst + i * ds * (int64_t)es, src + i * ss * (int64_t)es, es);
  }
#undef ROW
}

void shape_copy_strided(void *dst, const int64_t *dst_strides, const void *src, const int64_t *src_strides,
                        int rank, const int64_t *dims, size_t esize) {
  /* Drop unit dims and merge neighbours that are contiguous in both source and destination, so
   * e.g. a Transpose that keeps the last axes in place copies long rows. */
  int64_t d[SHAPE_COPY_MAX_RANK], ds[SHAPE_COPY_MAX_RANK], ss[SHAPE_COPY_MAX_RANK];
  int r = 0;
  for (int i = 0; i < rank; i++) {
    if (dims[i] == 0) return;
    if (dims[i] == 1) continue;
    if (r > 0 && ds[r - 1] == dst_strides[i] * dims[i] && ss[r - 1] == src_strides[i] * dims[i]) {
      d[r - 1] *= dims[i];
      ds[r - 1] = dst_strides[i];
      ss[r - 1] = src_strides[i];
    } else {
      d[r] = dims[i];
      ds[r] = dst_strides[i];
      ss[r] = src_strides[i];
      r++;
    }
  }
  if (r == 0) {
    memcpy(dst, src, esize);
    return;
  }
  int64_t n = d[r - 1], rows = 1;
  for (int i = 0; i < r - 1; i++) rows *= d[i];
  const int64_t es = (int64_t)esize;

  /* Rows are split into contiguous blocks; each block starts its odometer by division. */
  int64_t nblocks = 1;
#ifdef _OPENMP
  if (rows * n >= (1 << 16) && rows >= 8) nblocks = rows < 64 ? rows : 64;
#pragma omp parallel for schedule(static) if (nblocks > 1)
#endif
  for (int64_t b = 0; b < nblocks; b++) {
    int64_t r0 = rows * b / nblocks, r1 = rows * (b + 1) / nblocks;
    int64_t idx[SHAPE_COPY_MAX_RANK], doff = 0, soff = 0, rem = r0;
    for (int k = r - 2; k >= 0; k--) {
      idx[k] = rem % d[k];
      rem /= d[k];
      doff += idx[k] * ds[k];
      soff += idx[k] * ss[k];
    }
    for (int64_t o = r0; o < r1; o++) {
      copy_row((char *)dst + doff * es, ds[r - 1], (const char *)src + soff * es, ss[r - 1], n, esize);
      for (int k = r - 2; k >= 0; k--) {
        idx[k]++;
        doff += ds[k];
        soff += ss[k];
        if (idx[k] < d[k]) break;
        doff -= ds[k] * d[k];
        soff -= ss[k] * d[k];
        idx[k] = 0;
      }
    }
  }
}

void shape_transpose(void *dst, const void *src, int rank, const int64_t *in_dims, const int64_t *perm,
                     size_t esize) {
  int64_t in_strides[SHAPE_COPY_MAX_RANK], dims[SHAPE_COPY_MAX_RANK], sstr[SHAPE_COPY_MAX_RANK],
      dstr[SHAPE_COPY_MAX_RANK];
  shape_strides(rank, in_dims, in_strides);
  for (int i = 0; i < rank; i++) {
    dims[i] = in_dims[perm[i]];
    sstr[i] = in_strides[perm[i]];
  }
  shape_strides(rank, dims, dstr);
  shape_copy_strided(dst, dstr, src, sstr, rank, dims, esize);
}
