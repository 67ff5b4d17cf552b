/* partitioner/gen_chimera.c — Chimera (Li & Hoefler, SC21): two pipelines in opposite
 * directions. Rank r holds chunk 0 = stage r of the DOWN pipe and chunk 1 = stage D-1-r of the
 * UP pipe, so every stage has two replicas (ranks s and D-1-s) whose gradients are all-reduced
 * eagerly after their last backward.
 *
 * Order: the lock-step grid of the Chimera paper (and of its authors' generator,
 * AutoGeneratePipelineRank), with forward = backward = one slot. In unit u (D micro-batches:
 * uD..uD+D/2-1 DOWN, uD+D/2..uD+D-1 UP), the k-th micro-batch of either pipe runs the forward of
 * its stage j in slot 2Du + 2k + j and the backward of stage j in slot 2Du + 2k + 2D-1-j. The
 * parity of the slot keeps the two pipes, and unit u from unit u+1 ("direct concatenation"),
 * from ever meeting on one rank in one slot; each rank runs its operations in slot order.
 * Bubble (D-2)/(2N+D-2) when backward = forward. Requires D even and N % D == 0. */
#include "partitioner/schedule.h"

#include <stdlib.h>

typedef struct {
  int slot, op, stage, mb;
} item;

static int by_slot(const void *a, const void *b) {
  return ((const item *)a)->slot - ((const item *)b)->slot;
}

int bp_gen_chimera(const bp_sched_params *sp, bp_program *out, char *err, size_t errlen) {
  int D = sp->D, N = sp->N;
  if (D < 2 || D % 2 != 0)
    return bp_sched_errf(err, errlen, "chimera: D must be even and >= 2 (got D=%d)", D);
  if (N < D || N % D != 0)
    return bp_sched_errf(err, errlen,
                         "chimera: N must be a positive multiple of D (units of D/2 micro-batches "
                         "per direction); got N=%d D=%d",
                         N, D);
  if (sp->chunks > 2)
    return bp_sched_errf(err, errlen, "chimera: 2 chunks per rank (got --chunks %d)", sp->chunks);
  if (bp_program_init(out, "chimera", D, N, D, 2, 2, 0, err, errlen)) return -1;
  for (int r = 0; r < D; r++)
    if (bp_program_place(out, r, 0, 0, r, err, errlen) ||
        bp_program_place(out, r, 1, 1, D - 1 - r, err, errlen))
      return -1;
  int h = D / 2;
  for (int m = 0; m < N; m++) out->mb_pipe[m] = (m % D) < h ? 0 : 1;

  item *it = malloc(sizeof *it * 4 * N); /* per rank: 2N ops; sized generously */
  if (!it) return bp_sched_errf(err, errlen, "chimera: out of memory");
  for (int r = 0; r < D; r++) {
    int n = 0;
    for (int m = 0; m < N; m++) {
      int pipe = out->mb_pipe[m], u = m / D, k = m % D - (pipe ? h : 0);
      int j = pipe == 0 ? r : D - 1 - r; /* the stage this rank holds for that pipe */
      it[n++] = (item){2 * D * u + 2 * k + j, BP_OP_FWD, j, m};
      it[n++] = (item){2 * D * u + 2 * k + 2 * D - 1 - j, BP_OP_BWD, j, m};
    }
    qsort(it, n, sizeof *it, by_slot);
    for (int i = 0; i < n; i++) {
      if (i > 0 && it[i].slot == it[i - 1].slot) { /* cannot happen: parity argument above */
        int slot = it[i].slot;
        free(it);
        return bp_sched_errf(err, errlen, "chimera: internal error, two ops in slot %d on rank %d",
                             slot, r);
      }
      if (bp_program_emit_stage(out, r, (bp_op)it[i].op, it[i].stage, it[i].mb, err, errlen)) {
        free(it);
        return -1;
      }
    }
  }
  free(it);
  return 0;
}
