/* kernels/cpu/matmul.c — MatMul with numpy semantics: 1-D promotion, broadcast batch dimensions.
 * float32/float64 go through OpenBLAS (one GEMM for the whole batch when B is a shared weight,
 * the common transformer case); integer types are computed exactly with wrapping 64-bit loops.
 *
 * Letters: M rows of A, K inner dimension, N columns of B; batch = broadcast leading dims. */
#include "kernels/cpu/nn.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bp_matmul_shape(const bp_node *n, const bp_value *a, const bp_value *b, bp_matmul_dims *d,
                    bp_value *out, bp_err *e) {
  if (a->rank < 1 || b->rank < 1)
    return bp_errf(e, "node '%s' (%s): operands must have rank >= 1 (got ranks %d and %d)", n->name,
                   n->op_type, a->rank, b->rank);
  /* promoted A: [..., M, K], promoted B: [..., K, N] */
  bp_value ab = {0}, bb = {0}, ob = {0};
  int64_t m = a->rank == 1 ? 1 : a->dims[a->rank - 2], ka = a->dims[a->rank - 1];
  int64_t kb = b->rank == 1 ? b->dims[0] : b->dims[b->rank - 2];
  int64_t nn = b->rank == 1 ? 1 : b->dims[b->rank - 1];
  if (ka != kb) {
    char s1[128], s2[128];
    return bp_errf(e, "node '%s' (%s): inner dimensions differ: A %s, B %s", n->name, n->op_type,
                   bp_shape_str(a, s1, sizeof s1), bp_shape_str(b, s2, sizeof s2));
  }
  ab.rank = a->rank > 2 ? a->rank - 2 : 0;
  bb.rank = b->rank > 2 ? b->rank - 2 : 0;
  memcpy(ab.dims, a->dims, sizeof(int64_t) * (size_t)ab.rank);
  memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.rank);
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s): batch dimensions", n->name, n->op_type);
  if (bp_broadcast_shape(&ab, &bb, &ob, who, e)) return -1;
  d->m = m;
  d->n = nn;
  d->k = ka;
  d->brank = ob.rank;
  d->batch = 1;
  for (int i = 0; i < ob.rank; i++) {
    d->bdims[i] = ob.dims[i];
    d->batch *= ob.dims[i];
  }
  bp_broadcast_strides(&ab, &ob, d->astride);
  bp_broadcast_strides(&bb, &ob, d->bstride);
  if (out) {
    int r = ob.rank;
    memcpy(out->dims, ob.dims, sizeof(int64_t) * (size_t)r);
    if (a->rank > 1) out->dims[r++] = m;
    if (b->rank > 1) out->dims[r++] = nn;
    out->rank = r;
  }
  return 0;
}

/* Exact integer product of one [M,K] x [K,N] block: wrapping uint64 arithmetic gives the same
 * low bits as two's-complement signed arithmetic, without signed-overflow UB. */
static void matmul_int(const bp_value *a, int64_t aoff, const bp_value *b, int64_t boff,
                       bp_value *y, int64_t yoff, int64_t m, int64_t nn, int64_t k, uint64_t *acc) {
  for (int64_t i = 0; i < m; i++) {
    memset(acc, 0, sizeof(uint64_t) * (size_t)nn);
    for (int64_t p = 0; p < k; p++) {
      uint64_t av = (uint64_t)bp_get_i64(a->data, a->dtype, aoff + i * k + p);
      if (!av) continue;
      for (int64_t j = 0; j < nn; j++)
        acc[j] += av * (uint64_t)bp_get_i64(b->data, b->dtype, boff + p * nn + j);
    }
    for (int64_t j = 0; j < nn; j++) bp_set_i64(y->data, y->dtype, yoff + i * nn + j, (int64_t)acc[j]);
  }
}

/* One GEMM block, dtype dispatched. */
static void gemm_block(const bp_value *a, int64_t aoff, const bp_value *b, int64_t boff,
                       bp_value *y, int64_t yoff, int64_t m, int64_t nn, int64_t k, uint64_t *acc) {
  int lda = (int)(k > 1 ? k : 1), ldb = (int)(nn > 1 ? nn : 1);
  if (y->dtype == BP_F32)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0f,
                (const float *)a->data + aoff, lda, (const float *)b->data + boff, ldb, 0.0f,
                (float *)y->data + yoff, ldb);
  else if (y->dtype == BP_F64)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)nn, (int)k, 1.0,
                (const double *)a->data + aoff, lda, (const double *)b->data + boff, ldb, 0.0,
                (double *)y->data + yoff, ldb);
  else
    matmul_int(a, aoff, b, boff, y, yoff, m, nn, k, acc);
}

int bp_nn_eval_matmul(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                      bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nin, (void)nout;
  const bp_value *a = in[0], *b = in[1];
  bp_value *y = out[0];
  bp_matmul_dims d;
  if (bp_matmul_shape(n, a, b, &d, NULL, e)) return -1;
  if (a->dtype != b->dtype || y->dtype != a->dtype)
    return bp_errf(e, "node '%s' (%s): dtype mismatch (%s x %s -> %s)", n->name, n->op_type,
                   bp_dtype_name(a->dtype), bp_dtype_name(b->dtype), bp_dtype_name(y->dtype));
  if (bp_nn_check_dtype(n, a->dtype, 1, 0, "input A", e)) return -1;
  int64_t mn = d.m * d.n, mk = d.m * d.k, kn = d.k * d.n;
  if (d.batch == 0 || mn == 0) return 0;
  if (d.k == 0 || d.m > INT32_MAX || d.n > INT32_MAX || d.k > INT32_MAX) {
    if (d.k == 0) {
      memset(y->data, 0, bp_value_bytes(y));
      return 0;
    }
    return bp_errf(e, "node '%s' (%s): matrix dimensions exceed the BLAS int range", n->name, n->op_type);
  }
  uint64_t *acc = NULL;
  if (!bp_dtype_is_float(y->dtype)) {
    acc = malloc(sizeof(uint64_t) * (size_t)d.n);
    if (!acc) return bp_errf(e, "node '%s' (%s): out of memory", n->name, n->op_type);
  }
  int64_t a_mats = 1, b_mats = 1; /* matrices actually stored in A and B */
  for (int i = 0; i < d.brank; i++) {
    if (d.astride[i]) a_mats *= d.bdims[i];
    if (d.bstride[i]) b_mats *= d.bdims[i];
  }
  if (b_mats == 1 && a_mats == d.batch && d.batch * d.m <= INT32_MAX) {
    /* B shared by every batch entry and A contiguous: one [batch*M, K] x [K, N] GEMM */
    gemm_block(a, 0, b, 0, y, 0, d.batch * d.m, d.n, d.k, acc);
  } else {
    int64_t idx[BP_MAX_RANK] = {0}, ao = 0, bo = 0;
    for (int64_t t = 0; t < d.batch; t++) {
      gemm_block(a, ao * mk, b, bo * kn, y, t * mn, d.m, d.n, d.k, acc);
      for (int i = d.brank - 1; i >= 0; i--) { /* advance the batch index, row-major */
        ao += d.astride[i];
        bo += d.bstride[i];
        if (++idx[i] < d.bdims[i]) break;
        ao -= d.astride[i] * d.bdims[i];
        bo -= d.bstride[i] * d.bdims[i];
        idx[i] = 0;
      }
    }
  }
  free(acc);
  return 0;
}
