/* partitioner/gen_1f1b.c — 1F1B (DAPPLE / PipeDream-Flush): rank r runs w = min(D-1-r, N)
 * warm-up forwards, then alternates one forward and one backward, then drains the backwards.
 * One chunk per rank, rank r holds stage r. Bubble (D-1)/(N+D-1) like GPipe, but rank r never
 * stashes more than min(D-r, N) micro-batches. Any D >= 1, N >= 1. */
#include "partitioner/schedule.h"

int bp_gen_1f1b(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  int D = sp->D, N = sp->N;
  if (D < 1 || N < 1)
    return bp_sched_errf(err, errlen, "1f1b: needs D >= 1 and N >= 1 (got D=%d N=%d)", D, N);
  if (sp->chunks > 1)
    return bp_sched_errf(err, errlen,
                         "1f1b: one chunk per rank (got --chunks %d; use 'interleaved')",
                         sp->chunks);
  if (bp_program_init(out, "1f1b", D, N, D, 1, 1, 0, err, errlen)) return -1;
  for (int r = 0; r < D; r++)
    if (bp_program_place(out, r, 0, 0, r, err, errlen)) return -1;
  for (int r = 0; r < D; r++) {
    int w = D - 1 - r < N ? D - 1 - r : N, f = 0, b = 0;
    while (f < w)
      if (bp_program_emit_stage(out, r, BP_OP_FWD, r, f++, err, errlen)) return -1;
    while (f < N) {
      if (bp_program_emit_stage(out, r, BP_OP_FWD, r, f++, err, errlen)) return -1;
      if (bp_program_emit_stage(out, r, BP_OP_BWD, r, b++, err, errlen)) return -1;
    }
    while (b < N)
      if (bp_program_emit_stage(out, r, BP_OP_BWD, r, b++, err, errlen)) return -1;
  }
  return 0;
}
