/* kernels/cpu/nn_einsum_gemm.c — the fast path of Einsum: two float operands whose labels split
 * into batch (both operands and output), M (A and output), N (B and output) and K (both
 * operands, summed) become one batched GEMM, e.g. attention's "bhqd,bhkd->bhqk". Operands already
 * laid out as [batch, M, K] / [batch, K, M] (resp. [batch, K, N] / [batch, N, K]) are used in
 * place with BLAS transposes; others are permuted into a copy first. Equations with diagonals,
 * broadcast ellipsis dims or labels summed within one operand are left to the general loop. */
#include "kernels/cpu/nn.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* dst (dims sdims[perm[i]]) = src transposed by perm; es bytes per element. */
static void permute(const char *src, const int64_t *sdims, int rank, const int *perm, char *dst, size_t es) {
  int64_t sst[BP_MAX_RANK], dd[BP_MAX_RANK], pst[BP_MAX_RANK], idx[BP_MAX_RANK] = {0}, total = 1, off = 0;
  for (int i = rank - 1; i >= 0; i--) sst[i] = i == rank - 1 ? 1 : sst[i + 1] * sdims[i + 1];
  for (int i = 0; i < rank; i++) dd[i] = sdims[perm[i]], pst[i] = sst[perm[i]], total *= dd[i];
  for (int64_t t = 0; t < total; t++) {
    memcpy(dst + (size_t)t * es, src + (size_t)off * es, es);
    for (int i = rank - 1; i >= 0; i--) {
      off += pst[i];
      if (++idx[i] < dd[i]) break;
      off -= pst[i] * dd[i];
      idx[i] = 0;
    }
  }
}

/* Position of label l in labs[0..r), or -1. */
static int find(const int *labs, int r, int l) {
  for (int i = 0; i < r; i++)
    if (labs[i] == l) return i;
  return -1;
}

static int same_seq(const int *a, const int *b, int r) { return memcmp(a, b, sizeof(int) * (size_t)r) == 0; }

/* Makes operand x available in label order o1 (trans 0) or o2 (trans 1); copies into *owned
 * (order o1) when x is in neither. Returns NULL on OOM. */
static const void *arrange(const bp_value *x, const int *labs, const int *o1, const int *o2, int *trans,
                           void **owned) {
  *owned = NULL;
  *trans = 0;
  if (same_seq(labs, o1, x->rank)) return x->data;
  if (same_seq(labs, o2, x->rank)) {
    *trans = 1;
    return x->data;
  }
  int perm[BP_MAX_RANK];
  for (int i = 0; i < x->rank; i++) perm[i] = find(labs, x->rank, o1[i]);
  size_t es = bp_dtype_size(x->dtype);
  *owned = malloc(bp_value_bytes(x) ? bp_value_bytes(x) : es);
  if (*owned) permute(x->data, x->dims, x->rank, perm, *owned, es);
  return *owned;
}

