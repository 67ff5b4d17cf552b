/* kernels/cuda/gemm.cu — MatMul (numpy semantics: 1-D promotion, broadcast batch dimensions) and
 * Gemm (transA/transB, alpha, beta, broadcast C) through cuBLASLt, float32 data in all precisions:
 *   fp32: CUBLAS_COMPUTE_32F (IEEE float products and sums);
 *   tf32: CUBLAS_COMPUTE_32F_FAST_TF32 (tensor cores on float32 inputs);
 *   bf16: A and B rounded to bfloat16 into temporary buffers, CUBLAS_COMPUTE_32F accumulation,
 *         float32 C/D (the master data stays float32).
 * Row-major products are computed as the column-major transposed product: D^T = op(B)^T op(A)^T,
 * so cuBLASLt's "A" is our B and its "B" our A, and no data is transposed. Integer MatMul/Gemm
 * runs host-staged (the CPU's exact integer loops). */
#include "kernels/cuda/common.cuh"

extern "C" {
#include "kernels/cpu/nn.h"
}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  int ta, tb;          /* row-major op(A) = A^T when ta (A stored K x M) */
  int64_t M, N, K;
  const float *A;
  int64_t lda, sA;     /* leading dimension (row length as stored), batch stride (elements) */
  const float *B;
  int64_t ldb, sB;
  float *D;
  int64_t ldd, sD;
  int64_t batch;
  float alpha, beta;   /* D = alpha op(A) op(B) + beta D */
} gemm_args;

__global__ void k_to_bf16(const float *x, uint16_t *y, int64_t count) {
  GRID_STRIDE(i, count) y[i] = d_f32_to_bf16(x[i]);
}
__global__ void k_to_bf16_4(const float4 *x, uint2 *y, int64_t count) {
  GRID_STRIDE(i, count) {
    float4 v = x[i];
    uint2 o;
    o.x = (uint32_t)d_f32_to_bf16(v.x) | ((uint32_t)d_f32_to_bf16(v.y) << 16);
    o.y = (uint32_t)d_f32_to_bf16(v.z) | ((uint32_t)d_f32_to_bf16(v.w) << 16);
    y[i] = o;
  }
}

/* The fallback when cuBLASLt offers no algorithm (seen only as a possibility for unusual
 * alignments): one thread per output element, products of the inputs rounded as the precision
 * asks (bf16: nearest even; tf32: 10 mantissa bits, nearest away from zero as cvt.rna), float sums. */
__device__ inline float round_in(float x, int prec) {
  if (prec == BP_PREC_BF16) return d_bf16_to_f32(d_f32_to_bf16(x));
  if (prec == BP_PREC_TF32 && isfinite(x)) return __uint_as_float((__float_as_uint(x) + 0x1000u) & 0xffffe000u);
  return x;
}

__global__ void k_gemm_naive(gemm_args g, int prec) {
  GRID_STRIDE(idx, g.batch * g.M * g.N) {
    int64_t j = idx % g.N, r = idx / g.N, i = r % g.M, b = r / g.M;
    const float *A = g.A + b * g.sA, *B = g.B + b * g.sB;
    float acc = 0;
    for (int64_t k = 0; k < g.K; k++) {
      float a = g.ta ? A[k * g.lda + i] : A[i * g.lda + k], bb = g.tb ? B[j * g.ldb + k] : B[k * g.ldb + j];
      acc += round_in(a, prec) * round_in(bb, prec);
    }
    float *D = g.D + b * g.sD + i * g.ldd + j;
    *D = g.beta != 0 ? g.alpha * acc + g.beta * *D : g.alpha * acc;
  }
}

static uint32_t align_of(const void *p) {
  uintptr_t a = (uintptr_t)p;
  uint32_t al = 256;
  while (al > 1 && (a & (al - 1))) al >>= 1;
  return al;
}

/* Elements of a stored operand: `rows` rows of `cols` with leading dimension ld, `batch` matrices
 * `stride` apart. */
