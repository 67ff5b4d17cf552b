/* tests/codegen/cg_util.h — shared by the codegen tests: compile a committed model's stages for a
 * schedule (analytic costs, so no profiling), read its batch, compare arrays. Header-only. */
#ifndef BITPIPE_TESTS_CG_UTIL_H
#define BITPIPE_TESTS_CG_UTIL_H

#include "codegen/codegen.h"
#include "frontend/npy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Builds stages and the memory plan of models/<model>/train.onnx: D ranks, N micro-batches of B
 * sequences of 16 tokens, without dropout. Returns 0 or prints the error and returns -1. */
static inline int cg_build(bp_cg *cg, const char *model_dir, const char *model, const char *schedule, int D, int N,
                           int B, const char *partition, bp_optimizer_kind opt) {
  static char path[1024];
  snprintf(path, sizeof path, "%s/%s/train.onnx", model_dir, model);
  bp_cg_opts o;
  bp_cg_opts_default(&o);
  o.model = path, o.D = D, o.N = N, o.micro_batch = B, o.seq = 16, o.schedule = schedule;
  o.partition = partition, o.device_model = "h100";
  o.train.dropout = 0, o.train.quiet = 1, o.train.optimizer = opt;
  bp_err e = {0};
  if (bp_cg_prepare(cg, &o, NULL, &e) || bp_cg_build_stages(cg, &e) || bp_cg_plan_memory(cg, &e)) {
    fprintf(stderr, "%s %s D=%d N=%d: %s\n", model, schedule, D, N, e.msg);
    return -1;
  }
  return 0;
}

/* max |a - b| / max |b| over n floats (0 when both are all zero). */
static inline double cg_rel_diff(const float *a, const float *b, int64_t n) {
  double md = 0, mb = 0;
  for (int64_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (!(d <= md)) md = d; /* NaN propagates */
    if (fabs((double)b[i]) > mb) mb = fabs((double)b[i]);
  }
  return mb > 0 ? md / mb : md;
}

/* Rows [r0, r0+k) of a [R, ...] value as a new value (malloc'ed data). */
static inline bp_value cg_rows(const bp_value *v, int64_t r0, int64_t k) {
  bp_value out = *v;
  out.dims[0] = k;
  size_t row = bp_value_bytes(v) / (size_t)v->dims[0];
  out.data = malloc(row * (size_t)k + 1);
  if (out.data) memcpy(out.data, (const char *)v->data + row * (size_t)r0, row * (size_t)k);
  return out;
}

#endif
