/* tests/unit/test_values.c — checks of the value helpers and of Dropout in training mode:
 * - float16 and bfloat16 conversions, exhaustively: every non-NaN 16-bit pattern survives
 *   half -> float32 -> half, and float32 -> half rounds to the nearest representable value
 *   (ties to even), checked against neighbours computed independently;
 * - broadcasting shapes and strides against hand-worked cases;
 * - Dropout with ctx->training: the kept fraction is within 5 sigma of 1-p, kept values are
 *   scaled by exactly 1/(1-p), the mask matches the output, and the same seed and counter give
 *   the same mask while a different counter gives a different one. */
#include "frontend/ir.h"
#include "frontend/onnx_load.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0, failed = 0;
#define CHECK(cond, ...)                                                                                             \
  do {                                                                                                               \
    if (cond) passed++;                                                                                              \
    else {                                                                                                           \
      failed++;                                                                                                      \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                                                    \
      printf(__VA_ARGS__);                                                                                           \
      printf("\n");                                                                                                  \
    }                                                                                                                \
  } while (0)

static void test_half_roundtrip(void) {
  int bad16 = 0, badb = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = bp_f16_to_f32((uint16_t)h);
    if (!isnan(f) && bp_f32_to_f16(f) != h) bad16++;
    float b = bp_bf16_to_f32((uint16_t)h);
    if (!isnan(b) && bp_f32_to_bf16(b) != h) badb++;
  }
  CHECK(bad16 == 0, "%d float16 patterns do not round-trip", bad16);
  CHECK(badb == 0, "%d bfloat16 patterns do not round-trip", badb);
  CHECK(bp_f16_to_f32(0x3c00) == 1.0f && bp_f16_to_f32(0xc000) == -2.0f && bp_f16_to_f32(0x0001) == ldexpf(1, -24),
        "float16 known values");
  /* Rounding: the midpoint between two adjacent halves goes to the even one; just above goes up. */
  int badr = 0;
  for (uint32_t h = 0; h < 0x7bff; h++) {
    float lo = bp_f16_to_f32((uint16_t)h), hi = bp_f16_to_f32((uint16_t)(h + 1));
    float mid = (float)(((double)lo + (double)hi) / 2);
    uint16_t want = (h & 1) ? (uint16_t)(h + 1) : (uint16_t)h;
    if (bp_f32_to_f16(mid) != want) badr++;
    if (bp_f32_to_f16(nextafterf(mid, INFINITY)) != h + 1) badr++;
  }
  CHECK(badr == 0, "%d float16 rounding cases wrong", badr);
  CHECK(bp_f32_to_f16(1e6f) == 0x7c00, "overflow to +inf");
}

static void test_broadcast(void) {
  bp_err e = {0};
  bp_value a = {BP_F32, 3, {4, 1, 5}, NULL}, b = {BP_F32, 2, {3, 1}, NULL}, out;
  CHECK(bp_broadcast_shape(&a, &b, &out, "t", &e) == 0 && out.rank == 3 && out.dims[0] == 4 && out.dims[1] == 3 &&
            out.dims[2] == 5,
        "broadcast [4,1,5] x [3,1]");
  int64_t s[3];
  bp_broadcast_strides(&b, &out, s);
  CHECK(s[0] == 0 && s[1] == 1 && s[2] == 0, "strides of [3,1] in [4,3,5]: %lld %lld %lld", (long long)s[0],
        (long long)s[1], (long long)s[2]);
  bp_broadcast_strides(&a, &out, s);
  CHECK(s[0] == 5 && s[1] == 0 && s[2] == 1, "strides of [4,1,5] in [4,3,5]");
  bp_value c = {BP_F32, 1, {2}, NULL};
  bp_err e2 = {0};
  CHECK(bp_broadcast_shape(&a, &c, &out, "node 'x' (Add)", &e2) < 0 && strstr(e2.msg, "node 'x'"),
        "incompatible shapes are an error naming the node");
}

static void test_dropout_training(void) {
  const bp_op_def *d = bp_op_find("", "Dropout");
  CHECK(d != NULL, "Dropout in the op table");
  if (!d) return;
  enum { N = 100000 };
  float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N), *y2 = malloc(sizeof(float) * N);
  uint8_t *m = malloc(N), *m2 = malloc(N);
  float ratio = 0.1f;
  for (int i = 0; i < N; i++) x[i] = 1.0f + (float)i / N;
  bp_value vx = {BP_F32, 1, {N}, x}, vr = {BP_F32, 0, {0}, &ratio};
  bp_value vy = {BP_F32, 1, {N}, y}, vm = {BP_BOOL, 1, {N}, m}, vy2 = {BP_F32, 1, {N}, y2}, vm2 = {BP_BOOL, 1, {N}, m2};
  bp_node n;
  memset(&n, 0, sizeof n);
  n.name = "drop";
  n.op_type = "Dropout";
  n.opset = 17;
  n.nin = 2;
  n.nout = 2;
  bp_value *in[3] = {&vx, &vr, NULL}, *out[2] = {&vy, &vm};
  bp_ctx ctx = {1, 1234, 0, NULL};
  bp_err e = {0};
  CHECK(d->eval(&ctx, &n, in, 2, out, 2, &e) == 0, "dropout eval: %s", e.msg);
  int kept = 0, bad_scale = 0, bad_mask = 0;
  for (int i = 0; i < N; i++) {
    kept += m[i] != 0;
    if (m[i] && y[i] != x[i] * (1.0f / (1.0f - ratio)) && fabsf(y[i] - x[i] / (1.0f - ratio)) > 1e-6f * y[i]) bad_scale++;
    if (!m[i] && y[i] != 0) bad_mask++;
  }
  double p = 1 - ratio, sigma = sqrt(N * p * (1 - p));
  CHECK(fabs(kept - N * p) < 5 * sigma, "kept %d of %d, expected %.0f +- %.0f", kept, N, N * p, 5 * sigma);
  CHECK(bad_scale == 0 && bad_mask == 0, "scaling (%d bad) and mask (%d bad)", bad_scale, bad_mask);
  CHECK(ctx.counter >= (uint64_t)N, "the counter advances by the element count");
  bp_ctx again = {1, 1234, 0, NULL};
  bp_value *out2[2] = {&vy2, &vm2};
  d->eval(&again, &n, in, 2, out2, 2, &e);
  CHECK(memcmp(m, m2, N) == 0 && memcmp(y, y2, sizeof(float) * N) == 0, "same seed and counter: same mask");
  d->eval(&ctx, &n, in, 2, out2, 2, &e); /* counter has advanced */
  CHECK(memcmp(m, m2, N) != 0, "the next draw gives a different mask");
  bp_ctx infer = {0, 1234, 0, NULL};
  d->eval(&infer, &n, in, 2, out2, 2, &e);
  CHECK(memcmp(x, y2, sizeof(float) * N) == 0, "inference: identity");
  free(x); free(y); free(y2); free(m); free(m2);
}

int main(void) {
  test_half_roundtrip();
  test_broadcast();
  test_dropout_training();
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