static int64_t extent(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
  return (batch - 1) * stride + (rows - 1) * ld + cols;
}

/* ---- plans: descriptors and the heuristic's algorithm, cached per GEMM shape --------------------
 * Creating the matmul/layout descriptors and asking cuBLASLt's heuristic for an algorithm costs
 * host time at every call (a training step of GPT-2 has ~220 GEMMs of ~15 shapes), so a plan is
 * kept per key (precision, transposes, sizes, leading dims, batch strides, operand alignments,
 * bias epilogue) in a small table, least recently used out. The bias pointer is set per call. */
typedef struct {
  int prec, ta, tb, epi;
  int64_t M, N, K, lda, ldb, ldd, sA, sB, sD, batch;
  uint32_t al_a, al_b, al_c;
} gemm_key;

typedef struct {
  gemm_key k;
  int valid, has_algo;
  cublasLtMatmulDesc_t op;
  cublasLtMatrixLayout_t la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  uint64_t used;
} gemm_plan;

#define GEMM_PLANS 64
struct bp_gemm_cache {
  gemm_plan p[GEMM_PLANS];
  uint64_t tick;
};

static void plan_clear(gemm_plan *p) {
  if (p->op) cublasLtMatmulDescDestroy(p->op);
  if (p->la) cublasLtMatrixLayoutDestroy(p->la);
  if (p->lb) cublasLtMatrixLayoutDestroy(p->lb);
  if (p->lc) cublasLtMatrixLayoutDestroy(p->lc);
  memset(p, 0, sizeof *p);
}

extern "C" void bp_cuda_gemm_cache_free(bp_cuda *dc) {
  if (!dc->gemm_cache) return;
  for (int i = 0; i < GEMM_PLANS; i++) plan_clear(&dc->gemm_cache->p[i]);
  free(dc->gemm_cache);
  dc->gemm_cache = NULL;
}

#define LTG(call)                                                                                  \
  do {                                                                                             \
    cublasStatus_t st_ = (call);                                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS) {                                                            \
      bp_cuda_fail(e, n, NULL, #call, bp_cublas_status_str((int)st_), __FILE__, __LINE__);         \
      goto fail;                                                                                   \
    }                                                                                              \
  } while (0)

/* The plan of key k (made on a miss: descriptors, then the heuristic; has_algo 0 when it offers
 * none), or NULL with an error. */
