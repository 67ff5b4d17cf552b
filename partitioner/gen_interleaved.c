/* partitioner/gen_interleaved.c — interleaved 1F1B (Megatron-LM, Narayanan et al. SC21): each
 * rank holds v chunks, chunk c of rank r is stage c*D + r ("looping" placement), so a
 * micro-batch loops over the ranks v times. The order is Megatron's: virtual micro-batches are
 * taken in groups of D per chunk; rank r runs (v-1)*D + 2*(D-1-r) warm-up forwards (all of them
 * when N == D, as Megatron does), then 1F1B, then the remaining backwards.
 * Bubble (D-1)/(vN+D-1). Requires N % D == 0 (Megatron's condition) and v >= 1. */
#include "partitioner/schedule.h"

/* Megatron's get_model_chunk_id and micro-batch index of virtual micro-batch k. */
static int vchunk(int k, int D, int v, int forward) {
  int c = (k % (D * v)) / D;
  return forward ? c : v - 1 - c;
}
static int vmb(int k, int D, int v) { return (k / (D * v)) * D + k % D; }

int bp_gen_interleaved(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  int D = sp->D, N = sp->N, v = sp->chunks ? sp->chunks : 2;
  if (D < 1 || N < 1 || v < 1)
    return bp_sched_errf(err, errlen, "interleaved: needs D >= 1, N >= 1, v >= 1 (got %d %d %d)",
                         D, N, v);
  if (N % D != 0)
    return bp_sched_errf(err, errlen,
                         "interleaved: N must be a multiple of D (Megatron's order takes "
                         "micro-batches in groups of D); got N=%d D=%d",
                         N, D);
  if (v * D > 32767)
    return bp_sched_errf(err, errlen, "interleaved: v*D=%d stages is too many", v * D);
  if (bp_program_init(out, "interleaved", D, N, v * D, 1, v, 0, err, errlen)) return -1;
  for (int r = 0; r < D; r++)
    for (int c = 0; c < v; c++)
      if (bp_program_place(out, r, c, 0, c * D + r, err, errlen)) return -1;
  int total = N * v;
  for (int r = 0; r < D; r++) {
    int w = N == D ? total : (v - 1) * D + 2 * (D - 1 - r);
    if (w > total) w = total;
    int f = 0, b = 0;
#define FWD_NEXT()                                                                              \
  do {                                                                                          \
    if (bp_program_emit_stage(out, r, BP_OP_FWD, vchunk(f, D, v, 1) * D + r, vmb(f, D, v), err, \
                              errlen))                                                          \
      return -1;                                                                                \
    f++;                                                                                        \
  } while (0)
#define BWD_NEXT()                                                                              \
  do {                                                                                          \
    if (bp_program_emit_stage(out, r, BP_OP_BWD, vchunk(b, D, v, 0) * D + r, vmb(b, D, v), err, \
                              errlen))                                                          \
      return -1;                                                                                \
    b++;                                                                                        \
  } while (0)
    while (f < w) FWD_NEXT();
    while (f < total) {
      FWD_NEXT();
      BWD_NEXT();
    }
    while (b < total) BWD_NEXT();
#undef FWD_NEXT
#undef BWD_NEXT
  }
  return 0;
}
