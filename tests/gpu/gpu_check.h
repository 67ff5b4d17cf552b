/* tests/gpu/gpu_check.h — what the GPU tests share: the skip rule (no visible device: print
 * "skipped: no GPU" and exit with ctest's skip code 77), the relative error used everywhere
 * (max|got - ref| / max|ref| per output; absolute when the reference is all zeros; integer and bool
 * outputs must match exactly), and the per-op result table. */
#ifndef BITPIPE_TESTS_GPU_CHECK_H
#define BITPIPE_TESTS_GPU_CHECK_H

#include "frontend/ir.h"
#include "kernels/cuda/cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPU_SKIP 77

static inline int gpu_skip_if_none(void) {
  if (bp_cuda_device_count() > 0) return 0;
  printf("skipped: no GPU\n");
  return 1;
}

/* Relative error of `got` (host copy of a device output) against the CPU's `ref`; INFINITY for a
 * mismatch of non-float data or of NaN positions. */
static inline double gpu_rel_err(const bp_value *ref, const void *got) {
  int64_t n = bp_value_numel(ref);
  if (ref->dtype != BP_F32 && ref->dtype != BP_F64) {
    size_t b = bp_value_bytes(ref);
    return b && memcmp(ref->data, got, b) ? INFINITY : 0.0;
  }
  double md = 0, mr = 0;
  for (int64_t i = 0; i < n; i++) {
    double r = bp_get_f64(ref->data, ref->dtype, i), g = bp_get_f64(got, ref->dtype, i);
    if (r != r || g != g) {
      if ((r != r) != (g != g)) return INFINITY;
      continue;
    }
    if (isinf(r) || isinf(g)) {
      if (r != g) return INFINITY;
      continue;
    }
    md = fmax(md, fabs(g - r));
    mr = fmax(mr, fabs(r));
  }
  return mr > 0 ? md / mr : md;
}

/* ---- the table: one row per (op, precision) ---- */
typedef struct {
  char op[64];
  bp_precision prec;
  int cases, fails;
  double worst;
  const char *kind;
} gpu_row;

typedef struct {
  gpu_row rows[512];
  int n;
} gpu_table;

static inline double gpu_tol(bp_precision p) { return p == BP_PREC_BF16 ? 2e-2 : p == BP_PREC_TF32 ? 1e-3 : 1e-5; }

static inline void gpu_record(gpu_table *t, const char *op, bp_precision p, const char *kind, double err, int failed) {
  gpu_row *r = NULL;
  for (int i = 0; i < t->n && !r; i++)
    if (!strcmp(t->rows[i].op, op) && t->rows[i].prec == p) r = &t->rows[i];
  if (!r) {
    if (t->n >= (int)(sizeof t->rows / sizeof t->rows[0])) return;
    r = &t->rows[t->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->op, sizeof r->op, "%s", op);
    r->prec = p;
    r->kind = kind;
  }
  r->cases++;
  r->fails += failed;
  if (!(err <= r->worst)) r->worst = err; /* NaN and inf stick */
}

static inline void gpu_print(const gpu_table *t, const char *title) {
  printf("\n%s\n", title);
  printf("| %-26s | %-4s | %5s | %-10s | %-7s | %-4s | %s\n", "op", "prec", "cases", "worst rel", "tol", "kind", "result");
  printf("|%s|%s|%s|%s|%s|%s|%s\n", "----------------------------", "------", "-------", "------------", "---------",
         "------", "-------");
  for (int i = 0; i < t->n; i++) {
    const gpu_row *r = &t->rows[i];
    printf("| %-26s | %-4s | %5d | %-10.3g | %-7.0e | %-4s | %s\n", r->op, bp_precision_name(r->prec), r->cases, r->worst,
           gpu_tol(r->prec), r->kind, r->fails ? "FAIL" : "ok");
  }
}

#endif