static gemm_plan *plan_get(bp_cuda *dc, const bp_node *n, const gemm_key *k, bp_err *e) {
  if (!dc->gemm_cache && !(dc->gemm_cache = (struct bp_gemm_cache *)calloc(1, sizeof(struct bp_gemm_cache)))) {
    bp_errf(e, "node '%s' (%s): out of memory", n->name, n->op_type);
    return NULL;
  }
  struct bp_gemm_cache *c = dc->gemm_cache;
  gemm_plan *p = NULL;
  for (int i = 0; i < GEMM_PLANS; i++)
    if (c->p[i].valid && !memcmp(&c->p[i].k, k, sizeof *k)) {
      c->p[i].used = ++c->tick;
      return &c->p[i];
    }
  for (int i = 0; i < GEMM_PLANS; i++) /* a free slot, else the least recently used */
    if (!p || !c->p[i].valid || (p->valid && c->p[i].used < p->used)) {
      p = &c->p[i];
      if (!p->valid) break;
    }
  plan_clear(p);
  memcpy(&p->k, k, sizeof *k); /* bytes, padding included: keys are compared with memcmp */
  {
    cudaDataType_t ab = k->prec == BP_PREC_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasComputeType_t ct = k->prec == BP_PREC_TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    int64_t arows = k->ta ? k->K : k->M, acols = k->ta ? k->M : k->K;
    int64_t brows = k->tb ? k->N : k->K, bcols = k->tb ? k->K : k->N;
    cublasOperation_t opa = k->tb ? CUBLAS_OP_T : CUBLAS_OP_N, opb = k->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    LTG(cublasLtMatmulDescCreate(&p->op, ct, CUDA_R_32F));
    LTG(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof opa));
    LTG(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof opb));
    if (k->epi) {
      /* bias along D's rows in cuBLASLt's column-major view = along our row-major columns */
      cublasLtEpilogue_t ep = CUBLASLT_EPILOGUE_BIAS;
      LTG(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof ep));
    }
    /* column-major views: our B (brows x bcols row-major) is bcols x brows; likewise A and D */
    LTG(cublasLtMatrixLayoutCreate(&p->la, ab, (uint64_t)bcols, (uint64_t)brows, k->ldb));
    LTG(cublasLtMatrixLayoutCreate(&p->lb, ab, (uint64_t)acols, (uint64_t)arows, k->lda));
    LTG(cublasLtMatrixLayoutCreate(&p->lc, CUDA_R_32F, (uint64_t)k->N, (uint64_t)k->M, k->ldd));
    if (k->batch > 1) {
      int32_t cnt = (int32_t)k->batch;
      LTG(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &cnt, sizeof cnt));
      LTG(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &cnt, sizeof cnt));
      LTG(cublasLtMatrixLayoutSetAttribute(p->lc, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &cnt, sizeof cnt));
      LTG(cublasLtMatrixLayoutSetAttribute(p->la, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &k->sB, sizeof k->sB));
      LTG(cublasLtMatrixLayoutSetAttribute(p->lb, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &k->sA, sizeof k->sA));
      LTG(cublasLtMatrixLayoutSetAttribute(p->lc, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &k->sD, sizeof k->sD));
    }
    uint64_t ws = dc->workspace_bytes;
    LTG(cublasLtMatmulPreferenceCreate(&pref));
    {
      cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &k->al_a, sizeof k->al_a);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &k->al_b, sizeof k->al_b);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &k->al_c, sizeof k->al_c);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &k->al_c, sizeof k->al_c);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(dc->lt, p->op, p->la, p->lb, p->lc, p->lc, pref, 1, &res, &nres);
      cublasLtMatmulPreferenceDestroy(pref);
      /* with the bias epilogue a refusal is not an error: the caller falls back to copying C */
      if (st != CUBLAS_STATUS_SUCCESS && !k->epi) {
        bp_cuda_fail(e, n, NULL, "cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 1, &res, &nres)",
                          bp_cublas_status_str((int)st), __FILE__, __LINE__);
        goto fail;
      }
      if (st != CUBLAS_STATUS_SUCCESS) nres = 0;
    }
    p->has_algo = nres > 0;
    if (nres > 0) p->algo = res.algo;
  }
  p->valid = 1;
  p->used = ++c->tick;
  return p;
fail:
  plan_clear(p);
  return NULL;
}
#undef LTG

/* ---- bf16 copies kept during an executor run (see internal.h) ---- */
struct bp_bf16_entry {
  const float *src;
  int64_t count;
  uint16_t *copy;
};
#define BF16_CACHE_BYTES ((size_t)8 << 30) /* at most this much device memory in cached copies */

static uint16_t *bf16_find(bp_cuda *dc, const float *src, int64_t count) {
  for (int i = 0; i < dc->nbf16; i++)
    if (dc->bf16_cache[i].src == src && dc->bf16_cache[i].count >= count) return dc->bf16_cache[i].copy;
  return NULL;
}

/* Keeps `copy` as the bf16 copy of src[0..count): 1 kept (the cache owns it now), 0 not kept. */
static int bf16_keep(bp_cuda *dc, const float *src, int64_t count, uint16_t *copy) {
  size_t bytes = sizeof(uint16_t) * (size_t)count;
  if (!dc->bf16_cache_on || dc->bf16_bytes + bytes > BF16_CACHE_BYTES) return 0;
  if (dc->bf16_hi && ((const char *)src < dc->bf16_lo || (const char *)(src + count) > dc->bf16_hi)) return 0;
  if (dc->nbf16 == dc->capbf16) {
    int cap = dc->capbf16 ? 2 * dc->capbf16 : 64;
    struct bp_bf16_entry *v = (struct bp_bf16_entry *)realloc(dc->bf16_cache, sizeof *v * (size_t)cap);
    if (!v) return 0;
    dc->bf16_cache = v;
    dc->capbf16 = cap;
  }
  dc->bf16_cache[dc->nbf16].src = src;
  dc->bf16_cache[dc->nbf16].count = count;
  dc->bf16_cache[dc->nbf16].copy = copy;
  dc->nbf16++;
  dc->bf16_bytes += bytes;
  return 1;
}

