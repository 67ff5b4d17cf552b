/* kernels/cpu/matmul_gemm.c — Gemm: Y = alpha * op(A) @ op(B) + beta * C, C optional and
 * unidirectionally broadcast to [M, N]. float32/float64 through OpenBLAS; integer types exact
 * (wrapping 64-bit accumulation; alpha/beta applied exactly when they are integers). */
#include "kernels/cpu/nn.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Copies C, broadcast to y's [M, N], into y (any dtype: C has y's dtype). */
static void fill_bias(const bp_value *c, bp_value *y) {
  int64_t m = y->dims[0], nn = y->dims[1], st[2];
  bp_broadcast_strides(c, y, st);
  size_t es = bp_dtype_size(y->dtype);
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < nn; j++)
      memcpy((char *)y->data + (size_t)(i * nn + j) * es,
             (const char *)c->data + (size_t)(i * st[0] + j * st[1]) * es, es);
}

/* alpha*x (+ beta*c) for integers: exact when the factor is integral, else through double. */
static int64_t scale_int(double f, uint64_t x) {
  if (f == 1.0) return (int64_t)x;
  if (f == floor(f) && fabs(f) < 9.2e18) return (int64_t)((uint64_t)(int64_t)f * x);
  return (int64_t)(f * (double)(int64_t)x);
}

static void gemm_int(const bp_value *a, const bp_value *b, bp_value *y, int ta, int tb, int64_t k,
                     double alpha, double beta, int has_c) {
  int64_t m = y->dims[0], nn = y->dims[1];
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < nn; j++) {
      uint64_t acc = 0;
      for (int64_t p = 0; p < k; p++) {
        int64_t ai = ta ? p * m + i : i * k + p, bi = tb ? j * k + p : p * nn + j;
        acc += (uint64_t)bp_get_i64(a->data, a->dtype, ai) * (uint64_t)bp_get_i64(b->data, b->dtype, bi);
      }
      uint64_t v = (uint64_t)scale_int(alpha, acc);
      if (has_c) v += (uint64_t)scale_int(beta, (uint64_t)bp_get_i64(y->data, y->dtype, i * nn + j));
      bp_set_i64(y->data, y->dtype, i * nn + j, (int64_t)v);
    }
}

int bp_nn_eval_gemm(bp_ctx *ctx, const bp_node *n, bp_value *const *in, int nin,
                    bp_value *const *out, int nout, bp_err *e) {
  (void)ctx, (void)nout;
  const bp_value *a = in[0], *b = in[1], *c = nin > 2 ? in[2] : NULL;
  bp_value *y = out[0];
  int ta = bp_attr_int(n, "transA", 0) != 0, tb = bp_attr_int(n, "transB", 0) != 0;
  double alpha = bp_attr_float(n, "alpha", 1.0f), beta = bp_attr_float(n, "beta", 1.0f);
  if (a->rank != 2 || b->rank != 2 || y->rank != 2)
    return bp_errf(e, "node '%s' (%s): A and B must be 2-D", n->name, n->op_type);
  if (bp_nn_check_dtype(n, y->dtype, 1, 0, "input A", e)) return -1;
  int64_t m = y->dims[0], nn = y->dims[1], k = ta ? a->dims[0] : a->dims[1];
  if (m == 0 || nn == 0) return 0;
  if (m > INT32_MAX || nn > INT32_MAX || k > INT32_MAX)
    return bp_errf(e, "node '%s' (%s): matrix dimensions exceed the BLAS int range", n->name, n->op_type);
  int has_c = c && beta != 0.0;
  if (has_c) fill_bias(c, y);
  else memset(y->data, 0, bp_value_bytes(y));
  if (k == 0) { /* product is empty: Y = beta * C */
    for (int64_t i = 0; has_c && i < m * nn; i++) {
      if (bp_dtype_is_float(y->dtype))
        bp_set_f64(y->data, y->dtype, i, beta * bp_get_f64(y->data, y->dtype, i));
      else
        bp_set_i64(y->data, y->dtype, i, scale_int(beta, (uint64_t)bp_get_i64(y->data, y->dtype, i)));
    }
    return 0;
  }
  int lda = (int)a->dims[1], ldb = (int)b->dims[1];
  if (y->dtype == BP_F32)
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                (int)nn, (int)k, (float)alpha, a->data, lda, b->data, ldb, has_c ? (float)beta : 0.0f,
                y->data, (int)nn);
  else if (y->dtype == BP_F64)
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                (int)nn, (int)k, alpha, a->data, lda, b->data, ldb, has_c ? beta : 0.0, y->data, (int)nn);
  else
    gemm_int(a, b, y, ta, tb, k, alpha, beta, has_c);
  return 0;
}
