/* kernels/cuda/norm.cu — LayerNormalization and RMSNormalization forward, and LayerNormGrad, on
 * float32 rows of `cols` elements (x viewed as [rows, cols], cols = prod(dims[axis:])).
 *
 * Statistics are accumulated in double, as the CPU kernels do (kernels/cpu/nn_layernorm.c: one
 * pass for sum and sum of squares, then y = (x - mean) * invstd * scale + bias in float;
 * kernels/cpu/grad_nn.c: two-pass variance and the whole gradient in double). One block per row;
 * LayerNormGrad's dscale/dbias column sums go through per-chunk partial sums in double and a
 * second pass over the chunks, so they are deterministic. Scale/bias of exactly `cols` elements
 * (the transformer case) run here; other broadcast layouts run host-staged. */
#include "kernels/cuda/common.cuh"

#include <math.h>

__global__ void k_norm_fwd(const float *x, const float *s, const float *b, float *y, void *mean, void *inv, int st,
                           int64_t cols, double eps, int rms) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x;
  const float *xr = x + r * cols;
  float *yr = y + r * cols;
  double sum = 0, sq = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    double v = xr[i];
    sum += v;
    sq += v * v;
  }
  sum = block_sum(sum, sh);
  sq = block_sum(sq, sh);
  double mu = rms ? 0 : sum / (double)cols, var = sq / (double)cols - mu * mu;
  double is = 1.0 / sqrt((var > 0 ? var : 0) + eps);
  float fm = (float)mu, fi = (float)is;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    float v = (xr[i] - fm) * fi * s[i];
    yr[i] = b ? v + b[i] : v;
  }
  if (threadIdx.x == 0) {
    if (mean) d_set_f64(mean, st, r, mu);
    if (inv) d_set_f64(inv, st, r, is);
  }
}

static int threads_for(int64_t cols) {
  int t = 32;
  while (t < 1024 && t < cols) t <<= 1;
  return t > 256 ? 256 : t;
}

/* rows x cols view at `axis`; -1 with an error when the axis is bad. */
static int rows_cols(const bp_node *n, const bp_value *x, int64_t *axis, int64_t *rows, int64_t *cols, bp_err *e) {
  char who[300];
  snprintf(who, sizeof who, "node '%s' (%s)", n->name ? n->name : "", n->op_type);
  if (x->rank == 0) return bp_errf(e, "%s: X must have rank >= 1", who);
  if (bp_norm_axis(bp_attr_int(n, "axis", -1), x->rank, axis, who, e)) return -1;
  *rows = *cols = 1;
  for (int i = 0; i < x->rank; i++) {
    if (i < *axis) *rows *= x->dims[i];
    else *cols *= x->dims[i];
  }
  return 0;
}

static int norm_fwd(bp_ctx *ctx, const bp_node *n, int rms, bp_value *const *in, int nin, bp_value *const *out,
                    int nout, bp_err *e) {
  BP_CUDA_DC(dc);
  const bp_value *x = in[0], *scale = in[1], *bias = (!rms && nin > 2) ? in[2] : NULL;
  bp_value *y = out[0], *mean = (!rms && nout > 1) ? out[1] : NULL, *inv = (!rms && nout > 2) ? out[2] : NULL;
  int64_t axis, rows, cols;
  if (rows_cols(n, x, &axis, &rows, &cols, e)) return -1;
  int ok = x->dtype == BP_F32 && scale->dtype == BP_F32 && bp_value_numel(scale) == cols &&
           (!bias || (bias->dtype == BP_F32 && bp_value_numel(bias) == cols)) &&
           (!mean || mean->dtype == BP_F32 || mean->dtype == BP_F64) && (!inv || inv->dtype == BP_F32 || inv->dtype == BP_F64) &&
           (!mean || !inv || mean->dtype == inv->dtype);
  /* scale/bias of cols elements are row-invariant exactly when their leading dims are 1, which
   * numel == cols and unidirectional broadcasting (checked by inference) imply */
  if (!ok) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (rows * cols == 0) return 0;
  if (rows > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
  int st = mean ? mean->dtype : inv ? inv->dtype : BP_F32;
  k_norm_fwd<<<(unsigned)rows, threads_for(cols), 0, dc->stream>>>(
      (const float *)x->data, (const float *)scale->data, bias ? (const float *)bias->data : NULL, (float *)y->data,
      mean ? mean->data : NULL, inv ? inv->data : NULL, st, cols, (double)bp_attr_float(n, "epsilon", 1e-5f), rms);
  BP_LAUNCHED(dc, "k_norm_fwd");
  return 0;
}

BP_CUDA_EVAL(bp_cuda_eval_layernorm) { return norm_fwd(ctx, n, 0, in, nin, out, nout, e); }
BP_CUDA_EVAL(bp_cuda_eval_rmsnorm) { return norm_fwd(ctx, n, 1, in, nin, out, nout, e); }

/* ---- LayerNormGrad(dy, x, scale) -> dx, dscale, dbias ---- */
__global__ void k_ln_grad_rows(const float *dy, const float *x, const float *s, float *dx, double *mu_out,
                               double *is_out, int64_t cols, double eps) {
  __shared__ double sh[32];
  int64_t r = blockIdx.x, b = r * cols;
  double sum = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) sum += (double)x[b + i];
  double mu = block_sum(sum, sh) / (double)cols, var = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    double d = (double)x[b + i] - mu;
    var += d * d;
  }
  var = block_sum(var, sh) / (double)cols;
  double is = 1.0 / sqrt(var + eps), mg = 0, mgx = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    double g = (double)dy[b + i] * (double)s[i], xh = ((double)x[b + i] - mu) * is;
    mg += g;
    mgx += g * xh;
  }
  mg = block_sum(mg, sh) / (double)cols;
  mgx = block_sum(mgx, sh) / (double)cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    double g = (double)dy[b + i] * (double)s[i], xh = ((double)x[b + i] - mu) * is;
    dx[b + i] = (float)(is * (g - mg - xh * mgx));
  }
  if (threadIdx.x == 0) {
    mu_out[r] = mu;
    is_out[r] = is;
  }
}