extern "C" void bp_cuda_bf16_forget(bp_cuda *dc, const void *p, size_t bytes) {
  const char *lo = (const char *)p, *hi = lo + bytes;
  for (int i = 0; i < dc->nbf16;) {
    const char *s = (const char *)dc->bf16_cache[i].src;
    if (s >= lo && s < hi) {
      bp_cuda_release(dc, dc->bf16_cache[i].copy);
      dc->bf16_bytes -= sizeof(uint16_t) * (size_t)dc->bf16_cache[i].count;
      dc->bf16_cache[i] = dc->bf16_cache[--dc->nbf16];
    } else {
      i++;
    }
  }
}

extern "C" void bp_cuda_bf16_clear(bp_cuda *dc) {
  for (int i = 0; i < dc->nbf16; i++) bp_cuda_release(dc, dc->bf16_cache[i].copy);
  dc->nbf16 = 0;
  dc->bf16_bytes = 0;
}

/* Elements converted to bfloat16 four at a time when both pointers allow 16/8-byte accesses. */
static int to_bf16(bp_cuda *dc, const bp_node *n, const float *x, uint16_t *y, int64_t count, bp_err *e) {
  if (count % 4 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)y & 7) == 0) {
    k_to_bf16_4<<<bp_cuda_blocks(dc, count / 4), THREADS, 0, dc->stream>>>((const float4 *)x, (uint2 *)y, count / 4);
    return bp_cuda_after_launch(dc, n, "k_to_bf16_4", e, __FILE__, __LINE__);
  }
  k_to_bf16<<<bp_cuda_blocks(dc, count), THREADS, 0, dc->stream>>>(x, y, count);
  return bp_cuda_after_launch(dc, n, "k_to_bf16", e, __FILE__, __LINE__);
}

/* D = alpha op(A) op(B) + beta D [+ bias along the columns when `bias`]. 1 (nothing done) when a
 * bias was asked for and cuBLASLt has no algorithm with the bias epilogue: the caller adds it
 * another way. */