int bp_einsum_gemm(const bp_node *n, const bp_einsum *es, bp_value *const *in, bp_value *y, bp_err *e) {
  if (es->nops != 2 || (y->dtype != BP_F32 && y->dtype != BP_F64)) return 0;
  const bp_value *a = in[0], *b = in[1];
  unsigned char ina[BP_EINSUM_MAX_LABELS] = {0}, inb[BP_EINSUM_MAX_LABELS] = {0}, ino[BP_EINSUM_MAX_LABELS] = {0};
  for (int i = 0; i < a->rank; i++) {
    int l = es->lab[0][i];
    if (ina[l] || a->dims[i] != es->size[l]) return 0; /* diagonal or broadcast */
    ina[l] = 1;
  }
  for (int i = 0; i < b->rank; i++) {
    int l = es->lab[1][i];
    if (inb[l] || b->dims[i] != es->size[l]) return 0;
    inb[l] = 1;
  }
  for (int i = 0; i < es->out_rank; i++) ino[es->out_lab[i]] = 1;
  int bl[BP_MAX_RANK], ml[BP_MAX_RANK], nl[BP_MAX_RANK], kl[BP_MAX_RANK], nb = 0, nm = 0, nn = 0, nk = 0;
  int64_t batch = 1, m = 1, ncols = 1, k = 1;
  for (int i = 0; i < es->out_rank; i++) {
    int l = es->out_lab[i];
    if (ina[l] && inb[l]) bl[nb++] = l, batch *= es->size[l];
    else if (ina[l]) ml[nm++] = l, m *= es->size[l];
    else nl[nn++] = l, ncols *= es->size[l];
  }
  for (int i = 0; i < a->rank; i++) {
    int l = es->lab[0][i];
    if (!ino[l] && !inb[l]) return 0; /* summed within A alone */
    if (!ino[l]) kl[nk++] = l, k *= es->size[l];
  }
  for (int i = 0; i < b->rank; i++)
    if (!ino[es->lab[1][i]] && !ina[es->lab[1][i]]) return 0;
  if (m > INT32_MAX || ncols > INT32_MAX || k > INT32_MAX) return 0;
  /* wanted orders: A [B M K] or [B K M]; B [B K N] or [B N K]; Y [B M N] */
  int a1[BP_MAX_RANK], a2[BP_MAX_RANK], b1[BP_MAX_RANK], b2[BP_MAX_RANK], y1[BP_MAX_RANK];
  memcpy(a1, bl, sizeof(int) * (size_t)nb), memcpy(a2, bl, sizeof(int) * (size_t)nb);
  memcpy(a1 + nb, ml, sizeof(int) * (size_t)nm), memcpy(a1 + nb + nm, kl, sizeof(int) * (size_t)nk);
  memcpy(a2 + nb, kl, sizeof(int) * (size_t)nk), memcpy(a2 + nb + nk, ml, sizeof(int) * (size_t)nm);
  memcpy(b1, bl, sizeof(int) * (size_t)nb), memcpy(b2, bl, sizeof(int) * (size_t)nb);
  memcpy(b1 + nb, kl, sizeof(int) * (size_t)nk), memcpy(b1 + nb + nk, nl, sizeof(int) * (size_t)nn);
  memcpy(b2 + nb, nl, sizeof(int) * (size_t)nn), memcpy(b2 + nb + nn, kl, sizeof(int) * (size_t)nk);
  memcpy(y1, bl, sizeof(int) * (size_t)nb), memcpy(y1 + nb, ml, sizeof(int) * (size_t)nm);
  memcpy(y1 + nb + nm, nl, sizeof(int) * (size_t)nn);
  size_t esz = bp_dtype_size(y->dtype);
  if (bp_value_numel(y) == 0) return 1;
  if (k == 0) {
    memset(y->data, 0, bp_value_bytes(y));
    return 1;
  }
  int ta, tb, direct = same_seq(es->out_lab, y1, es->out_rank);
  void *oa, *ob, *oy = NULL;
  const void *ap = arrange(a, es->lab[0], a1, a2, &ta, &oa), *bp = arrange(b, es->lab[1], b1, b2, &tb, &ob);
  char *yp = direct ? y->data : (oy = malloc(bp_value_bytes(y)));
  if (!ap || !bp || !yp) {
    free(oa), free(ob), free(oy);
    return bp_errf(e, "node '%s' (%s): out of memory", n->name, n->op_type);
  }
  int lda = (int)(ta ? m : k), ldb = (int)(tb ? k : ncols);
  for (int64_t t = 0; t < batch; t++) {
    const char *at = (const char *)ap + (size_t)(t * m * k) * esz, *bt = (const char *)bp + (size_t)(t * k * ncols) * esz;
    char *yt = yp + (size_t)(t * m * ncols) * esz;
    if (y->dtype == BP_F32)
      cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                  (int)ncols, (int)k, 1.0f, (const float *)at, lda, (const float *)bt, ldb, 0.0f, (float *)yt, (int)ncols);
    else
      cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m,
                  (int)ncols, (int)k, 1.0, (const double *)at, lda, (const double *)bt, ldb, 0.0, (double *)yt, (int)ncols);
  }
  if (!direct) { /* Y' is [B M N] in y1 order: permute into the equation's output order */
    int64_t ydims[BP_MAX_RANK];
    int perm[BP_MAX_RANK];
    for (int i = 0; i < es->out_rank; i++) ydims[i] = es->size[y1[i]], perm[i] = find(y1, es->out_rank, es->out_lab[i]);
    permute(oy, ydims, es->out_rank, perm, y->data, esz);
  }
  free(oa), free(ob), free(oy);
  return 1;
}