/* partial[c][col] (c = chunk of rows) for dscale and dbias. */
__global__ void k_ln_grad_cols(const float *dy, const float *x, const double *mu, const double *is, double *ps,
                               double *pb, int64_t rows, int64_t cols, int64_t chunk) {
  int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, k = blockIdx.y;
  if (c >= cols) return;
  int64_t r0 = k * chunk, r1 = r0 + chunk < rows ? r0 + chunk : rows;
  double as = 0, ab = 0;
  for (int64_t r = r0; r < r1; r++) {
    double d = dy[r * cols + c];
    as += d * (((double)x[r * cols + c] - mu[r]) * is[r]);
    ab += d;
  }
  ps[k * cols + c] = as;
  pb[k * cols + c] = ab;
}

__global__ void k_ln_grad_finish(const double *ps, const double *pb, int64_t nchunks, int64_t cols, void *ds,
                                 void *db, int dt) {
  GRID_STRIDE(c, cols) {
    double as = 0, ab = 0;
    for (int64_t k = 0; k < nchunks; k++) {
      as += ps[k * cols + c];
      ab += pb[k * cols + c];
    }
    if (ds) d_set_f64(ds, dt, c, as);
    if (db) d_set_f64(db, dt, c, ab);
  }
}

BP_CUDA_EVAL(bp_cuda_eval_layernorm_grad) {
  BP_CUDA_DC(dc);
  const bp_value *dy = in[0], *x = in[1], *sc = in[2];
  bp_value *dx = out[0], *ds = nout > 1 ? out[1] : NULL, *db = nout > 2 ? out[2] : NULL;
  int64_t axis, rows, cols;
  if (rows_cols(n, x, &axis, &rows, &cols, e)) return -1;
  int ok = dy->dtype == BP_F32 && x->dtype == BP_F32 && sc->dtype == BP_F32 && dx->dtype == BP_F32 &&
           bp_value_numel(sc) == cols && (!ds || ds->dtype == BP_F32) && (!db || db->dtype == BP_F32);
  if (!ok) return bp_cuda_eval_host(ctx, n, in, nin, out, nout, e);
  if (rows > INT32_MAX) return bp_errf(e, "node '%s' (%s): too many rows", n->name, n->op_type);
  if (cols == 0) return 0;
  if (rows == 0) { /* no rows: the parameter gradients are zero */
    if (ds) BP_CU(cudaMemsetAsync(ds->data, 0, bp_value_bytes(ds), dc->stream));
    if (db) BP_CU(cudaMemsetAsync(db->data, 0, bp_value_bytes(db), dc->stream));
    return 0;
  }
  int64_t chunk = 64, nchunks = (rows + chunk - 1) / chunk;
  if (nchunks > 65535) {
    chunk = (rows + 65534) / 65535;
    nchunks = (rows + chunk - 1) / chunk;
  }
  size_t rb = sizeof(double) * (size_t)rows, pbytes = sizeof(double) * (size_t)(nchunks * cols);
  double *buf = (double *)bp_cuda_alloc(dc, 2 * rb + 2 * pbytes, "LayerNormGrad scratch", e);
  if (!buf) return bp_err_prefix_node(e, n);
  double *mu = buf, *is = buf + rows, *ps = buf + 2 * rows, *pbs = ps + nchunks * cols;
  int rc = 0;
  k_ln_grad_rows<<<(unsigned)rows, threads_for(cols), 0, dc->stream>>>(
      (const float *)dy->data, (const float *)x->data, (const float *)sc->data, (float *)dx->data, mu, is, cols,
      (double)bp_attr_float(n, "epsilon", 1e-5f));
  rc = bp_cuda_after_launch(dc, n, "k_ln_grad_rows", e, __FILE__, __LINE__);
  if (!rc && (ds || db)) {
    dim3 grid((unsigned)((cols + 255) / 256), (unsigned)nchunks);
    k_ln_grad_cols<<<grid, 256, 0, dc->stream>>>((const float *)dy->data, (const float *)x->data, mu, is, ps, pbs, rows,
                                                 cols, chunk);
    rc = bp_cuda_after_launch(dc, n, "k_ln_grad_cols", e, __FILE__, __LINE__);
    if (!rc) {
      k_ln_grad_finish<<<bp_cuda_blocks(dc, cols), THREADS, 0, dc->stream>>>(ps, pbs, nchunks, cols, ds ? ds->data : NULL,
                                                                             db ? db->data : NULL, BP_F32);
      rc = bp_cuda_after_launch(dc, n, "k_ln_grad_finish", e, __FILE__, __LINE__);
    }
  }
  bp_cuda_release(dc, buf);
  return rc;
}