static int lt_matmul_bias(bp_cuda *dc, const bp_node *n, const gemm_args *g, const float *bias, bp_err *e) {
  int rc = 0;
  const void *A = g->A, *B = g->B;
  uint16_t *tA = NULL, *tB = NULL;
  gemm_plan *p = NULL;
  int64_t arows = g->ta ? g->K : g->M, acols = g->ta ? g->M : g->K;
  int64_t brows = g->tb ? g->N : g->K, bcols = g->tb ? g->K : g->N;
  if (g->M > INT32_MAX || g->N > INT32_MAX || g->K > INT32_MAX || g->batch > INT32_MAX)
    return bp_errf(e, "node '%s' (%s): matrix dimensions exceed cuBLASLt's int range", n->name, n->op_type);
  if (dc->prec == BP_PREC_BF16) {
    int64_t ea = extent(arows, acols, g->lda, g->batch, g->sA), eb = extent(brows, bcols, g->ldb, g->batch, g->sB);
    const uint16_t *cA = dc->bf16_cache_on ? bf16_find(dc, g->A, ea) : NULL;
    const uint16_t *cB = dc->bf16_cache_on ? bf16_find(dc, g->B, eb) : NULL;
    if (!cA) {
      if (!(tA = (uint16_t *)bp_cuda_alloc(dc, sizeof(uint16_t) * (size_t)ea, "bf16 copy of A", e))) {
        rc = bp_err_prefix_node(e, n);
        goto done;
      }
      if ((rc = to_bf16(dc, n, g->A, tA, ea, e))) goto done;
      cA = tA;
      if (bf16_keep(dc, g->A, ea, tA)) tA = NULL; /* the cache owns it */
    }
    if (!cB) {
      if (g->B == g->A && eb <= ea) {
        cB = cA; /* one operand twice (x^T x) */
      } else {
        if (!(tB = (uint16_t *)bp_cuda_alloc(dc, sizeof(uint16_t) * (size_t)eb, "bf16 copy of B", e))) {
          rc = bp_err_prefix_node(e, n);
          goto done;
        }
        if ((rc = to_bf16(dc, n, g->B, tB, eb, e))) goto done;
        cB = tB;
        if (bf16_keep(dc, g->B, eb, tB)) tB = NULL;
      }
    }
    A = cA;
    B = cB;
  }
  {
    gemm_key k;
    memset(&k, 0, sizeof k);
    k.prec = (int)dc->prec, k.ta = g->ta, k.tb = g->tb, k.epi = bias != NULL;
    k.M = g->M, k.N = g->N, k.K = g->K, k.lda = g->lda, k.ldb = g->ldb, k.ldd = g->ldd;
    k.sA = g->sA, k.sB = g->sB, k.sD = g->sD, k.batch = g->batch;
    k.al_a = align_of(B), k.al_b = align_of(A), k.al_c = align_of(g->D);
    if (bias && align_of(bias) < 16) {
      rc = 1;
      goto done;
    }
    if (!(p = plan_get(dc, n, &k, e))) {
      rc = -1;
      goto done;
    }
    if (bias && !p->has_algo) {
      rc = 1;
      goto done;
    }
    if (!p->has_algo) {
      if (!dc->warned_gemm)
        fprintf(stderr, "bitpipe: warning: node '%s' (%s): cuBLASLt has no algorithm for a %s GEMM M=%lld N=%lld K=%lld "
                        "batch %lld (alignments %u/%u/%u bytes); using the simple CUDA GEMM kernel (reported once)\n",
                n->name, n->op_type, bp_precision_name(dc->prec), (long long)g->M, (long long)g->N, (long long)g->K,
                (long long)g->batch, k.al_a, k.al_b, k.al_c);
      dc->warned_gemm = 1;
      k_gemm_naive<<<bp_cuda_blocks(dc, g->batch * g->M * g->N), THREADS, 0, dc->stream>>>(*g, (int)dc->prec);
      rc = bp_cuda_after_launch(dc, n, "k_gemm_naive", e, __FILE__, __LINE__);
      goto done;
    }
  }
  if (bias) {
    cublasStatus_t st = cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    if (st != CUBLAS_STATUS_SUCCESS) {
      rc = bp_cuda_fail(e, n, NULL, "cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias)",
                        bp_cublas_status_str((int)st), __FILE__, __LINE__);
      goto done;
    }
  }
  {
    cublasStatus_t st = cublasLtMatmul(dc->lt, p->op, &g->alpha, B, p->la, A, p->lb, &g->beta, g->D, p->lc, g->D, p->lc,
                                       &p->algo, dc->workspace, dc->workspace_bytes, dc->stream);
    if (st != CUBLAS_STATUS_SUCCESS && bias) {
      p->has_algo = 0; /* the epilogue is refused after all: the caller adds the bias another way */
      rc = 1;
      goto done;
    }
    if (st != CUBLAS_STATUS_SUCCESS) {
      rc = bp_cuda_fail(e, n, NULL, "cublasLtMatmul(lt, op, &alpha, B, la, A, lb, &beta, D, lc, D, lc, &algo, ...)",
                        bp_cublas_status_str((int)st), __FILE__, __LINE__);
      goto done;
    }
  }
  if (dc->sync_each) rc = bp_cuda_after_launch(dc, n, "cublasLtMatmul", e, __FILE__, __LINE__);
done:
  bp_cuda_release(dc, tA);
  bp_cuda_release(dc, tB);
  return rc;
}

