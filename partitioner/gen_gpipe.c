/* partitioner/gen_gpipe.c — GPipe: every rank runs all N forwards, then all N backwards (in
 * reverse micro-batch order, as in the GPipe paper's figure). One chunk per rank, rank r holds
 * stage r. Bubble (D-1)/(N+D-1); every rank stashes N micro-batches. Any D >= 1, N >= 1. */
#include "partitioner/schedule.h"

int bp_gen_gpipe(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  int D = sp->D, N = sp->N;
  if (D < 1 || N < 1)
    return bp_sched_errf(err, errlen, "gpipe: needs D >= 1 and N >= 1 (got D=%d N=%d)", D, N);
  if (sp->chunks > 1)
    return bp_sched_errf(err, errlen, "gpipe: one chunk per rank (got --chunks %d)", sp->chunks);
  if (bp_program_init(out, "gpipe", D, N, D, 1, 1, 0, err, errlen)) return -1;
  for (int r = 0; r < D; r++)
    if (bp_program_place(out, r, 0, 0, r, err, errlen)) return -1;
  for (int r = 0; r < D; r++) {
    for (int m = 0; m < N; m++)
      if (bp_program_emit_stage(out, r, BP_OP_FWD, r, m, err, errlen)) return -1;
    for (int m = N - 1; m >= 0; m--)
      if (bp_program_emit_stage(out, r, BP_OP_BWD, r, m, err, errlen)) return -1;
  }
  return 0;
}