static int lt_matmul(bp_cuda *dc, const bp_node *n, const gemm_args *g, bp_err *e) {
  return lt_matmul_bias(dc, n, g, NULL, e);
}

/* MatMul with an input the executor passes stored transposed (dc->mm_trans[k]: the value has the
 * input's logical shape [..., M, K] but its data hold the transpose, [..., K, M], as the folded
 * Transpose's input did): both operands hold every batch entry (the executor folds transposes
 * only then), so one strided batched GEMM with the transpose flags set (and alpha, dc->mm_alpha). */
static int matmul_folded(bp_cuda *dc, const bp_node *n, const bp_value *a, const bp_value *b, bp_value *y, bp_err *e) {
  int ta = dc->mm_trans[0], tb = dc->mm_trans[1];
  if ((ta && a->rank < 2) || (tb && b->rank < 2))
    return bp_errf(e, "node '%s' (%s): internal: a transposed input of rank < 2", n->name, n->op_type);
  bp_matmul_dims d;
  if (bp_matmul_shape(n, a, b, &d, NULL, e)) return -1;
  if (d.batch == 0 || d.m * d.n == 0) return 0;
  if (d.k == 0) {
    BP_CU(cudaMemsetAsync(y->data, 0, bp_value_bytes(y), dc->stream));
    return 0;
  }
  int64_t a_mats = 1, b_mats = 1;
  for (int i = 0; i < d.brank; i++) {
    if (d.astride[i]) a_mats *= d.bdims[i];
    if (d.bstride[i]) b_mats *= d.bdims[i];
  }
  if (a_mats != d.batch || b_mats != d.batch)
    return bp_errf(e, "node '%s' (%s): internal: folded inputs with broadcast batches", n->name, n->op_type);
  /* stored A: [M, K] rows of K, or (ta) [K, M] rows of M; likewise B */
  gemm_args g = {ta, tb, d.m, d.n, d.k, (const float *)a->data, ta ? d.m : d.k, d.m * d.k, (const float *)b->data,
                 tb ? d.k : d.n, d.k * d.n, (float *)y->data, d.n, d.m * d.n, d.batch, dc->mm_alpha, 0.0f};
  return lt_matmul(dc, n, &g, e);
}

BP_CUDA_EVAL(bp_cuda_eval_matmul) {
  BP_CUDA_DC(dc);
  const bp_value *a = in[0], *b = in[1];
  bp_value *y = out[0];
  if (a->dtype != BP_F32 || b->dtype != BP_F32 || y->dtype != BP_F32) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (dc->mm_trans[0] || dc->mm_trans[1]) return matmul_folded(dc, n, a, b, y, e);
  bp_matmul_dims d;
  if (bp_matmul_shape(n, a, b, &d, NULL, e)) return -1;
  if (d.batch == 0 || d.m * d.n == 0) return 0;
  if (d.k == 0) {
    BP_CU(cudaMemsetAsync(y->data, 0, bp_value_bytes(y), dc->stream));
    return 0;
  }
  int64_t a_mats = 1, b_mats = 1;
  for (int i = 0; i < d.brank; i++) {
    if (d.astride[i]) a_mats *= d.bdims[i];
    if (d.bstride[i]) b_mats *= d.bdims[i];
  }
  int64_t mn = d.m * d.n, mk = d.m * d.k, kn = d.k * d.n;
  gemm_args g = {0, 0, d.m, d.n, d.k, (const float *)a->data, d.k, mk, (const float *)b->data, d.n, kn,
                 (float *)y->data, d.n, mn, 1, dc->mm_alpha, 0.0f}; /* alpha: folded scalar Muls (exec.c) */
  if (b_mats == 1 && a_mats == d.batch && d.batch * d.m <= INT32_MAX) {
    g.M = d.batch * d.m; /* B shared by every batch entry and A contiguous: one GEMM */
    return lt_matmul(dc, n, &g, e);
  }
  if (a_mats == d.batch && b_mats == d.batch) {
    g.batch = d.batch; /* both operands hold every batch entry in order: one strided batched GEMM */
    return lt_matmul(dc, n, &g, e);
  }
  /* broadcast batches: one GEMM per entry, walking the batch index as the CPU does */
  int64_t idx[BP_MAX_RANK] = {0}, ao = 0, bo = 0;
  for (int64_t t = 0; t < d.batch; t++) {
    g.A = (const float *)a->data + ao * mk;
    g.B = (const float *)b->data + bo * kn;
    g.D = (float *)y->data + t * mn;
    if (lt_matmul(dc, n, &g, e)) return -1;
    for (int i = d.brank - 1; i >= 0; i--) {
      ao += d.astride[i];
      bo += d.bstride[i];
      if (++idx[i] < d.bdims[i]) break;
      ao -= d.astride[i] * d.bdims[i];
      bo -= d.bstride[i] * d.bdims[i];
      idx[i] = 0;
    }
  }
  return 0;
}

__global__ void k_mul_scalar(float *y, float s, int64_t count) {
  GRID_STRIDE(i, count) y[i] *= s;
}

BP_CUDA_EVAL(bp_cuda_eval_gemm) {
  BP_CUDA_DC(dc);
  const bp_value *a = in[0], *b = in[1], *c = nin > 2 ? in[2] : NULL;
  bp_value *y = out[0];
  if (a->dtype != BP_F32 || b->dtype != BP_F32 || y->dtype != BP_F32 || (c && c->dtype != BP_F32))
    return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (a->rank != 2 || b->rank != 2 || y->rank != 2)
    return bp_errf(e, "node '%s' (%s): A and B must be 2-D", n->name, n->op_type);
  int ta = bp_attr_int(n, "transA", 0) != 0, tb = bp_attr_int(n, "transB", 0) != 0;
  float alpha = bp_attr_float(n, "alpha", 1.0f), beta = bp_attr_float(n, "beta", 1.0f);
  int64_t m = y->dims[0], nn = y->dims[1], k = ta ? a->dims[0] : a->dims[1];
  if (m == 0 || nn == 0) return 0;
  int has_c = c && beta != 0.0f;
  /* a bias row (C of N elements, beta 1): cuBLASLt's bias epilogue adds it in the GEMM's own
   * epilogue, instead of broadcasting C into Y first and reading it back with beta = 1 */
  if (has_c && beta == 1.0f && k > 0 && bp_value_numel(c) == nn && (c->rank == 1 || (c->rank == 2 && c->dims[0] == 1))) {
    gemm_args g = {ta, tb, m, nn, k, (const float *)a->data, a->dims[1], 0, (const float *)b->data, b->dims[1], 0,
                   (float *)y->data, nn, 0, 1, alpha, 0.0f};
    int r = lt_matmul_bias(dc, n, &g, (const float *)c->data, e);
    if (r <= 0) return r; /* 1: no algorithm with the epilogue, the copy below */
  }
  if (has_c && bp_cuda_broadcast_copy(dc, n, c, y, e)) return -1;
  if (k == 0) {
    if (!has_c) {
      BP_CU(cudaMemsetAsync(y->data, 0, bp_value_bytes(y), dc->stream));
    } else if (beta != 1.0f) {
      k_mul_scalar<<<bp_cuda_blocks(dc, m * nn), THREADS, 0, dc->stream>>>((float *)y->data, beta, m * nn);
      BP_LAUNCHED(dc, "k_mul_scalar");
    }
    return 0;
  }
  gemm_args g = {ta, tb, m, nn, k, (const float *)a->data, a->dims[1], 0, (const float *)b->data, b->dims[1], 0,
                 (float *)y->data, nn, 0, 1, alpha, has_c ? beta : 0.0f};
  return lt_matmul(dc, n, &g, e);
}
